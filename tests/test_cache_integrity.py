"""Cache integrity: a truncated or tampered cache is detected on open, logged with the
reason and rebuilt, never read; a build killed half-way leaves nothing that is ever read.

(The lock — two processes build once — is tested in ``tests/test_ddp.py``; reuse and invalidation by
settings or file changes in ``tests/test_audio_cache.py``.)
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal

import numpy as np
import pytest
import soundfile as sf

from ser_lightning.data.audio import AudioConfig
from ser_lightning.data.cache import build_or_load, cache_key
from tests.conftest import tone

CFG = AudioConfig(sample_rate=16000, duration_s=0.5)


@pytest.fixture
def files(tmp_path):
    paths = []
    for i in range(6):
        p = tmp_path / f"f{i}.wav"
        sf.write(p, tone(200 + 50 * i, 0.5, 8000, seed=i), 8000)
        paths.append(str(p))
    return paths


def _flip_middle(path):
    """Invert 4 bytes in the middle: same size, same file, different content."""
    size = os.path.getsize(path)
    with open(path, "r+b") as fh:
        fh.seek(size // 2)
        b = fh.read(4)
        fh.seek(size // 2)
        fh.write(bytes(x ^ 0xFF for x in b))


def _truncate(path):
    os.truncate(path, os.path.getsize(path) - 100)


def _append(path):
    with open(path, "ab") as fh:
        fh.write(b"\0" * 64)


def _edit_index(path):
    index = json.loads(open(path, encoding="utf-8").read())
    index["ok"][0] = False  # valid JSON, plausible content: only the checksum tells
    open(path, "w", encoding="utf-8").write(json.dumps(index))


def _cut_index(path):
    text = open(path, encoding="utf-8").read()
    open(path, "w", encoding="utf-8").write(text[: len(text) // 2])


@pytest.mark.parametrize(
    "target, tamper, reason",
    [
        ("waves.npy", _truncate, "truncated"),
        ("waves.npy", _append, "bytes but"),
        ("waves.npy", _flip_middle, "SHA-256 of waves.npy does not match"),
        ("index.json", _edit_index, "index.json was modified"),
        ("index.json", _cut_index, "index.json is unreadable"),
        ("index.json", os.remove, "index.json is missing"),
    ],
    ids=["truncate-waves", "append-waves", "flip-bytes-waves", "edit-index", "cut-index", "delete-index"],
)
def test_damaged_cache_is_detected_and_rebuilt(files, tmp_path, caplog, target, tamper, reason):
    first = build_or_load(files, CFG, tmp_path / "cache", progress=False)
    clean = np.array(first.waves)
    del first
    path = tmp_path / "cache" / cache_key(files, CFG, "float16") / target
    tamper(path)

    again = build_or_load(files, CFG, tmp_path / "cache", progress=False)
    assert again.built and reason in again.rebuilt_because
    assert any("is damaged" in r.message and reason in r.message for r in caplog.records)
    assert np.array_equal(np.asarray(again.waves), clean) and again.ok.all()  # the damaged data was never returned
    # the rebuilt cache is sound: the next open reuses it silently
    caplog.clear()
    third = build_or_load(files, CFG, tmp_path / "cache", progress=False)
    assert not third.built and third.rebuilt_because is None
    assert not any("is damaged" in r.message for r in caplog.records)


def test_size_is_always_checked_checksum_only_when_asked(files, tmp_path):
    build_or_load(files, CFG, tmp_path / "cache", progress=False)
    waves = tmp_path / "cache" / cache_key(files, CFG, "float16") / "waves.npy"
    _flip_middle(waves)
    unchecked = build_or_load(files, CFG, tmp_path / "cache", progress=False, verify_checksum=False)
    assert not unchecked.built  # documented trade-off: without the checksum a same-size edit goes unseen
    del unchecked
    _truncate(waves)
    assert build_or_load(files, CFG, tmp_path / "cache", progress=False, verify_checksum=False).built


def _killed_build(files, cache_dir):
    import ser_lightning.data.cache as cache

    decode = cache._decode_all

    def die_half_way(paths, cfg, out, workers, progress):
        decode(paths[: len(paths) // 2], cfg, out, workers, progress)
        out.flush()
        os.kill(os.getpid(), signal.SIGKILL)  # like a pre-empted node: no cleanup at all

    cache._decode_all = die_half_way
    cache.build_or_load(files, CFG, cache_dir, progress=False)


def test_build_killed_half_way_is_never_read(files, tmp_path):
    proc = multiprocessing.get_context("fork").Process(target=_killed_build, args=(files, tmp_path / "cache"))
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == -signal.SIGKILL
    key = cache_key(files, CFG, "float16")
    leftovers = [p.name for p in (tmp_path / "cache").iterdir()]
    assert key not in leftovers and any(n.startswith(f"{key}.tmp-") for n in leftovers)  # only the temp dir
    cached = build_or_load(files, CFG, tmp_path / "cache", progress=False)
    assert cached.built and cached.rebuilt_because is None and cached.ok.all()
    assert np.abs(np.asarray(cached.waves[-1])).max() > 0.5  # rows the killed build never reached are decoded
    assert [p.name for p in (tmp_path / "cache").iterdir() if ".tmp-" in p.name] == []  # stale temp dir removed
