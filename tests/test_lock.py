"""The locked environment: the lock agrees with pyproject.toml, the installed trio is the locked one, and a
torchaudio that fails to load gives one line naming the versions."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

import ser_lightning

ROOT = Path(__file__).resolve().parent.parent
LOCK_SCRIPT = ROOT / ".ci" / "lock.py"


def _check(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(root / ".ci" / "lock.py"), "--check"], capture_output=True,
                          text=True, cwd=root)


def _copy_project(tmp_path: Path) -> Path:
    (tmp_path / ".ci").mkdir()
    shutil.copy(LOCK_SCRIPT, tmp_path / ".ci" / "lock.py")
    for name in ("pyproject.toml", "requirements.lock", "requirements-nodeps.lock"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_lock_agrees_with_pyproject():
    result = _check(ROOT)
    assert result.returncode == 0, result.stderr


def test_lock_check_fails_when_pyproject_changes(tmp_path):
    root = _copy_project(tmp_path)
    text = (root / "pyproject.toml").read_text()
    (root / "pyproject.toml").write_text(text.replace('"rich>=13",', '"rich>=13",\n    "cowsay>=6",'))
    result = _check(root)
    assert result.returncode != 0
    assert "run `make lock`" in result.stderr
    assert "cowsay" in result.stderr  # not pinned in the lock


def test_lock_check_fails_when_a_pin_leaves_the_range(tmp_path):
    root = _copy_project(tmp_path)
    lock = (root / "requirements.lock").read_text()
    assert "\ntorchaudio==2.11.0 " in lock
    (root / "requirements.lock").write_text(lock.replace("\ntorchaudio==2.11.0 ", "\ntorchaudio==2.11.1 "))
    result = _check(root)
    assert result.returncode != 0 and "torchaudio" in result.stderr


def test_trio_pinned_exactly_and_installed_as_locked():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for name, version in ser_lightning.SUPPORTED_TRIO.items():
        assert f"{name}=={version}" in deps
    from importlib import metadata

    for name, version in ser_lightning.SUPPORTED_TRIO.items():
        assert metadata.version(name).split("+")[0] == version


@pytest.mark.skipif(not (ROOT / ".venv" / ".installed").exists() or Path(sys.prefix) != ROOT / ".venv",
                    reason="only meaningful in the environment make install built")
def test_installed_environment_is_the_lock():
    result = subprocess.run([sys.executable, str(LOCK_SCRIPT), "--verify"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _verify(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(root / ".ci" / "lock.py"), "--verify"], capture_output=True, text=True,
                          cwd=root)


def test_verify_names_every_package_whose_installed_version_differs_from_the_lock(tmp_path):
    """``--verify`` against this interpreter with a lock that disagrees with it: a package at another version and
    a package that is not installed are named, in one line; a pin whose marker excludes this platform and a pin
    that matches are not."""
    from importlib import metadata

    root = _copy_project(tmp_path)
    rich, torchaudio = metadata.version("rich"), metadata.version("torchaudio")
    (root / "requirements-nodeps.lock").write_text("# pyproject-sha256: x\n")
    (root / "requirements.lock").write_text(
        "# pyproject-sha256: x\n"
        f"rich=={rich} \\\n    --hash=sha256:{'0' * 64}\n"
        "torchaudio==0.0.1 \\\n    --hash=sha256:" + "1" * 64 + "\n"
        "no-such-package-for-ser==1.0 ; python_version >= '3'\n"
        "other-platform-only==1.0 ; python_version < '3'\n")
    result = _verify(root)
    assert result.returncode != 0
    message = result.stderr.strip()
    assert message.startswith("lock: ") and "\n" not in message
    assert f"torchaudio: installed {torchaudio}, locked 0.0.1" in message
    assert "no-such-package-for-ser==1.0 is locked but not installed" in message
    assert "rich" not in message and "other-platform-only" not in message
    (root / "requirements.lock").write_text(f"rich=={rich}\n")  # the environment is the lock: ok
    result = _verify(root)
    assert result.returncode == 0 and result.stdout.strip() == "lock: ok"


def test_broken_torchaudio_gives_one_line_with_versions(tmp_path):
    fake = tmp_path / "torchaudio"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "raise OSError('libtorchaudio.so: undefined symbol: torch_exception_get_what_without_backtrace')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", "import ser_lightning"], capture_output=True, text=True,
                            env=env, cwd=tmp_path)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: torchaudio failed to load (OSError: libtorchaudio.so: undefined symbol")
    from importlib import metadata

    assert f"installed torch {metadata.version('torch')}" in last
    assert "supports torch 2.11.0 + torchaudio 2.11.0" in last
