"""Decode-once waveform cache: one memory-mappable ``.npy`` array per (settings, file list).

Layout under ``cache_dir``::

    <key>/waves.npy      (n_files, num_samples) float16 or float32, row i = file i
    <key>/index.json     paths, per-file ok flag, skip reasons, settings (written last)
    <key>.lock           advisory lock held while building

``key`` is a SHA-256 of the :class:`~ser_lightning.data.audio.AudioConfig`, the storage dtype, a
format version and every file's path, size and modification time: any change that affects the
audio gives a new key and a rebuild. A cache is built in a temporary directory and renamed into
place only when complete, so a half-written cache is never used; a lock makes concurrent
processes (e.g. DDP ranks) wait for one builder and then reuse its result.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ser_lightning.data.audio import AudioConfig, AudioDecodeError, load_clip

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
CACHE_DTYPES = ("float16", "float32")


@dataclass
class CachedWaves:
    """An opened cache.

    Attributes:
        waves: Read-only memory map ``(n_files, num_samples)``; rows of skipped files are zeros.
        ok: Boolean mask ``(n_files,)``: ``False`` where the file could not be decoded.
        skipped: ``(path, reason)`` for every file that could not be decoded.
        directory: The cache directory (``cache_dir/<key>``).
        built: ``True`` when this call decoded the files, ``False`` when it reused a cache.
    """

    waves: np.ndarray
    ok: np.ndarray
    skipped: list[tuple[str, str]]
    directory: Path
    built: bool


def cache_key(paths: Sequence[str], cfg: AudioConfig, dtype: str) -> str:
    """Hash of everything that determines the cached audio.

    Args:
        paths: Audio files, in cache row order.
        cfg: Preprocessing settings.
        dtype: Storage dtype (``"float16"`` or ``"float32"``).

    Returns:
        A 20-hex-digit key.

    Raises:
        FileNotFoundError: if a file does not exist.
    """
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_FORMAT_VERSION, "cfg": cfg.as_dict(), "dtype": dtype}, sort_keys=True).encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


@contextmanager
def _locked(lock_path: Path):
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _open(directory: Path, built: bool) -> CachedWaves:
    index = json.loads((directory / "index.json").read_text())
    waves = np.load(directory / "waves.npy", mmap_mode="r")
    ok = np.asarray(index["ok"], dtype=bool)
    if waves.shape[0] != len(ok):
        raise RuntimeError(f"{directory}: cache is inconsistent ({waves.shape[0]} rows, {len(ok)} index entries)")
    return CachedWaves(waves, ok, [tuple(s) for s in index["skipped"]], directory, built)


def _decode_all(paths: Sequence[str], cfg: AudioConfig, out: np.ndarray, workers: int, progress: bool):
    ok = np.ones(len(paths), dtype=bool)
    skipped: list[tuple[str, str]] = []

    def job(i: int) -> None:
        try:
            out[i] = load_clip(paths[i], cfg)
        except AudioDecodeError as err:
            ok[i] = False
            skipped.append((paths[i], str(err)))

    columns = (TextColumn("decoding audio"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task("decode", total=len(paths))
        # soundfile and soxr release the GIL, so threads decode in parallel.
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for _ in pool.map(job, range(len(paths))):
                bar.advance(task)
    skipped.sort()
    return ok, skipped


def build_or_load(
    paths: Sequence[str],
    cfg: AudioConfig,
    cache_dir: str | Path,
    dtype: str = "float16",
    workers: int = 2,
    progress: bool = True,
) -> CachedWaves:
    """Open the cache for these files and settings, building it first if needed.

    Files that cannot be decoded are logged as warnings and returned in ``skipped`` (their rows
    stay zero); the cache is still built for the others.

    Args:
        paths: Audio files, in row order.
        cfg: Preprocessing settings.
        cache_dir: Directory holding caches (created if missing).
        dtype: ``"float16"`` (half the memory, default) or ``"float32"``.
        workers: Decoding threads.
        progress: Show a rich progress bar while building.

    Returns:
        The opened :class:`CachedWaves`.

    Raises:
        ValueError: unknown dtype, or an empty file list.
        RuntimeError: every file failed to decode (the message names the first failures).
    """
    if dtype not in CACHE_DTYPES:
        raise ValueError(f"data.cache_dtype={dtype!r} is not one of {list(CACHE_DTYPES)}")
    if not paths:
        raise ValueError("no audio files to cache")
    cache_dir = Path(cache_dir)
    key = cache_key(paths, cfg, dtype)
    final = cache_dir / key
    with _locked(cache_dir / f"{key}.lock"):
        if (final / "index.json").is_file():
            cached = _open(final, built=False)
            log.info("reusing audio cache %s (%d files)", final, len(paths))
        else:
            tmp = cache_dir / f"{key}.tmp-{uuid.uuid4().hex[:8]}"
            tmp.mkdir(parents=True)
            try:
                log.info("decoding %d files into cache %s", len(paths), final)
                out = np.lib.format.open_memmap(tmp / "waves.npy", mode="w+", dtype=dtype, shape=(len(paths), cfg.num_samples))
                ok, skipped = _decode_all(paths, cfg, out, workers, progress)
                out.flush()
                del out
                index = {"paths": list(paths), "ok": ok.tolist(), "skipped": skipped, "settings": cfg.as_dict(), "dtype": dtype}
                (tmp / "index.json").write_text(json.dumps(index))
                if final.exists():  # an incomplete cache (no index.json) from elsewhere: never read it
                    shutil.rmtree(final)
                os.replace(tmp, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            cached = _open(final, built=True)
    for _path, reason in cached.skipped:
        log.warning("skipped unreadable audio: %s", reason)
    if not cached.ok.any():
        first = "; ".join(r for _, r in cached.skipped[:3])
        raise RuntimeError(f"none of the {len(paths)} audio files could be decoded (e.g. {first})")
    return cached
