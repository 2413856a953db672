"""The package as a wheel (issue 24 item 3): built from the sources, installed into a fresh virtual environment
outside the checkout (nothing downloaded: the dependencies come from the locked environment through a ``.pth``
file), its ``ser-predict`` classifies a generated clip from another directory with the configs and the model
shipped inside the wheel, and ``python -m ser_lightning <command> --help`` says what the command does.

Measured: about 20 s on the shared 2-core machine (wheel 2 s, install 3 s, one prediction 8-9 s).
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO


def _sh(*cmd: str, cwd, env=None, timeout: int = 300) -> subprocess.CompletedProcess:
    r = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, (cmd, r.stdout[-2000:], r.stderr[-3000:])
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """A wheel of the sources, installed with ``pip --no-index --no-deps`` into a new venv that sees the locked
    environment's packages."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"  # a copy: building writes build/ and *.egg-info next to the sources
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "ser_lightning", src / "ser_lightning", ignore=shutil.ignore_patterns("__pycache__"))
    _sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w",
        str(base / "dist"), str(src), cwd=base)
    (wheel,) = (base / "dist").glob("ser_lightning-*.whl")
    venv = base / "venv"
    _sh(sys.executable, "-m", "venv", "--without-pip", str(venv), cwd=base)
    py = venv / "bin" / "python"
    purelib = _sh(str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=base).stdout.strip()
    # the dependencies: the locked environment's site-packages, after the venv's own (where the wheel goes)
    with open(os.path.join(purelib, "locked_env.pth"), "w") as fh:
        fh.write("\n".join(p for p in site.getsitepackages() if os.path.isdir(p)) + "\n")
    _sh(sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q", str(wheel), cwd=base)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}:/usr/bin:/bin", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    return {"wheel": wheel, "venv": venv, "py": py, "env": env, "cwd": elsewhere}


def test_the_wheel_ships_the_configs_commands_and_model(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    repo_configs = sorted(str(p.relative_to(REPO)) for p in (REPO / "ser_lightning" / "conf").rglob("*.yaml"))
    assert sorted(n for n in names if n.startswith("ser_lightning/conf/") and n.endswith(".yaml")) == repo_configs
    assert "ser_lightning/assets/default/model.ckpt" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(installed["wheel"]).read(entry).decode()
    for name in ("ser", "ser-train", "ser-eval", "ser-predict", "ser-export", "ser-cross-corpus"):
        assert f"{name} = ser_lightning.cli.main:" in scripts and (installed["venv"] / "bin" / name).is_file()


def test_ser_predict_from_another_directory(installed):
    cwd, env = installed["cwd"], installed["env"]
    r = _sh(str(installed["py"]), "-c", "import ser_lightning; print(ser_lightning.__file__)", cwd=cwd, env=env)
    assert r.stdout.strip().startswith(str(installed["venv"]))  # the installed copy, not the checkout
    sr, t = 16000, np.arange(32000) / 16000
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
    sf.write(cwd / "clip.wav", (0.3 * x / np.abs(x).max()).astype(np.float32), sr)
    r = _sh("ser-predict", "input=clip.wav", "output=out", cwd=cwd, env=env)
    doc = json.loads((cwd / "out" / "predictions.json").read_text())
    assert doc["summary"]["files"] == 1 and doc["files"][0]["status"] in ("ok", "no speech")
    assert doc["model"]["name"] and str(installed["venv"]) in doc["model"]["source"]  # the model inside the wheel
    assert "clip.wav" in r.stdout and sorted(p.name for p in cwd.iterdir()) == ["clip.wav", "out"]


def test_help_of_every_command(installed):
    cwd, env = installed["cwd"], installed["env"]
    words = {"train": "model=", "eval": "ckpt_path=", "predict": "input=", "export": "format=", "cross-corpus": "cross"}
    with ThreadPoolExecutor(max_workers=2) as pool:  # each is mostly a Python start-up: two at a time
        helps = {command: pool.submit(_sh, str(installed["py"]), "-m", "ser_lightning", command, "--help", cwd=cwd,
                                      env=env) for command in words}
        script = pool.submit(_sh, f"ser-{'predict'}", "-h", cwd=cwd, env=env)
        for command, future in helps.items():
            out = future.result().stdout
            assert out.startswith(f"ser {command}: ") and words[command] in out and "main options" in out, (command, out)
        r = script.result()
    assert r.stdout.startswith("ser-predict: Classify") and "segment=window" in r.stdout
