"""Frozen-feature cache: a frozen encoder's pooled hidden states, computed once per clip.

With a frozen encoder, no waveform augmentation and a head that reads pooled hidden states
(:attr:`~ser_lightning.models.encoders.classifier.EncoderClassifier.cacheable`), a clip's encoder
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
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_lightning.data.cache import (
    CacheCorrupt,
    CachedWaves,
    _index_digest,
    _locked,
    read_index,
    sha256_file,
)

log = logging.getLogger(__name__)

EMBEDDING_FORMAT_VERSION = 1


@dataclass
class CachedEmbeddings:
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


def embedding_key(audio: CachedWaves, rows: Sequence[int], identity: dict) -> str:
    """Hash of everything that determines the embeddings (see the module docstring); 20 hex digits."""
    body = {"v": EMBEDDING_FORMAT_VERSION, "audio": _audio_identity(audio), "rows": [int(r) for r in rows],
            "identity": identity}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]


def _open(directory: Path, audio: CachedWaves, rows: np.ndarray, identity: dict, shape: tuple[int, ...],
          verify_checksum: bool, built: bool) -> CachedEmbeddings:
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
    if verify_checksum and sha256_file(data_path) != index.get("sha256"):
        raise CacheCorrupt("the SHA-256 of embeddings.npy does not match the one recorded at build time")
    try:
        data = np.load(data_path, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise CacheCorrupt(f"embeddings.npy is unreadable ({err})") from None
    if data.shape != (len(rows), *shape) or data.dtype != np.float32:
        raise CacheCorrupt(f"embeddings.npy holds {data.dtype} {data.shape}, expected float32 {(len(rows), *shape)}")
    return CachedEmbeddings(data_path, rows, directory, built)


def build_or_load_embeddings(
    audio: CachedWaves,
    rows: Sequence[int],
    identity: dict,
    shape: Sequence[int],
    extract: Callable[[np.ndarray], None],
    cache_dir: str | Path,
    verify_checksum: bool = True,
) -> CachedEmbeddings:
    """Open the embeddings of these audio-cache rows for this encoder, computing them first if needed.

    Args:
        audio: The opened audio cache the clips come from.
        rows: Audio-cache rows to embed (each clip's embedding lands in the same position).
        identity: JSON-able description of the encoder (weights digest and output-changing
            settings); part of the key.
        shape: Shape of one clip's embedding, e.g. ``(hidden_states, pooled_dim)``.
        extract: Called with a writable float32 array ``(len(rows), *shape)`` to fill (e.g. by a
            Lightning prediction loop); only called when no valid cache exists.
        cache_dir: The data cache directory (``data.cache_dir``); embeddings go to its ``embeddings/``.
        verify_checksum: Check the SHA-256 of an existing ``embeddings.npy`` (its size is checked either way).

    Returns:
        The opened :class:`CachedEmbeddings`.

    Raises:
        ValueError: no rows.
        RuntimeError: the extraction left non-finite values, or a fresh cache fails its own check.
    """
    rows = np.asarray(rows, dtype=np.int64)
    shape = tuple(int(s) for s in shape)
    if len(rows) == 0:
        raise ValueError("no clips to embed")
    root = Path(cache_dir) / "embeddings"
    key = embedding_key(audio, rows, identity)
    final = root / key
    with _locked(root / f"{key}.lock"):
        reason = None
        if final.exists():
            try:
                cached = _open(final, audio, rows, identity, shape, verify_checksum, built=False)
            except CacheCorrupt as err:
                reason = str(err)
                log.warning("embedding cache %s is damaged: %s; rebuilding it", final, reason)
            else:
                log.info("reusing embedding cache %s (%d clips, %s each)", final, len(rows), shape)
                return cached
        for stale in root.glob(f"{key}.tmp-*"):  # left by a killed builder (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = root / f"{key}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            log.info("computing the frozen encoder's embeddings of %d clips into %s", len(rows), final)
            out = np.lib.format.open_memmap(tmp / "embeddings.npy", mode="w+", dtype=np.float32,
                                            shape=(len(rows), *shape))
            out[:] = np.nan  # rows the extraction misses stay NaN and fail the check below
            extract(out)
            if not np.isfinite(out).all():
                raise RuntimeError(f"the embedding extraction left {int((~np.isfinite(out)).any(axis=tuple(range(1, out.ndim))).sum())} "
                                   "clip(s) without finite values")
            out.flush()
            del out
            index = {"format": EMBEDDING_FORMAT_VERSION, "audio": _audio_identity(audio), "rows": rows.tolist(),
                     "identity": identity, "shape": [len(rows), *shape],
                     "bytes": (tmp / "embeddings.npy").stat().st_size, "sha256": sha256_file(tmp / "embeddings.npy")}
            index["index_sha256"] = _index_digest(index)
            (tmp / "index.json").write_text(json.dumps(index), encoding="utf-8")
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        try:
            cached = _open(final, audio, rows, identity, shape, verify_checksum=False, built=True)
        except CacheCorrupt as err:
            raise RuntimeError(f"embedding cache {final} failed its check right after the build: {err}") from None
        cached.rebuilt_because = reason
        return cached
