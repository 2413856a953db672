"""What keeps the cross-validation of the default model near its floor: idle OpenMP threads sleep
(``train.py``), a cache file is hashed once per process while it is unchanged, and the benchmark's
before/after comparison (``benchmarks/cv_speed.py``) catches a changed fold."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


def _train_py_environment(**env: str) -> list[str]:
    """Run train.py's module code (not its Hydra main) in a new interpreter; print OMP_WAIT_POLICY as it is when
    torch starts to load (a meta-path hook sees the import), then after."""
    code = ("import os, runpy, sys\n"
            "class Hook:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'torch':\n"
            "            print(os.environ.get('OMP_WAIT_POLICY'))\n"
            "            sys.meta_path.remove(self)\n"
            "sys.meta_path.insert(0, Hook())\n"
            "runpy.run_path('train.py', run_name='not_main')\n"
            "print(os.environ.get('OMP_WAIT_POLICY'))")
    base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**base, **env}, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.split()


def test_train_py_makes_idle_openmp_threads_sleep_before_torch_loads():
    assert _train_py_environment() == ["PASSIVE", "PASSIVE"]  # set before torch loads (ser_lightning/__init__.py)
    assert _train_py_environment(OMP_WAIT_POLICY="ACTIVE") == ["ACTIVE", "ACTIVE"]  # the user's choice stays


def test_a_cache_file_is_hashed_once_while_unchanged_and_again_after_any_edit(tmp_path, monkeypatch):
    import ser_lightning.data.cache as cache

    path = tmp_path / "waves.npy"
    path.write_bytes(bytes(range(256)) * 64)
    reads = []
    real = cache.sha256_file
    monkeypatch.setattr(cache, "sha256_file", lambda p: reads.append(p) or real(p))
    first = cache.checked_sha256(path)
    assert cache.checked_sha256(path) == first == real(path) and len(reads) == 1
    with open(path, "r+b") as fh:  # same size, same inode, one byte changed
        fh.seek(100)
        fh.write(b"\xff")
    changed = cache.checked_sha256(path)
    assert len(reads) == 2 and changed != first and changed == real(path)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns))  # same mtime, new ctime: read again
    assert cache.checked_sha256(path) == changed and len(reads) == 3


def _record(uas: list[float]) -> dict:
    folds = [{"job": k, "ua": ua, "wa": 0.5, "macro_f1": 0.5, "best_val_ua": 0.8, "epochs": 15, "selected_ua": 0.7,
              "refit_epochs": 5, "wall_time_s": 9.0, "extract_s": 0.0} for k, ua in enumerate(uas)]
    run = {"wall_s": 100.0, "cpu_s": 150.0, "folds": folds}
    return {"runs": {"contiguous": [{"cold": run, "warm": copy.deepcopy(run)}]}}


def test_the_benchmark_comparison_catches_a_fold_that_changed_in_the_last_digit():
    from benchmarks.cv_speed import compare

    before = _record([0.85546875, 0.8515625])
    table, diffs = compare(before, copy.deepcopy(before))
    assert diffs == [] and "| contiguous | cold | 100 (150) | 100 (150) | 85.55 / 85.16 (yes) |" in table
    after = copy.deepcopy(before)
    after["runs"]["contiguous"][0]["warm"]["folds"][1]["ua"] = 0.8515626
    table, diffs = compare(before, after)
    assert diffs == ["contiguous warm fold 1: ua 0.8515625 != 0.8515626"] and "(**no**)" in table
    with pytest.raises(ValueError):  # a run with another number of folds is not comparable
        after["runs"]["contiguous"][0]["cold"]["folds"].pop()
        compare(before, after)
