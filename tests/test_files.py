"""ser_lightning.files: one SHA-256 helper for every layer, a portable inter-process lock, and no POSIX-only
module on the inference path or in the data caches (issue 24 item 4)."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import subprocess
import sys
import time

from ser_lightning.files import file_lock, sha256_file
from tests.conftest import REPO


def test_one_sha256_helper_under_every_old_name(tmp_path):
    from ser_lightning.data import cache
    from ser_lightning.inference import card
    from ser_lightning.models.encoders import byol_s

    f = tmp_path / "x.bin"
    f.write_bytes(b"abc" * 100_000)
    assert sha256_file(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    assert cache.sha256_file is card._sha256 is byol_s.sha256_of is sha256_file


def _hold(lock_path: str, log_path: str, hold_s: float) -> None:
    with file_lock(lock_path):
        start = time.monotonic()
        time.sleep(hold_s)
        with open(log_path, "a") as fh:
            fh.write(f"{start} {time.monotonic()}\n")


def test_file_lock_excludes_other_processes(tmp_path):
    lock, log = str(tmp_path / "sub" / "k.lock"), str(tmp_path / "log.txt")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_hold, args=(lock, log, 0.4)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    spans = sorted(tuple(map(float, line.split())) for line in open(log))
    assert len(spans) == 3 and all(p.exitcode == 0 for p in procs)
    assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:])), spans  # one holder at a time


def test_inference_and_caches_import_without_posix_only_modules(tmp_path):
    """As on Windows: fcntl (and resource) cannot be imported; the API, the caches and the lock still work."""
    code = ("import sys; sys.modules['fcntl'] = None; sys.modules['resource'] = None\n"
            "import ser_lightning.inference.api, ser_lightning.data.cache, ser_lightning.data.feature_cache\n"
            "from ser_lightning.files import file_lock\n"
            f"with file_lock({str(tmp_path / 'a.lock')!r}):\n    pass\n"
            "print('ok')")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
