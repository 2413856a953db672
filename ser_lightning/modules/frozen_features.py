"""The frozen-feature policy: whether a run trains on cached frozen features, and the switch to them.

:func:`frozen_feature_path` decides whether a run can train on cached frozen features
(:mod:`ser_lightning.data.feature_cache`, the frozen-feature cache): a cacheable encoder model (frozen encoder,
per-layer pooling without parameters), no waveform augmentation and ``model.feature_cache`` not ``off``.
:func:`use_frozen_features` then has the pooled hidden states of every clip computed once (the extraction loop,
:mod:`ser_lightning.modules.extraction`) and switches the data module and the classifier to them; a later run
with the same clips and encoder reuses them. With crops (``data.train_crop_s``, :mod:`ser_lightning.data.crops`)
the windows' pooled states are cached the same way, once per window length and count, and so are the augmented
views of ``data.train_views`` (:mod:`ser_lightning.data.views`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from ser_lightning.data.feature_cache import (
    FrozenFeatureCache,
    build_or_load_feature_cache,
)
from ser_lightning.data.views import views_identity
from ser_lightning.models.encoders.base import weights_sha256
from ser_lightning.models.facts import network_facts
from ser_lightning.modules.extraction import (  # noqa: F401 (the extraction loop; re-exported from its old home)
    FeatureCacheWriter,
    FrozenFeatureExtractor,
    ShardedFeatureCacheWriter,
    ShardedFrozenFeatureExtractor,
    _extract_distributed,
    _extraction_strategy,
    _predict_into,
    _rng_untouched,
    distributed_extraction,
)

log = logging.getLogger(__name__)

#: ``model.feature_cache`` choices: ``auto`` (cache when possible) or ``off`` (always the waveform path).
FEATURE_CACHE_MODES = ("auto", "off")


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


def frozen_feature_path(network: torch.nn.Module, dm, model_settings: dict[str, Any]) -> tuple[bool, str]:
    """Whether this run trains on cached frozen features, and why (one line for the run log).

    Args:
        network: The network (its :class:`~ser_lightning.models.facts.NetworkFacts` are asked).
        dm: The ``SERDataModule``.
        model_settings: The ``model`` settings (``feature_cache``: ``auto``/``off``).

    Raises:
        ValueError: an unknown ``model.feature_cache``.
    """
    mode = str(model_settings.get("feature_cache", "auto"))
    if mode not in FEATURE_CACHE_MODES:
        raise ValueError(f"model.feature_cache={mode!r} is not one of {list(FEATURE_CACHE_MODES)}")
    facts = network_facts(network)
    if not facts.pooled_split:
        return False, "waveform path (the network is not an encoder model)"
    if mode == "off":
        return False, "waveform path (model.feature_cache=off)"
    if not facts.cacheable:
        return False, ("waveform path (the encoder trains, or the head pools combined frames or has a trained "
                       "pooling: nothing to cache)")
    if dm.waveform_augmented:
        return False, "waveform path (waveform augmentation changes the encoder's input every epoch)"
    return True, "frozen-feature path (cached pooled hidden states of the frozen encoder)"


def check_cacheable(network: torch.nn.Module) -> None:
    """Refuse a network whose pooled states are not fixed (they could not be cached once per clip).

    Raises:
        ValueError: ``network`` is not cacheable (:class:`~ser_lightning.models.facts.NetworkFacts`): it needs a
            frozen encoder with per-layer pooling and a pooling without parameters.
    """
    if not network_facts(network).cacheable:
        raise ValueError(f"{type(network).__name__} cannot use cached frozen features (it needs a frozen encoder with "
                         "model.pool_each_layer=true and a parameter-free pooling)")


def use_frozen_features(network: torch.nn.Module, dm, model_settings: dict[str, Any], accelerator: str = "cpu",
                        progress: bool = True, trainer: pl.Trainer | None = None) -> FrozenFeatureCache:
    """Compute (or reuse) the cached frozen features of every clip and have ``dm`` serve them.

    The data module's batches then are :class:`~ser_lightning.data.batches.FrozenFeatures`, which a
    ``SERClassifier`` sends to its head: nothing on the model is switched.

    Extraction is ``trainer.predict`` with :class:`FrozenFeatureExtractor` (a progress bar shows it)
    writing into the cache (:func:`~ser_lightning.data.feature_cache.build_or_load_feature_cache`).
    When ``trainer`` runs several processes that exist before ``fit`` (:func:`distributed_extraction`:
    DDP over devices and nodes), every process calls this and the extraction spreads over them
    (:class:`ShardedFeatureCacheWriter`: each predicts whole batches of its share, rank 0 merges and
    finalises the cache, all then read it); otherwise it runs on one device of ``accelerator``. The
    cache is the same either way (same key, same values). The global random states are left as they
    were, so training after a fresh extraction is the same as after reusing the cache.

    Args:
        network: The encoder model (cacheable: frozen encoder, parameter-free pooling), e.g. a
            ``SERClassifier``'s ``network``.
        dm: The ``SERDataModule``, after ``setup``.
        model_settings: The ``model`` settings (part of the cache key; ``extract_batch_size``: clips per
            extraction batch, default ``data.batch_size``).
        accelerator: Lightning accelerator for the extraction (``cpu``, ``gpu``, ``auto``).
        progress: Show the prediction progress bar.
        trainer: The run's training trainer, whose processes (devices, nodes, strategy) a distributed
            extraction uses; ``None``: one device.

    With ``data.train_crop_s`` the ``data.train_crops`` windows of every clip are embedded too and serve as
    the training items; with ``data.test_crops`` > 1 the validation/test windows likewise
    (:meth:`~ser_lightning.data.datamodule.SERDataModule.use_feature_cache`). With ``data.train_views`` K > 0 the
    K augmented views of every clip of the training and validation corpora are embedded (on one device) and
    join the training items (:func:`_view_features`).

    Returns:
        The opened cache; ``built`` says whether it was computed now, and the added attributes
        ``extract_s`` how long the extraction took in seconds (0 when reused; windows included),
        ``extract_processes`` the number of processes the whole clips' extraction ran on (1 on one
        device), ``clips_per_process`` how many clips each embedded (``None`` when reused) and
        ``windows`` the window caches used, ``{"train"|"test": {"feature_cache", "built",
        "extract_s", "windows"}}`` (windows are extracted on one device: the first process to take
        the cache's lock builds them, the others reuse them) and ``views`` the views caches used (one per view
        index), ``{"feature_caches", "built" (one per view), "extract_s", "extract_s_per_view", "views", "clips"}``,
        or ``None`` (``data.train_views=0``).

    Raises:
        ValueError: the network cannot use cached frozen features, or ``model.extract_batch_size`` is below 1.
        RuntimeError: a distributed extraction failed (see :class:`ShardedFeatureCacheWriter`).
    """
    net = network
    check_cacheable(net)
    rows, _ = dm.cache_rows()
    batch_size = int(model_settings.get("extract_batch_size") or dm.hparams.batch_size)
    if batch_size < 1:
        raise ValueError(f"model.extract_batch_size={batch_size} must be at least 1")
    identity = encoder_identity(net, model_settings, dm.norm_stats, extract_batch_size=batch_size)
    if distributed_extraction(trainer):
        cached = _extract_distributed(net, dm, rows, identity, batch_size, accelerator, progress, trainer)
    else:
        if trainer is not None and trainer.world_size > 1:
            log.info("frozen-feature extraction on one device in the main process: the trainer's %d processes "
                     "(%s, spawned or forked) exist only inside fit", trainer.world_size, type(trainer.strategy).__name__)
        cached = _build_or_load(net, dm, rows, identity, net.pooled_shape, rows,
                                lambda: dm.all_clips_dataloader(rows, batch_size), accelerator, progress)
        cached.extract_processes = 1
        cached.clips_per_process = [len(rows)] if cached.built else None
    windows, cached.windows = {}, {}
    for which, count in dm.crop_window_counts().items():
        if count is None:
            continue
        crops = _window_features(net, dm, rows, count, identity, batch_size, accelerator, progress)
        windows[which] = (crops.path, count)
        cached.windows[which] = {"feature_cache": str(crops.directory), "built": crops.built,
                                 "extract_s": crops.extract_s, "windows": count}
        cached.extract_s = round(cached.extract_s + crops.extract_s, 1)
    views, cached.views = None, None
    if dm.view_count():
        view_rows = dm.view_rows()
        made = [_view_features(net, dm, view_rows, j, identity, batch_size, accelerator, progress)
                for j in range(dm.view_count())]
        views = ([m.path for m in made], view_rows)
        extract_s = round(sum(m.extract_s for m in made), 1)
        cached.views = {"feature_caches": [str(m.directory) for m in made], "built": [m.built for m in made],
                        "extract_s": extract_s, "extract_s_per_view": [m.extract_s for m in made],
                        "views": dm.view_count(), "clips": len(view_rows)}
        cached.extract_s = round(cached.extract_s + extract_s, 1)
    dm.use_feature_cache(cached.path, cached.rows, train_windows=windows.get("train"), test_windows=windows.get("test"),
                      train_views=views)
    return cached


def _window_features(net, dm, rows: np.ndarray, count: int, identity: dict, batch_size: int, accelerator: str,
                       progress: bool) -> FrozenFeatureCache:
    """Compute (or reuse) the pooled hidden states of ``count`` evenly spaced ``data.train_crop_s`` windows per clip.

    Keyed like the whole clips' cache plus the window length in samples, the count and their placement, so
    other crop settings give another cache.

    Returns:
        The opened cache: ``embeddings.npy`` ``(len(rows), count, hidden_states, pooled_dim)``, with ``extract_s``.
    """
    identity = {**identity, "windows": {"crop_samples": int(dm.crop_samples), "count": int(count), "placement": "even"}}
    log.info("crops: embedding %d window(s) of %d samples per clip", count, dm.crop_samples)
    return _build_or_load(net, dm, rows, identity, (count, *net.pooled_shape), np.arange(len(rows) * count, dtype=np.int64),
                          lambda: dm.window_clips_dataloader(rows, count, batch_size), accelerator, progress)


def _view_features(net, dm, rows: np.ndarray, view: int, identity: dict, batch_size: int, accelerator: str,
                     progress: bool) -> FrozenFeatureCache:
    """Compute (or reuse) the pooled hidden states of augmented view ``view`` (j) of every clip (``data.train_views``).

    Keyed like the whole clips' cache plus :func:`~ser_lightning.data.views.views_identity` (j, the seed, the
    active stages' settings, the libraries' versions): other view settings give another cache, and a larger
    K reuses the views it has.

    Returns:
        The opened cache: ``embeddings.npy`` ``(len(rows), hidden_states, pooled_dim)``, with ``extract_s``.
    """
    identity = {**identity, "views": views_identity(dm.view_chain, view, dm.view_seed)}
    log.info("views: embedding augmented view %d of each of %d clips (%r)", view, len(rows), dm.view_chain)
    return _build_or_load(net, dm, rows, identity, net.pooled_shape, np.arange(len(rows), dtype=np.int64),
                          lambda: dm.view_clips_dataloader(rows, [view], batch_size), accelerator, progress)


def _build_or_load(net, dm, rows: np.ndarray, identity: dict, shape: tuple[int, ...], ids: np.ndarray,
                   make_loader: Callable[[], Any], accelerator: str, progress: bool) -> FrozenFeatureCache:
    """Open the frozen-feature cache of ``rows`` for ``identity``, or fill it on one device with :func:`_predict_into`.

    Args:
        net: The encoder model. dm: The data module (its audio cache and ``data.cache_dir``).
        rows: Cache rows ``(n,)``. identity: The cache's encoder identity. shape: One row's embedding shape.
        ids: Id of each predicted item ``(m,)``, sorted; the cache array ``(n, *shape)`` is filled as
            ``(m, *pooled_shape)`` (``m = n`` for whole clips, ``n * count`` for windows).
        make_loader: Builds the loader of those items (only when the cache must be built).
        accelerator: Lightning accelerator. progress: Show the progress bar.

    Returns:
        The opened cache, with ``extract_s`` (seconds; 0 when reused).
    """
    timing = {"s": 0.0}

    def extract(out: np.ndarray) -> None:
        timing["s"] = _predict_into(net, make_loader(), out.reshape(len(ids), *net.pooled_shape), ids, accelerator,
                                    progress)

    cached = build_or_load_feature_cache(dm.cache, rows, identity, shape, extract, dm.hparams.cache_dir)
    cached.extract_s = round(timing["s"], 1)
    return cached


def speaker_norm_inputs(model, dm, accelerator: str = "cpu", progress: bool = False) -> FrozenFeatureCache | None:
    """Re-apply per-speaker normalisation when a checkpoint trained with ``data.speaker_norm=true`` is tested.

    The checkpoint's head learned on per-speaker standardised embeddings, so evaluation takes the
    same frozen-feature path (:func:`use_frozen_features`, reusing the cache) and the data module
    standardises each speaker of the evaluated data with that speaker's own statistics
    (:meth:`~ser_lightning.data.datamodule.SERDataModule.use_feature_cache`). Nothing happens for a
    plain checkpoint.

    Args:
        model: The loaded ``SERClassifier``.
        dm: Its ``SERDataModule`` (built from the checkpoint's settings), after ``setup``.
        accelerator: Lightning accelerator for an extraction.
        progress: Show the extraction progress bar.

    Returns:
        The opened frozen-feature cache, or ``None`` for a plain checkpoint.

    Raises:
        ValueError: the checkpoint's network cannot use the frozen-feature path.
    """
    if not dm.hparams.get("speaker_norm"):
        return None
    settings = dict(model.hparams["model"])
    cached, why = frozen_feature_path(model.network, dm, settings)
    if not cached:
        raise ValueError(f"the checkpoint was trained with data.speaker_norm=true, which needs the frozen-feature path, "
                         f"but its model takes the {why}")
    return use_frozen_features(model.network, dm, settings, accelerator=accelerator, progress=progress)
