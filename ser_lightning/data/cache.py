"""Decode-once waveform cache: one memory-mappable ``.npy`` array per (settings, file list).

Layout under ``cache_dir``::

    <key>/waves.npy      (n_files, num_samples) float16 or float32, row i = file i
    <key>/index.json     paths, per-file ok flag and valid length in samples, skip reasons, settings, size and SHA-256 of
                         waves.npy, SHA-256 of index.json's own content (written last)
    <key>.lock           advisory lock held while building or checking

``key`` is a SHA-256 of the :class:`~ser_lightning.data.audio.AudioConfig`, the storage dtype, a
format version and every file's path, size and modification time: any change that affects the
audio gives a new key and a rebuild.

Integrity:

* **Atomic writes.** A cache is built in a temporary directory and renamed into place
  (``os.replace``) only when complete, so a half-written cache is never used; the temporary
  directory of a killed build is removed by the next build of that key.
* **Lock.** :func:`ser_lightning.files.file_lock` (``filelock``, portable) on ``<key>.lock``: concurrent processes (e.g. DDP ranks) wait for one
  builder and then reuse its result; checking an existing cache happens under the lock too.
* **Verification on every open.** ``index.json`` must parse, carry its own matching checksum
  and describe exactly the requested files and settings; ``waves.npy`` must have the recorded
  byte size (catches truncation; a ``stat``) and, unless ``verify_checksum=False``, the recorded
  SHA-256 (catches flipped bytes). A cache that fails any check is logged as a warning with the
  reason, deleted and rebuilt; it is never read. (The checksums guard against accidents — a
  full disk, a partial copy, bit rot, a hand edit — not against deliberate forgery.)
* **Cost of the checksum.** Hashing reads the whole array: measured 0.10-0.42 s for the
  138 MB RAVDESS cache (1440 clips x 3 s x 16 kHz, float16) on a shared 2-core CPU with the file
  in the page cache, i.e. roughly 1-3 s per GB; training reads every page in its first epoch
  anyway. So the full SHA-256 is verified on every open (below the 1 s budget) rather than
  hashing sampled blocks, which would be faster but miss a flipped byte between the samples.
  ``verify_checksum=False`` keeps only the size check. One process hashes a file once while its
  ``stat`` (inode, size, modification and status-change times) is unchanged (:func:`checked_sha256`):
  the jobs of a multirun (cross-validation folds) open the same cache again and again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ser_lightning import files
from ser_lightning.data.audio import AudioConfig, AudioDecodeError, load_clip
from ser_lightning.files import file_lock

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 3  # 2: size and SHA-256 of waves.npy and of index.json in index.json; 3: clip lengths
CACHE_DTYPES = ("float16", "float32")


class CacheCorrupt(Exception):
    """An existing cache failed a check (the message says which); it is rebuilt, never read."""


@dataclass
class CachedWaves:
    """An opened cache.

    Attributes:
        waves: Read-only memory map ``(n_files, num_samples)``; rows of skipped files are zeros.
        ok: Boolean mask ``(n_files,)``: ``False`` where the file could not be decoded.
        lengths: Valid samples per clip ``(n_files,)`` int64 (at most ``num_samples``; the rest of
            the row is padding; 0 for skipped files).
        skipped: ``(path, reason)`` for every file that could not be decoded.
        directory: The cache directory (``cache_dir/<key>``).
        built: ``True`` when this call decoded the files, ``False`` when it reused a cache.
        rebuilt_because: Why an existing cache in ``directory`` was discarded and rebuilt by
            this call (truncated, modified...), else ``None``.
    """

    waves: np.ndarray
    ok: np.ndarray
    skipped: list[tuple[str, str]]
    lengths: np.ndarray
    directory: Path
    built: bool
    rebuilt_because: str | None = None


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


def _locked(lock_path: Path):
    """The cache's lock: :func:`ser_lightning.files.file_lock` (``filelock``, portable)."""
    return file_lock(lock_path)


#: Hex SHA-256 of a file (:func:`ser_lightning.files.sha256_file`; kept under its old name here).
sha256_file = files.sha256_file


#: Caches whose reuse this process has logged at INFO (later reuses are logged at DEBUG).
_ANNOUNCED: set[Path] = set()

#: Digests :func:`checked_sha256` computed in this process, by the file's identity, size and timestamps.
_CHECKED_DIGESTS: dict[tuple, str] = {}


def checked_sha256(path: str | Path) -> str:
    """:func:`sha256_file` of an existing cache file, read once per process while the file stays as it was.

    A Hydra multirun opens the same caches once per job (the folds of a cross-validation: twice each); the
    file is hashed again only when its device, inode, size, modification or status-change time differ from
    the last hashing in this process (any write, truncation, replacement or ``touch`` changes one of them),
    so a file changed on disk is always read again.

    Args:
        path: The file.

    Returns:
        Its hex SHA-256.
    """
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    digest = _CHECKED_DIGESTS.get(key)
    if digest is None:
        digest = _CHECKED_DIGESTS[key] = sha256_file(path)
    return digest


def _index_digest(index: dict) -> str:
    """SHA-256 of an index's content without its own ``index_sha256`` entry."""
    body = {k: v for k, v in index.items() if k != "index_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def read_index(index_path: Path, version: int, kind: str = "cache") -> dict:
    """Read a cache's ``index.json`` and check it is whole: present, parseable, of format ``version``, and
    unchanged since the build (its own ``index_sha256``).

    Args:
        index_path: The ``index.json`` file.
        version: The format version the reader expects.
        kind: Named in the message (``cache``, ``embedding``).

    Returns:
        The index.

    Raises:
        CacheCorrupt: naming the first problem.
    """
    if not index_path.is_file():
        raise CacheCorrupt("index.json is missing (an interrupted build)")
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise CacheCorrupt(f"index.json is unreadable ({type(err).__name__}: {err})") from None
    if not isinstance(index, dict) or index.get("format") != version:
        raise CacheCorrupt(f"index.json is not a format-{version} {kind} index")
    if index.get("index_sha256") != _index_digest(index):
        raise CacheCorrupt("index.json was modified after the build (its checksum does not match its content)")
    return index


def _open(directory: Path, paths: Sequence[str], cfg: AudioConfig, dtype: str, verify_checksum: bool,
          built: bool) -> CachedWaves:
    """Open a cache after checking it; raise :class:`CacheCorrupt` naming the first problem.

    Checks, cheapest first: ``index.json`` parses and matches its own checksum; it lists exactly
    ``paths``, ``cfg`` and ``dtype``; ``waves.npy`` has the recorded byte size; (optional) its
    SHA-256 matches; its header gives shape ``(len(paths), cfg.num_samples)`` and ``dtype``.
    """
    index_path, waves_path = directory / "index.json", directory / "waves.npy"
    index = read_index(index_path, CACHE_FORMAT_VERSION)
    missing = [k for k in ("paths", "settings", "dtype", "ok", "lengths", "skipped", "waves_bytes", "waves_sha256")
               if k not in index]
    if missing:
        raise CacheCorrupt(f"index.json lacks {missing}")
    if index["paths"] != list(paths) or index["settings"] != cfg.as_dict() or index["dtype"] != dtype:
        raise CacheCorrupt("index.json describes other files or settings than its key")
    try:
        size = waves_path.stat().st_size
    except FileNotFoundError:
        raise CacheCorrupt("waves.npy is missing") from None
    if size != index["waves_bytes"]:
        raise CacheCorrupt(f"waves.npy has {size} bytes but {index['waves_bytes']} were written (truncated or replaced)")
    if verify_checksum and checked_sha256(waves_path) != index["waves_sha256"]:
        raise CacheCorrupt("the SHA-256 of waves.npy does not match the one recorded at build time (modified content)")
    try:
        waves = np.load(waves_path, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise CacheCorrupt(f"waves.npy is unreadable ({err})") from None
    if waves.shape != (len(paths), cfg.num_samples) or waves.dtype != np.dtype(dtype):
        raise CacheCorrupt(f"waves.npy holds {waves.dtype} {waves.shape}, expected {dtype} {(len(paths), cfg.num_samples)}")
    ok = np.asarray(index["ok"], dtype=bool)
    if len(ok) != len(paths):
        raise CacheCorrupt(f"index.json has {len(ok)} ok flags for {len(paths)} files")
    lengths = np.asarray(index["lengths"], dtype=np.int64)
    if lengths.shape != ok.shape or bool((lengths < 0).any()) or bool((lengths > cfg.num_samples).any()):
        raise CacheCorrupt(f"index.json's clip lengths do not fit {len(paths)} clips of at most {cfg.num_samples} samples")
    return CachedWaves(waves, ok, [tuple(x) for x in index["skipped"]], lengths, directory, built)


def _warm_up_soundfile() -> None:
    """Run soundfile's error path once in this thread (see :func:`_decode_all`)."""
    import io

    import soundfile as sf

    try:
        sf.info(io.BytesIO(b"not audio"))
    except Exception:  # noqa: BLE001 - expected: the point is to exercise the error path
        pass


def _decode_all(paths: Sequence[str], cfg: AudioConfig, out: np.ndarray, workers: int, progress: bool):
    ok = np.ones(len(paths), dtype=bool)
    lengths = np.zeros(len(paths), dtype=np.int64)
    skipped: list[tuple[str, str]] = []

    def job(i: int) -> None:
        try:
            out[i], lengths[i] = load_clip(paths[i], cfg, return_length=True)
        except AudioDecodeError as err:
            ok[i] = False
            skipped.append((paths[i], str(err)))

    columns = (TextColumn("decoding audio"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task("decode", total=len(paths))
        # cffi realises soundfile's C types lazily, and two threads doing that at once can abort the
        # process (cffi assertion in realize_c_type.c): decode the first file in this thread first.
        _warm_up_soundfile()
        if len(paths):
            job(0)
            bar.advance(task)
        # soundfile and soxr release the GIL, so threads decode in parallel.
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for _ in pool.map(job, range(1, len(paths))):
                bar.advance(task)
    skipped.sort()
    return ok, lengths, skipped


def _build(directory: Path, paths: Sequence[str], cfg: AudioConfig, dtype: str, workers: int,
           progress: bool) -> None:
    """Decode every file into a temporary directory, then rename it to ``directory``."""
    tmp = directory.parent / f"{directory.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        log.info("decoding %d files into cache %s", len(paths), directory)
        out = np.lib.format.open_memmap(tmp / "waves.npy", mode="w+", dtype=dtype, shape=(len(paths), cfg.num_samples))
        ok, lengths, skipped = _decode_all(paths, cfg, out, workers, progress)
        out.flush()
        del out
        index = {"format": CACHE_FORMAT_VERSION, "paths": list(paths), "ok": ok.tolist(),
                 "lengths": lengths.tolist(), "skipped": skipped,
                 "settings": cfg.as_dict(), "dtype": dtype, "waves_bytes": (tmp / "waves.npy").stat().st_size,
                 "waves_sha256": sha256_file(tmp / "waves.npy")}
        index["index_sha256"] = _index_digest(index)
        (tmp / "index.json").write_text(json.dumps(index), encoding="utf-8")
        if directory.exists():  # a damaged or incomplete cache: never read, replaced
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build_or_load(
    paths: Sequence[str],
    cfg: AudioConfig,
    cache_dir: str | Path,
    dtype: str = "float16",
    workers: int = 2,
    progress: bool = True,
    verify_checksum: bool = True,
) -> CachedWaves:
    """Open the cache for these files and settings, building it first if needed.

    Files that cannot be decoded are logged as warnings and returned in ``skipped`` (their rows
    stay zero); the cache is still built for the others. An existing cache is checked first
    (see the module docstring); a damaged one is logged as a warning with the reason and rebuilt.

    Args:
        paths: Audio files, in row order.
        cfg: Preprocessing settings.
        cache_dir: Directory holding caches (created if missing).
        dtype: ``"float16"`` (half the memory, default) or ``"float32"``.
        workers: Decoding threads.
        progress: Show a rich progress bar while building.
        verify_checksum: Check the SHA-256 of an existing ``waves.npy`` (about 1-3 s per GB);
            its size is checked either way.

    Returns:
        The opened :class:`CachedWaves`.

    Raises:
        ValueError: unknown dtype, or an empty file list.
        RuntimeError: every file failed to decode (the message names the first failures), or a
            freshly built cache fails its own check (e.g. the disk is full).
    """
    if dtype not in CACHE_DTYPES:
        raise ValueError(f"data.cache_dtype={dtype!r} is not one of {list(CACHE_DTYPES)}")
    if not paths:
        raise ValueError("no audio files to cache")
    cache_dir = Path(cache_dir)
    key = cache_key(paths, cfg, dtype)
    final = cache_dir / key
    with _locked(cache_dir / f"{key}.lock"):
        reason = None
        if final.exists():
            try:
                cached = _open(final, paths, cfg, dtype, verify_checksum, built=False)
            except CacheCorrupt as err:
                reason = str(err)
                log.warning("audio cache %s is damaged: %s; rebuilding it", final, reason)
            else:  # said once per process: a datamodule opens the same cache for its splits / views
                log.log(logging.DEBUG if final in _ANNOUNCED else logging.INFO, "reusing audio cache %s (%d files)",
                        final, len(paths))
                _ANNOUNCED.add(final)
        if not final.exists() or reason is not None:
            for stale in cache_dir.glob(f"{key}.tmp-*"):  # left by a killed builder (we hold the lock)
                shutil.rmtree(stale, ignore_errors=True)
            _build(final, paths, cfg, dtype, workers, progress)
            try:
                cached = _open(final, paths, cfg, dtype, verify_checksum=False, built=True)
            except CacheCorrupt as err:
                raise RuntimeError(f"audio cache {final} failed its check right after the build: {err}") from None
            cached.rebuilt_because = reason
            _ANNOUNCED.add(final)  # "decoding ... into cache" said it
    for _path, why in cached.skipped:
        log.warning("skipped unreadable audio: %s", why)
    if not cached.ok.any():
        first = "; ".join(r for _, r in cached.skipped[:3])
        raise RuntimeError(f"none of the {len(paths)} audio files could be decoded (e.g. {first})")
    return cached
