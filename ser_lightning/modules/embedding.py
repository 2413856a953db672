"""Frozen-feature extraction as a Lightning prediction loop, and the switch to the cached path.

:func:`frozen_feature_path` decides whether a run can train on cached embeddings
(:mod:`ser_lightning.data.feature_cache`): a cacheable encoder model (frozen encoder, per-layer
pooling without parameters), no waveform augmentation and ``model.feature_cache`` not ``off``.
:func:`use_frozen_features` then computes the pooled hidden states of every clip once —
``trainer.predict`` over the whole clips with :class:`EmbeddingExtractor`, a progress bar and
:class:`EmbeddingWriter` writing each batch into the cache's array — and switches the data module
and the classifier to them; a later run with the same clips and encoder reuses them. With crops
(``data.train_crop_s``, :mod:`ser_lightning.data.crops`) the windows' pooled states are cached the
same way, once per window length and count.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch.callbacks import BasePredictionWriter

from ser_lightning.data.feature_cache import CachedEmbeddings, build_or_load_embeddings
from ser_lightning.models.encoders.base import weights_sha256

log = logging.getLogger(__name__)

#: ``model.feature_cache`` choices: ``auto`` (cache when possible) or ``off`` (always the waveform path).
FEATURE_CACHE_MODES = ("auto", "off")


class EmbeddingExtractor(pl.LightningModule):
    """Prediction-only module: whole-clip batches → pooled hidden states of a frozen encoder.

    Args:
        network: An encoder model with ``pooled_states(wave, lengths)`` (e.g.
            :class:`~ser_lightning.models.encoders.classifier.EncoderClassifier`).

    Prediction step:
        ``WholeClipBatch(waves (batch, time), rows (batch,), lengths (batch,), norm_stats (batch, 2) or None)``
        → ``(rows (batch,), pooled (batch, hidden_states, pooled_dim))``.
    """

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0):
        """Pooled hidden states of one batch, with the cache rows they belong to."""
        waves, rows, lengths, norm = batch
        return rows, self.network.pooled_states(waves, lengths, norm).float()


class EmbeddingWriter(BasePredictionWriter):
    """Writes each prediction batch into the rows of an array (no predictions kept in memory).

    Args:
        out: Writable array ``(n, *shape)``.
        rows: Cache row of each array row ``(n,)``, sorted.
    """

    def __init__(self, out: np.ndarray, rows: np.ndarray) -> None:
        super().__init__(write_interval="batch")
        self.out, self.rows = out, rows

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        """Store one predicted batch: ``prediction = (cache rows (batch,), pooled (batch, num_hidden_states, pooled_dim))``."""
        rows, pooled = prediction
        pos = np.searchsorted(self.rows, rows.cpu().numpy())
        self.out[pos] = pooled.cpu().numpy()


def encoder_identity(network: torch.nn.Module, model_settings: dict[str, Any],
                     norm_stats: dict[str, tuple[float, float]] | None = None,
                     extract_batch_size: int | None = None) -> dict:
    """What makes a frozen encoder's pooled output what it is: the class, a SHA-256 of its weights
    and buffers, the settings that change the output (encoder, pretrained, window, pooling) and the
    per-corpus standardisation statistics its clips are encoded with.

    Args:
        network: The encoder model (its ``encoder`` and ``pooling`` are read).
        model_settings: The ``model`` settings.
        norm_stats: Corpus → ``(mean, sd)`` the clips are standardised with
            (``model.norm_stats=per_corpus``; ``SERDataModule.norm_stats``); ``None``: the
            encoder's fixed statistics (then the identity is as without this argument).
        extract_batch_size: Clips per extraction batch. Whole clips are zero-padded to the longest of
            their batch, and the padded length changes the encoder's floating-point rounding (up to
            about 1e-5 on Whisper tiny's last hidden state), so embeddings are bit-identical only when
            extracted in the same batches; ``None`` leaves it out of the identity.
    """
    keep = ("name", "encoder", "pretrained", "pad_to_30s", "pooling")
    identity = {"class": type(network.encoder).__name__, "weights_sha256": weights_sha256(network.encoder.state_dict()),
                "pooling_class": type(network.pooling).__name__,
                "settings": {k: model_settings.get(k) for k in keep if k in model_settings}}
    if norm_stats is not None:
        identity["norm_stats"] = {c: [float(m), float(s)] for c, (m, s) in sorted(norm_stats.items())}
    if extract_batch_size is not None:
        identity["extract_batch_size"] = int(extract_batch_size)
    return identity


def frozen_feature_path(model, dm, model_settings: dict[str, Any]) -> tuple[bool, str]:
    """Whether this run trains on cached embeddings, and why (one line for the run log).

    Args:
        model: The ``SERClassifier``.
        dm: The ``SERDataModule``.
        model_settings: The ``model`` settings (``feature_cache``: ``auto``/``off``).

    Raises:
        ValueError: an unknown ``model.feature_cache``.
    """
    mode = str(model_settings.get("feature_cache", "auto"))
    if mode not in FEATURE_CACHE_MODES:
        raise ValueError(f"model.feature_cache={mode!r} is not one of {list(FEATURE_CACHE_MODES)}")
    net = model.network
    if not hasattr(net, "cacheable"):
        return False, "waveform path (the network is not an encoder model)"
    if mode == "off":
        return False, "waveform path (model.feature_cache=off)"
    if not net.cacheable:
        return False, ("waveform path (the encoder trains, or the head pools combined frames or has a trained "
                       "pooling: nothing to cache)")
    if dm.waveform_augmented:
        return False, "waveform path (waveform augmentation changes the encoder's input every epoch)"
    return True, "frozen-feature path (cached pooled hidden states of the frozen encoder)"


@contextmanager
def _rng_untouched():
    """Restore the global random states (Python, NumPy, torch CPU and CUDA) on exit.

    The extraction loop draws from them (a data loader takes its base seed from torch's generator), so
    without this a run that computes the embeddings would train differently (e.g. shuffle in another
    order) from one that reuses them.
    """
    # Lightning's own helpers, as the resume callback and config validation use them (CUDA only once
    # initialised: reading its states would otherwise start it).
    states = _collect_rng_states(include_cuda=torch.cuda.is_available() and torch.cuda.is_initialized())
    try:
        yield
    finally:
        _set_rng_states(states)


def _predict_into(net: torch.nn.Module, loader, out: np.ndarray, ids: np.ndarray, accelerator: str,
                  progress: bool) -> float:
    """Run the extraction loop (``trainer.predict`` with :class:`EmbeddingExtractor`) over ``loader`` into ``out``.

    Args:
        net: The encoder model. loader: Whole-clip batches whose targets are ids of ``ids``.
        out: Writable ``(len(ids), *pooled_shape)``. ids: Sorted id of each ``out`` row.
        accelerator: Lightning accelerator. progress: Show the progress bar.

    Returns:
        Seconds taken. The global random states and the network's mode are left as they were.
    """
    start = time.perf_counter()
    trainer = pl.Trainer(accelerator=accelerator, devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=progress, enable_model_summary=False, callbacks=[EmbeddingWriter(out, ids)],
                         precision="32-true")
    was_training = net.training
    with _rng_untouched():
        trainer.predict(EmbeddingExtractor(net), dataloaders=loader, return_predictions=False)
    net.train(was_training)
    return time.perf_counter() - start


def use_frozen_features(model, dm, model_settings: dict[str, Any], accelerator: str = "cpu",
                        progress: bool = True) -> CachedEmbeddings:
    """Compute (or reuse) the cached embeddings of every clip and switch ``dm`` and ``model`` to them.

    Extraction is ``trainer.predict`` with :class:`EmbeddingExtractor` on one device of
    ``accelerator`` (a progress bar shows it) writing through :class:`EmbeddingWriter` into the
    cache (:func:`~ser_lightning.data.feature_cache.build_or_load_embeddings`). The global random states
    are left as they were, so training after a fresh extraction is the same as after reusing the cache.

    Args:
        model: The ``SERClassifier`` (its network must be cacheable).
        dm: The ``SERDataModule``, after ``setup``.
        model_settings: The ``model`` settings (part of the cache key; ``extract_batch_size``: clips per
            extraction batch, default ``data.batch_size``).
        accelerator: Lightning accelerator for the extraction (``cpu``, ``gpu``, ``auto``).
        progress: Show the prediction progress bar.

    With ``data.train_crop_s`` the ``data.train_crops`` windows of every clip are embedded too and serve as
    the training items; with ``data.test_crops`` > 1 the validation/test windows likewise
    (:meth:`~ser_lightning.data.datamodule.SERDataModule.use_embeddings`).

    Returns:
        The opened cache; ``built`` says whether it was computed now, ``extract_s`` (an added
        attribute) how long the extraction took in seconds (0 when reused; windows included) and
        ``windows`` (added) the window caches used, ``{"train"|"test": {"embedding_cache", "built",
        "extract_s", "windows"}}``.

    Raises:
        ValueError: the network cannot use cached embeddings.
    """
    net = model.network
    rows, _ = dm.cache_rows()
    batch_size = int(model_settings.get("extract_batch_size") or dm.hparams.batch_size)
    if batch_size < 1:
        raise ValueError(f"model.extract_batch_size={batch_size} must be at least 1")
    identity = encoder_identity(net, model_settings, dm.norm_stats, extract_batch_size=batch_size)
    timing = {"s": 0.0}

    def extract(out: np.ndarray) -> None:
        timing["s"] = _predict_into(net, dm.all_clips_dataloader(rows, batch_size), out, rows, accelerator, progress)

    cached = build_or_load_embeddings(dm.cache, rows, identity, net.pooled_shape, extract, dm.hparams.cache_dir)
    cached.extract_s = round(timing["s"], 1)
    windows, cached.windows = {}, {}
    train_k, test_n = int(dm.hparams.get("train_crops", 4)), int(dm.hparams.get("test_crops", 1))
    counts = {"train": train_k if dm.crop_samples is not None and train_k > 0 else None,
              "test": test_n if test_n > 1 else None}
    for which, count in counts.items():
        if count is None:
            continue
        crops = _window_embeddings(net, dm, rows, count, identity, batch_size, accelerator, progress)
        windows[which] = (crops.path, count)
        cached.windows[which] = {"embedding_cache": str(crops.directory), "built": crops.built,
                                 "extract_s": crops.extract_s, "windows": count}
        cached.extract_s = round(cached.extract_s + crops.extract_s, 1)
    dm.use_embeddings(cached.path, cached.rows, train_windows=windows.get("train"), test_windows=windows.get("test"))
    model.use_cached_embeddings(True)
    return cached


def _window_embeddings(net, dm, rows: np.ndarray, count: int, identity: dict, batch_size: int, accelerator: str,
                       progress: bool) -> CachedEmbeddings:
    """Compute (or reuse) the pooled hidden states of ``count`` evenly spaced ``data.train_crop_s`` windows per clip.

    Keyed like the whole clips' cache plus the window length in samples, the count and their placement, so
    other crop settings give another cache.

    Returns:
        The opened cache: ``embeddings.npy`` ``(len(rows), count, hidden_states, pooled_dim)``, with ``extract_s``.
    """
    ids = np.arange(len(rows) * count, dtype=np.int64)
    identity = {**identity, "windows": {"crop_samples": int(dm.crop_samples), "count": int(count), "placement": "even"}}
    timing = {"s": 0.0}

    def extract(out: np.ndarray) -> None:  # (clips, count, ...) written as (clips * count, ...) windows
        timing["s"] = _predict_into(net, dm.window_clips_dataloader(rows, count, batch_size),
                                    out.reshape(len(ids), *out.shape[2:]), ids, accelerator, progress)

    log.info("crops: embedding %d window(s) of %d samples per clip", count, dm.crop_samples)
    crops = build_or_load_embeddings(dm.cache, rows, identity, (count, *net.pooled_shape), extract, dm.hparams.cache_dir)
    crops.extract_s = round(timing["s"], 1)
    return crops


def speaker_norm_inputs(model, dm, accelerator: str = "cpu", progress: bool = False) -> CachedEmbeddings | None:
    """Re-apply per-speaker normalisation when a checkpoint trained with ``data.speaker_norm=true`` is tested.

    The checkpoint's head learned on per-speaker standardised embeddings, so evaluation takes the
    same frozen-feature path (:func:`use_frozen_features`, reusing the cache) and the data module
    standardises each speaker of the evaluated data with that speaker's own statistics
    (:meth:`~ser_lightning.data.datamodule.SERDataModule.use_embeddings`). Nothing happens for a
    plain checkpoint.

    Args:
        model: The loaded ``SERClassifier``.
        dm: Its ``SERDataModule`` (built from the checkpoint's settings), after ``setup``.
        accelerator: Lightning accelerator for an extraction.
        progress: Show the extraction progress bar.

    Returns:
        The opened embedding cache, or ``None`` for a plain checkpoint.

    Raises:
        ValueError: the checkpoint's network cannot use the frozen-feature path.
    """
    if not dm.hparams.get("speaker_norm"):
        return None
    settings = dict(model.hparams["model"])
    cached, why = frozen_feature_path(model, dm, settings)
    if not cached:
        raise ValueError(f"the checkpoint was trained with data.speaker_norm=true, which needs the frozen-feature path, "
                         f"but its model takes the {why}")
    return use_frozen_features(model, dm, settings, accelerator=accelerator, progress=progress)
