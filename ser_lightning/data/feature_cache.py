"""Frozen-feature cache: a frozen encoder's pooled hidden states, computed once per clip.

With a frozen encoder, no waveform augmentation and a head that reads pooled hidden states
(:attr:`~ser_lightning.models.encoders.encoder_classifier.EncoderClassifier.cacheable`), a clip's encoder
output never changes during training, so it is computed once and stored like the audio
(:mod:`ser_lightning.data.cache`), with the same guarantees:

Layout under ``cache_dir``::

    embeddings/<key>/embeddings.npy   (n_clips, *shape) float32, row i = i-th requested audio-cache row
    embeddings/<key>/index.json       audio cache key and SHA-256, rows, encoder identity, shape, size and
                                      SHA-256 of embeddings.npy, SHA-256 of index.json's own content
    embeddings/<key>.lock             advisory lock held while building or checking

``key`` hashes a format version, the audio cache it was computed from (its key, which covers
every file's path, size and modification time and the decoding settings, and its waves' SHA-256),
the rows, and the encoder's identity (its weights' digest and the settings that change its
output): new audio, other settings or other weights give a new key. An existing cache is checked
on every open (index checksum, matching content, byte size, SHA-256); a damaged one is logged with
the reason, deleted and rebuilt, never read. Builds write into a temporary directory renamed into
place when complete, under the lock (concurrent processes wait and reuse the result).

A distributed extraction (the processes of a DDP run) uses the same build: rank 0 starts it
(:func:`begin_feature_cache`), every process embeds whole batches of its share
(:func:`extraction_shard`) into its own shard file in the temporary directory
(:func:`shard_files`), and rank 0 merges them (:func:`merge_shards`: every clip exactly once)
and finishes the build; the other processes then open it (:func:`open_feature_cache`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_lightning.data.cache import (
    CacheCorrupt,
    CachedWaves,
    _index_digest,
    _locked,
    checked_sha256,
    read_index,
    sha256_file,
)
from ser_lightning.deprecation import renamed

log = logging.getLogger(__name__)

EMBEDDING_FORMAT_VERSION = 1


@dataclass
class FrozenFeatureCache:
    """An opened frozen-feature cache.

    Attributes:
        path: Its ``embeddings.npy`` ``(len(rows), *shape)`` float32.
        rows: Audio-cache rows, one per embedding row ``(n,)``.
        directory: The cache directory (``cache_dir/embeddings/<key>``).
        built: ``True`` when this call computed the embeddings, ``False`` when it reused them.
        rebuilt_because: Why an existing cache was discarded and rebuilt by this call, else ``None``.
    """

    path: Path
    rows: np.ndarray
    directory: Path
    built: bool
    rebuilt_because: str | None = None


def _audio_identity(audio: CachedWaves) -> dict:
    index = json.loads((audio.directory / "index.json").read_text(encoding="utf-8"))
    return {"audio_key": audio.directory.name, "waves_sha256": index["waves_sha256"]}


def feature_cache_key(audio: CachedWaves, rows: Sequence[int], identity: dict) -> str:
    """Hash of everything that determines the embeddings (see the module docstring); 20 hex digits."""
    body = {"v": EMBEDDING_FORMAT_VERSION, "audio": _audio_identity(audio), "rows": [int(r) for r in rows],
            "identity": identity}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]


def _open(directory: Path, audio: CachedWaves, rows: np.ndarray, identity: dict, shape: tuple[int, ...],
          verify_checksum: bool, built: bool) -> FrozenFeatureCache:
    index_path, data_path = directory / "index.json", directory / "embeddings.npy"
    index = read_index(index_path, EMBEDDING_FORMAT_VERSION, "embedding")
    if (index.get("audio") != _audio_identity(audio) or index.get("rows") != rows.tolist()
            or index.get("identity") != identity or index.get("shape") != [len(rows), *shape]):
        raise CacheCorrupt("index.json describes other clips, encoder or shape than its key")
    try:
        size = data_path.stat().st_size
    except FileNotFoundError:
        raise CacheCorrupt("embeddings.npy is missing") from None
    if size != index.get("bytes"):
        raise CacheCorrupt(f"embeddings.npy has {size} bytes but {index.get('bytes')} were written (truncated or replaced)")
    if verify_checksum and checked_sha256(data_path) != index.get("sha256"):
        raise CacheCorrupt("the SHA-256 of embeddings.npy does not match the one recorded at build time")
    try:
        data = np.load(data_path, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise CacheCorrupt(f"embeddings.npy is unreadable ({err})") from None
    if data.shape != (len(rows), *shape) or data.dtype != np.float32:
        raise CacheCorrupt(f"embeddings.npy holds {data.dtype} {data.shape}, expected float32 {(len(rows), *shape)}")
    return FrozenFeatureCache(data_path, rows, directory, built)


class FeatureCacheBuild:
    """One frozen-feature cache being built: holds its file lock and a temporary directory until
    :meth:`finish` renames the directory into place or :meth:`abort` removes it.

    Made by :func:`begin_feature_cache`; also a context manager that aborts an unfinished build on exit.

    Attributes:
        tmp: The temporary build directory (``cache_dir/embeddings/<key>.tmp-<random>``); other
            processes of a distributed extraction write their shard files here.
        final: Where the finished cache goes.
        rebuilt_because: Why an existing cache was discarded, else ``None``.
    """

    def __init__(self, audio: CachedWaves, rows: np.ndarray, identity: dict, shape: tuple[int, ...], final: Path,
                 lock: ExitStack, rebuilt_because: str | None) -> None:
        self.audio, self.rows, self.identity, self.shape = audio, rows, identity, shape
        self.final, self.rebuilt_because = final, rebuilt_because
        self._lock = lock
        self._out: np.ndarray | None = None
        for stale in final.parent.glob(f"{final.name}.tmp-*"):  # left by a killed builder (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        self.tmp = final.parent / f"{final.name}.tmp-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir(parents=True)

    def allocate(self) -> np.ndarray:
        """The array to fill: ``tmp/embeddings.npy`` ``(len(rows), *shape)`` float32, a writable memory
        map of NaN (rows the extraction misses stay NaN and fail :meth:`finish`)."""
        log.info("computing the frozen features of %d clips into %s", len(self.rows), self.final)
        out = np.lib.format.open_memmap(self.tmp / "embeddings.npy", mode="w+", dtype=np.float32,
                                        shape=(len(self.rows), *self.shape))
        out[:] = np.nan
        self._out = out
        return out

    def finish(self) -> FrozenFeatureCache:
        """Check the array of :meth:`allocate` (filled by now; drop other references to it first),
        write its checksummed index, rename the directory into place and release the lock.

        Returns:
            The opened cache (``built=True``).

        Raises:
            RuntimeError: the extraction left non-finite values, or the fresh cache fails its own check.
        """
        out, self._out = self._out, None
        try:
            if out is None:
                raise RuntimeError("FeatureCacheBuild.finish() before allocate()")
            if not np.isfinite(out).all():
                raise RuntimeError(f"the frozen-feature extraction left {int((~np.isfinite(out)).any(axis=tuple(range(1, out.ndim))).sum())} "
                                   "clip(s) without finite values")
            out.flush()
            del out
            tmp, final = self.tmp, self.final
            index = {"format": EMBEDDING_FORMAT_VERSION, "audio": _audio_identity(self.audio), "rows": self.rows.tolist(),
                     "identity": self.identity, "shape": [len(self.rows), *self.shape],
                     "bytes": (tmp / "embeddings.npy").stat().st_size, "sha256": sha256_file(tmp / "embeddings.npy")}
            index["index_sha256"] = _index_digest(index)
            (tmp / "index.json").write_text(json.dumps(index), encoding="utf-8")
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            try:
                cached = _open(final, self.audio, self.rows, self.identity, self.shape, verify_checksum=False, built=True)
            except CacheCorrupt as err:
                raise RuntimeError(f"frozen-feature cache {final} failed its check right after the build: {err}") from None
            cached.rebuilt_because = self.rebuilt_because
            return cached
        finally:
            self.abort()

    def abort(self) -> None:
        """Remove the temporary directory and release the lock (nothing happens once finished or aborted)."""
        if self._lock is None:
            return
        self._out = None
        shutil.rmtree(self.tmp, ignore_errors=True)
        lock, self._lock = self._lock, None
        lock.close()

    def __enter__(self) -> FeatureCacheBuild:
        return self

    def __exit__(self, *exc) -> None:
        self.abort()


def extraction_shard(n: int, batch_size: int, rank: int, world_size: int) -> np.ndarray:
    """Positions (into the rows to embed) that one process of a distributed extraction embeds.

    The rows are cut into the batches a single process would use (``batch_size`` consecutive
    rows, the last one shorter) and the batches are dealt out in turn: process ``rank`` takes
    batches ``rank, rank + world_size, ...``. Every row goes to exactly one process and every batch
    holds the same clips as on one device, so the padded lengths, and with them the embeddings, do
    not depend on the number of processes. A process may get no batch (fewer batches than processes).

    Args:
        n: Number of rows to embed.
        batch_size: Clips per extraction batch.
        rank: This process's global rank, ``0 <= rank < world_size``.
        world_size: Number of processes.

    Returns:
        Sorted positions ``(k,)`` int64.

    Raises:
        ValueError: a batch size below 1 or a rank outside ``[0, world_size)``.
    """
    if batch_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"extraction_shard: batch_size={batch_size} rank={rank} world_size={world_size}")
    starts = range(rank * batch_size, n, world_size * batch_size)
    return np.asarray([i for s in starts for i in range(s, min(s + batch_size, n))], dtype=np.int64)


def shard_files(directory: Path, rank: int) -> tuple[Path, Path]:
    """The files one process of a distributed extraction writes.

    Args:
        directory: The shard directory inside the build's temporary directory.
        rank: The process's global rank.

    Returns:
        ``(part-<rank>.npy, part-<rank>.positions.npy)``: its embeddings ``(k, *shape)`` float32 and the
        positions ``(k,)`` int64 (into the rows to embed) they belong to.
    """
    return directory / f"part-{rank:05d}.npy", directory / f"part-{rank:05d}.positions.npy"


def merge_shards(out: np.ndarray, directory: Path, world_size: int) -> list[int]:
    """Copy every process's shard of a distributed extraction into ``out`` and check that each row was
    embedded exactly once.

    Args:
        out: The array to fill ``(n, *shape)`` (:meth:`FeatureCacheBuild.allocate`).
        directory: Where the processes wrote their :func:`shard_files` (the build's ``tmp``).
        world_size: Number of processes.

    Returns:
        Rows embedded by each process ``(world_size,)``.

    Raises:
        RuntimeError: a process's shard is missing or malformed, or a row was embedded by no process or by
            more than one (named by position).
    """
    counts = np.zeros(len(out), dtype=np.int64)
    per_rank = []
    for rank in range(world_size):
        data_path, pos_path = shard_files(directory, rank)
        try:
            positions = np.load(pos_path)
            data = np.load(data_path, mmap_mode="r")
        except (OSError, ValueError) as err:
            raise RuntimeError(f"the shard of extraction process {rank} is missing or unreadable ({err})") from None
        if positions.ndim != 1 or data.shape != (len(positions), *out.shape[1:]) or \
                (len(positions) and (positions.min() < 0 or positions.max() >= len(out))):
            raise RuntimeError(f"the shard of extraction process {rank} ({data_path}) holds {data.shape} for "
                               f"{positions.shape} positions, not rows of {out.shape}")
        out[positions] = data
        np.add.at(counts, positions, 1)
        per_rank.append(len(positions))
        del data
    if (counts != 1).any():
        missing, twice = np.flatnonzero(counts == 0), np.flatnonzero(counts > 1)
        raise RuntimeError(f"the distributed extraction embedded {len(missing)} clip(s) by no process "
                           f"(positions {missing[:10].tolist()}) and {len(twice)} by more than one "
                           f"(positions {twice[:10].tolist()})")
    return per_rank


def _cache_target(audio: CachedWaves, rows: Sequence[int], identity: dict, shape: Sequence[int],
                  cache_dir: str | Path) -> tuple[np.ndarray, tuple[int, ...], Path]:
    """``(rows (n,) int64, shape as ints, the cache's directory cache_dir/embeddings/<key>)``; its lock file is
    ``<key>.lock`` beside it."""
    rows = np.asarray(rows, dtype=np.int64)
    return rows, tuple(int(s) for s in shape), Path(cache_dir) / "embeddings" / feature_cache_key(audio, rows, identity)


def begin_feature_cache(
    audio: CachedWaves,
    rows: Sequence[int],
    identity: dict,
    shape: Sequence[int],
    cache_dir: str | Path,
    verify_checksum: bool = True,
) -> FrozenFeatureCache | FeatureCacheBuild:
    """Open the embeddings of these audio-cache rows for this encoder, or start building them.

    Takes the cache's file lock (waiting for another process's build) and checks an existing cache
    (a damaged one is logged and rebuilt). The lock is released on return when the cache is valid,
    else held by the returned :class:`FeatureCacheBuild` until it finishes or aborts.

    Args:
        audio: The opened audio cache the clips come from.
        rows: Audio-cache rows to embed (each clip's embedding lands in the same position).
        identity: JSON-able description of the encoder (weights digest and output-changing
            settings); part of the key.
        shape: Shape of one clip's embedding, e.g. ``(hidden_states, pooled_dim)``.
        cache_dir: The data cache directory (``data.cache_dir``); embeddings go to its ``embeddings/``.
        verify_checksum: Check the SHA-256 of an existing ``embeddings.npy`` (its size is checked either way).

    Returns:
        The opened :class:`FrozenFeatureCache` (``built=False``), or an :class:`FeatureCacheBuild` to fill.

    Raises:
        ValueError: no rows.
    """
    rows, shape, final = _cache_target(audio, rows, identity, shape, cache_dir)
    if len(rows) == 0:
        raise ValueError("no clips to embed")
    lock = ExitStack()
    lock.enter_context(_locked(final.parent / f"{final.name}.lock"))
    try:
        reason = None
        if final.exists():
            try:
                cached = _open(final, audio, rows, identity, shape, verify_checksum, built=False)
            except CacheCorrupt as err:
                reason = str(err)
                log.warning("frozen-feature cache %s is damaged: %s; rebuilding it", final, reason)
            else:
                log.info("reusing frozen-feature cache %s (%d clips, %s each)", final, len(rows), shape)
                lock.close()
                return cached
        return FeatureCacheBuild(audio, rows, identity, shape, final, lock, reason)
    except BaseException:
        lock.close()
        raise


def open_feature_cache(
    audio: CachedWaves,
    rows: Sequence[int],
    identity: dict,
    shape: Sequence[int],
    cache_dir: str | Path,
) -> FrozenFeatureCache:
    """Open a cache another process has just built or checked (a distributed extraction's ranks
    other than 0), under its lock; its size and index are checked, its SHA-256 is not read again.

    Args:
        audio, rows, identity, shape, cache_dir: As for :func:`begin_feature_cache`.

    Returns:
        The opened :class:`FrozenFeatureCache` (``built=False``).

    Raises:
        RuntimeError: the cache is missing or damaged.
    """
    rows, shape, final = _cache_target(audio, rows, identity, shape, cache_dir)
    with _locked(final.parent / f"{final.name}.lock"):
        try:
            return _open(final, audio, rows, identity, shape, verify_checksum=False, built=False)
        except CacheCorrupt as err:
            raise RuntimeError(f"frozen-feature cache {final} is not usable after its build: {err}") from None


def build_or_load_feature_cache(
    audio: CachedWaves,
    rows: Sequence[int],
    identity: dict,
    shape: Sequence[int],
    extract: Callable[[np.ndarray], None],
    cache_dir: str | Path,
    verify_checksum: bool = True,
) -> FrozenFeatureCache:
    """Open the embeddings of these audio-cache rows for this encoder, computing them first if needed
    (:func:`begin_feature_cache`, then ``extract`` and :meth:`FeatureCacheBuild.finish` on one process).

    Args:
        audio, rows, identity, shape, cache_dir, verify_checksum: As for :func:`begin_feature_cache`.
        extract: Called with a writable float32 array ``(len(rows), *shape)`` to fill (e.g. by a
            Lightning prediction loop); only called when no valid cache exists.

    Returns:
        The opened :class:`FrozenFeatureCache`.

    Raises:
        ValueError: no rows.
        RuntimeError: the extraction left non-finite values, or a fresh cache fails its own check.
    """
    started = begin_feature_cache(audio, rows, identity, shape, cache_dir, verify_checksum)
    if isinstance(started, FrozenFeatureCache):
        return started
    with started as build:
        out = build.allocate()
        extract(out)
        del out
        return build.finish()


#: Old names (before one name, "frozen features", was used for the cache and what it holds).
__getattr__ = renamed(__name__, {"CachedEmbeddings": "FrozenFeatureCache", "EmbeddingBuild": "FeatureCacheBuild",
                                 "build_or_load_embeddings": "build_or_load_feature_cache",
                                 "begin_embeddings": "begin_feature_cache", "open_embeddings": "open_feature_cache",
                                 "embedding_key": "feature_cache_key"}, globals())
