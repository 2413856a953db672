"""Frozen-feature extraction as a Lightning prediction loop, and the switch to the cached path.

:func:`frozen_feature_path` decides whether a run can train on cached embeddings
(:mod:`ser_lightning.data.feature_cache`): a cacheable encoder model (frozen encoder, per-layer
pooling without parameters), no waveform augmentation and ``model.feature_cache`` not ``off``.
:func:`use_frozen_features` then computes the pooled hidden states of every clip once —
``trainer.predict`` over the whole clips with :class:`EmbeddingExtractor`, a progress bar and
:class:`EmbeddingWriter` writing each batch into the cache's array — and switches the data module
and the classifier to them; a later run with the same clips and encoder reuses them. In a
distributed run (DDP over devices and nodes) the extraction spreads over the run's processes
(:class:`ShardedEmbeddingWriter`) and gives the same cache. With crops (``data.train_crop_s``,
:mod:`ser_lightning.data.crops`) the windows' pooled states are cached the same way, once per window
length and count, and so are the augmented views of ``data.train_views`` (:mod:`ser_lightning.data.views`).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch.callbacks import BasePredictionWriter

from ser_lightning.data.feature_cache import (
    CachedEmbeddings,
    EmbeddingBuild,
    begin_embeddings,
    build_or_load_embeddings,
    extraction_shard,
    merge_shards,
    open_embeddings,
    shard_files,
)
from ser_lightning.data.views import views_identity
from ser_lightning.models.encoders.base import weights_sha256
from ser_lightning.models.facts import network_facts

log = logging.getLogger(__name__)

#: ``model.feature_cache`` choices: ``auto`` (cache when possible) or ``off`` (always the waveform path).
FEATURE_CACHE_MODES = ("auto", "off")


class EmbeddingExtractor(pl.LightningModule):
    """Prediction-only module: whole-clip batches → pooled hidden states of a frozen encoder.

    Args:
        network: An encoder model with ``pooled_states(wave, lengths)`` (e.g.
            :class:`~ser_lightning.models.encoders.encoder_classifier.EncoderClassifier`).

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


class ShardedEmbeddingExtractor(EmbeddingExtractor):
    """:class:`EmbeddingExtractor` for a distributed extraction: each process predicts the loader
    that its :class:`ShardedEmbeddingWriter` hands out once the processes agreed to build (empty when
    the cache is reused).

    Args:
        network: As for :class:`EmbeddingExtractor`.
        writer: The run's :class:`ShardedEmbeddingWriter` (in the trainer's callbacks).
    """

    def __init__(self, network: torch.nn.Module, writer: ShardedEmbeddingWriter) -> None:
        super().__init__(network)
        self.writer = writer
        # A process gets no batch when there are fewer batches than processes (or none when reusing).
        self.allow_zero_length_dataloader_with_multiple_devices = True

    def predict_dataloader(self):
        """This process's share of the clips (:meth:`ShardedEmbeddingWriter.dataloader`)."""
        return self.writer.dataloader()


class ShardedEmbeddingWriter(BasePredictionWriter):
    """Builds the embedding cache with every process of a distributed run (DDP over devices and nodes).

    Lightning's own prediction sampler for several processes (``UnrepeatedDistributedSamplerWrapper``
    in Lightning 2.6: clip ``i`` to process ``i % world_size``, nothing repeated) would batch other
    clips together than one device does, so the zero-padding, and with it the encoder's rounding,
    would depend on the number of processes. The trainer runs with ``use_distributed_sampler=False``
    instead and each process predicts whole single-device batches
    (:func:`~ser_lightning.data.feature_cache.extraction_shard`), so the cache does not depend on
    the number of processes.

    Steps (``setup``, the batches, then :meth:`finish` after ``trainer.predict``):

    1. Rank 0 opens the cache or starts its build (:func:`~ser_lightning.data.feature_cache.begin_embeddings`:
       file lock, checks, temporary directory) and broadcasts the decision; every process checks
       that it sees the temporary directory (``data.cache_dir`` must be shared by all nodes).
    2. Each process writes its rows into its own shard file in that directory (a memory map; no
       two processes write one file, which is safe on network file systems too).
    3. :meth:`finish`: all processes close their shards and meet; rank 0 merges the shards into the
       cache's array, checking that every clip was embedded exactly once, then finalises it
       (checksums, index, atomic rename, lock released) and broadcasts the outcome; the other
       processes open the finished cache.

    Args:
        audio: The opened audio cache.
        rows: Cache rows to embed ``(n,)``, sorted.
        identity: The encoder identity (:func:`encoder_identity`).
        shape: One clip's embedding shape ``(hidden_states, pooled_dim)``.
        cache_dir: ``data.cache_dir``.
        batch_size: Clips per extraction batch.
        make_loader: Rows ``(k,)`` → a ``DataLoader`` of their whole clips in that order, ``batch_size``
            per batch (:meth:`~ser_lightning.data.datamodule.SERDataModule.all_clips_dataloader`).
    """

    def __init__(self, audio, rows: np.ndarray, identity: dict, shape: tuple[int, ...], cache_dir: str | Path,
                 batch_size: int, make_loader: Callable[[np.ndarray], Any]) -> None:
        super().__init__(write_interval="batch")
        self.audio, self.rows, self.identity, self.shape = audio, np.asarray(rows), identity, tuple(shape)
        self.cache_dir, self.batch_size, self.make_loader = cache_dir, int(batch_size), make_loader
        self.decision: dict | None = None
        self.cached: CachedEmbeddings | None = None  # rank 0: the cache it opened or built
        self.clips_per_process: list[int] | None = None
        self.started_s: float | None = None  # time.perf_counter() when the processes agreed to build
        self._build: EmbeddingBuild | None = None
        self._positions = np.zeros(0, dtype=np.int64)
        self._part: np.ndarray | None = None
        self._written: list[np.ndarray] = []
        self._filled = 0

    @property
    def building(self) -> bool:
        """Whether the processes agreed to compute the embeddings now (after ``setup``)."""
        return bool(self.decision and self.decision.get("build"))

    def setup(self, trainer, pl_module, stage: str) -> None:
        """Step 1: rank 0 opens or starts the cache and broadcasts the decision; each process prepares its shard.

        Raises:
            RuntimeError: rank 0 could not open or start the cache, or a process does not see the build directory.
        """
        decision: dict | None = None
        if trainer.is_global_zero:
            try:
                started = begin_embeddings(self.audio, self.rows, self.identity, self.shape, self.cache_dir)
                if isinstance(started, CachedEmbeddings):
                    self.cached, decision = started, {"build": False}
                else:
                    self._build = started
                    (started.tmp / "shards").mkdir()
                    decision = {"build": True, "shards": str(started.tmp / "shards")}
            except Exception as err:  # every process must hear of it, or the others wait for ever
                self.abort()
                decision = {"error": f"{type(err).__name__}: {err}"}
        self.decision = decision = trainer.strategy.broadcast(decision, src=0)
        if "error" in decision:
            raise RuntimeError(f"embedding cache under {self.cache_dir}: {decision['error']}")
        if not decision["build"]:
            trainer.limit_predict_batches = 0  # nothing to predict: the loop asks for no data and skips
            return
        self.started_s = time.perf_counter()  # all processes are up: the extraction proper starts
        shards = Path(decision["shards"])
        if not trainer.strategy.reduce_boolean_decision(shards.is_dir(), all=True):
            self.abort()
            raise RuntimeError(f"not every process of the distributed embedding extraction sees {shards}: "
                               f"data.cache_dir={self.cache_dir} must be one directory shared by all nodes")
        rank, world = trainer.global_rank, trainer.world_size
        self._positions = extraction_shard(len(self.rows), self.batch_size, rank, world)
        data_path, _ = shard_files(shards, rank)
        if len(self._positions):
            self._part = np.lib.format.open_memmap(data_path, mode="w+", dtype=np.float32,
                                                   shape=(len(self._positions), *self.shape))
            self._part[:] = np.nan
        log.info("embedding extraction, process %d of %d: %d of %d clips", rank, world, len(self._positions),
                 len(self.rows))

    def dataloader(self):
        """This process's whole-clip batches (none when the cache is reused)."""
        return self.make_loader(self.rows[self._positions]) if self.building else []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        """Step 2: append one predicted batch to this process's shard: ``prediction = (cache rows (batch,),
        pooled (batch, num_hidden_states, pooled_dim))``."""
        rows, pooled = prediction
        pos = np.searchsorted(self.rows, rows.cpu().numpy())
        self._part[self._filled:self._filled + len(pos)] = pooled.cpu().numpy()
        self._filled += len(pos)
        self._written.append(pos)

    def finish(self, trainer) -> CachedEmbeddings:
        """Step 3, on every process after ``trainer.predict``: close the shards, merge and finalise on rank 0,
        open the finished cache everywhere.

        Args:
            trainer: The extraction trainer (its strategy's process group is still up).

        Returns:
            The opened cache (``built`` is the same on every process).

        Raises:
            RuntimeError: a process failed to write its shard, or rank 0 failed to merge or finalise.
        """
        strategy = trainer.strategy
        if self.building:
            error = None
            try:
                shards = Path(self.decision["shards"])
                data_path, pos_path = shard_files(shards, trainer.global_rank)
                if self._part is None:
                    np.save(data_path, np.zeros((0, *self.shape), dtype=np.float32))
                else:
                    self._part.flush()
                    self._part = None
                written = np.concatenate(self._written) if self._written else np.zeros(0, dtype=np.int64)
                np.save(pos_path, written.astype(np.int64))
            except Exception as err:
                error = err
            if not strategy.reduce_boolean_decision(error is None, all=True):
                self.abort()
                raise RuntimeError("a process of the distributed embedding extraction could not write its shard"
                                   + (f": {error}" if error else "")) from error
            outcome = None
            if trainer.is_global_zero:
                try:
                    out = self._build.allocate()
                    per_process = merge_shards(out, shards, trainer.world_size)
                    del out
                    shutil.rmtree(shards)
                    self.cached = self._build.finish()
                    outcome = {"clips_per_process": per_process}
                except Exception as err:
                    self.abort()
                    outcome = {"error": f"{type(err).__name__}: {err}"}
            outcome = strategy.broadcast(outcome, src=0)
            if "error" in outcome:
                raise RuntimeError(f"the distributed embedding extraction failed on rank 0: {outcome['error']}")
            self.clips_per_process = outcome["clips_per_process"]
        else:
            strategy.barrier("embedding cache checked")
        if trainer.is_global_zero:
            return self.cached
        cached = open_embeddings(self.audio, self.rows, self.identity, self.shape, self.cache_dir)
        cached.built = self.building
        return cached

    def abort(self) -> None:
        """Rank 0: give up an unfinished build (lock released, temporary directory removed)."""
        self._part = None
        if self._build is not None:
            self._build.abort()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """An error inside the prediction loop: give up the build."""
        self.abort()


def distributed_extraction(trainer: pl.Trainer | None) -> bool:
    """Whether the frozen-feature extraction runs in the processes of ``trainer``: several processes
    (DDP over devices or nodes) that exist before ``fit`` (``ddp`` launched by Lightning, ``torchrun``,
    SLURM). ``ddp_spawn``/``ddp_fork`` start their processes only inside ``fit``, so they extract in the
    main process on one device.

    Args:
        trainer: The run's trainer, or ``None`` (one device).
    """
    from lightning.pytorch.strategies import ParallelStrategy
    from lightning.pytorch.strategies.launchers import _MultiProcessingLauncher

    return (trainer is not None and trainer.world_size > 1 and isinstance(trainer.strategy, ParallelStrategy)
            and not isinstance(trainer.strategy.launcher, _MultiProcessingLauncher))


def _extraction_strategy(trainer: pl.Trainer):
    """A DDP strategy over the processes of ``trainer``, for prediction.

    It joins the same cluster (the same cluster environment object, hence the same address, port
    and ranks); its process group, with the training strategy's backend and timeout, stays up for
    ``fit``, which finds it initialised and reuses it. With Lightning's own ``ddp`` launcher the
    other processes are started here, by the extraction, instead of by ``fit``.
    """
    from lightning.fabric.plugins.collectives.torch_collective import default_pg_timeout
    from lightning.pytorch.strategies import DDPStrategy

    strategy = trainer.strategy
    return DDPStrategy(cluster_environment=strategy.cluster_environment,
                       process_group_backend=getattr(strategy, "process_group_backend", None),
                       timeout=getattr(strategy, "_timeout", default_pg_timeout))


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
    facts = network_facts(model.network)
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
                        progress: bool = True, trainer: pl.Trainer | None = None) -> CachedEmbeddings:
    """Compute (or reuse) the cached embeddings of every clip and switch ``dm`` and ``model`` to them.

    Extraction is ``trainer.predict`` with :class:`EmbeddingExtractor` (a progress bar shows it)
    writing into the cache (:func:`~ser_lightning.data.feature_cache.build_or_load_embeddings`).
    When ``trainer`` runs several processes that exist before ``fit`` (:func:`distributed_extraction`:
    DDP over devices and nodes), every process calls this and the extraction spreads over them
    (:class:`ShardedEmbeddingWriter`: each predicts whole batches of its share, rank 0 merges and
    finalises the cache, all then read it); otherwise it runs on one device of ``accelerator``. The
    cache is the same either way (same key, same values). The global random states are left as they
    were, so training after a fresh extraction is the same as after reusing the cache.

    Args:
        model: The ``SERClassifier`` (its network must be cacheable).
        dm: The ``SERDataModule``, after ``setup``.
        model_settings: The ``model`` settings (part of the cache key; ``extract_batch_size``: clips per
            extraction batch, default ``data.batch_size``).
        accelerator: Lightning accelerator for the extraction (``cpu``, ``gpu``, ``auto``).
        progress: Show the prediction progress bar.
        trainer: The run's training trainer, whose processes (devices, nodes, strategy) a distributed
            extraction uses; ``None``: one device.

    With ``data.train_crop_s`` the ``data.train_crops`` windows of every clip are embedded too and serve as
    the training items; with ``data.test_crops`` > 1 the validation/test windows likewise
    (:meth:`~ser_lightning.data.datamodule.SERDataModule.use_embeddings`). With ``data.train_views`` K > 0 the
    K augmented views of every clip of the training and validation corpora are embedded (on one device) and
    join the training items (:func:`_view_embeddings`).

    Returns:
        The opened cache; ``built`` says whether it was computed now, and the added attributes
        ``extract_s`` how long the extraction took in seconds (0 when reused; windows included),
        ``extract_processes`` the number of processes the whole clips' extraction ran on (1 on one
        device), ``clips_per_process`` how many clips each embedded (``None`` when reused) and
        ``windows`` the window caches used, ``{"train"|"test": {"embedding_cache", "built",
        "extract_s", "windows"}}`` (windows are extracted on one device: the first process to take
        the cache's lock builds them, the others reuse them) and ``views`` the views caches used (one per view
        index), ``{"embedding_caches", "built" (one per view), "extract_s", "extract_s_per_view", "views", "clips"}``,
        or ``None`` (``data.train_views=0``).

    Raises:
        ValueError: the network cannot use cached embeddings, or ``model.extract_batch_size`` is below 1.
        RuntimeError: a distributed extraction failed (see :class:`ShardedEmbeddingWriter`).
    """
    net = model.network
    rows, _ = dm.cache_rows()
    batch_size = int(model_settings.get("extract_batch_size") or dm.hparams.batch_size)
    if batch_size < 1:
        raise ValueError(f"model.extract_batch_size={batch_size} must be at least 1")
    identity = encoder_identity(net, model_settings, dm.norm_stats, extract_batch_size=batch_size)
    if distributed_extraction(trainer):
        cached = _extract_distributed(net, dm, rows, identity, batch_size, accelerator, progress, trainer)
    else:
        if trainer is not None and trainer.world_size > 1:
            log.info("embedding extraction on one device in the main process: the trainer's %d processes "
                     "(%s, spawned or forked) exist only inside fit", trainer.world_size, type(trainer.strategy).__name__)
        cached = _build_or_load(net, dm, rows, identity, net.pooled_shape, rows,
                                lambda: dm.all_clips_dataloader(rows, batch_size), accelerator, progress)
        cached.extract_processes = 1
        cached.clips_per_process = [len(rows)] if cached.built else None
    windows, cached.windows = {}, {}
    for which, count in dm.crop_window_counts().items():
        if count is None:
            continue
        crops = _window_embeddings(net, dm, rows, count, identity, batch_size, accelerator, progress)
        windows[which] = (crops.path, count)
        cached.windows[which] = {"embedding_cache": str(crops.directory), "built": crops.built,
                                 "extract_s": crops.extract_s, "windows": count}
        cached.extract_s = round(cached.extract_s + crops.extract_s, 1)
    views, cached.views = None, None
    if dm.view_count():
        view_rows = dm.view_rows()
        made = [_view_embeddings(net, dm, view_rows, j, identity, batch_size, accelerator, progress)
                for j in range(dm.view_count())]
        views = ([m.path for m in made], view_rows)
        extract_s = round(sum(m.extract_s for m in made), 1)
        cached.views = {"embedding_caches": [str(m.directory) for m in made], "built": [m.built for m in made],
                        "extract_s": extract_s, "extract_s_per_view": [m.extract_s for m in made],
                        "views": dm.view_count(), "clips": len(view_rows)}
        cached.extract_s = round(cached.extract_s + extract_s, 1)
    dm.use_embeddings(cached.path, cached.rows, train_windows=windows.get("train"), test_windows=windows.get("test"),
                      train_views=views)
    model.use_cached_embeddings(True)
    return cached


def _extract_distributed(net, dm, rows: np.ndarray, identity: dict, batch_size: int, accelerator: str,
                         progress: bool, trainer: pl.Trainer) -> CachedEmbeddings:
    """:func:`use_frozen_features`'s extraction over the processes of ``trainer`` (every process calls it)."""
    writer = ShardedEmbeddingWriter(dm.cache, rows, identity, net.pooled_shape, dm.hparams.cache_dir, batch_size,
                                    lambda part: dm.all_clips_dataloader(part, batch_size))
    on_gpu = trainer.strategy.root_device.type == "cuda"
    devices = [d.index for d in trainer.strategy.parallel_devices] if on_gpu else trainer.num_devices
    extractor = pl.Trainer(accelerator=accelerator, devices=devices, num_nodes=trainer.num_nodes,
                           strategy=_extraction_strategy(trainer), use_distributed_sampler=False, logger=False,
                           enable_checkpointing=False, enable_progress_bar=progress, enable_model_summary=False,
                           callbacks=[writer], precision="32-true")
    was_training = net.training
    try:
        with _rng_untouched():
            extractor.predict(ShardedEmbeddingExtractor(net, writer), return_predictions=False)
            cached = writer.finish(extractor)
    finally:
        writer.abort()  # rank 0: an unfinished build releases its lock (nothing once finished)
    net.train(was_training)
    # from the moment all processes are up (Lightning's ddp launcher starts the others in this predict)
    cached.extract_s = round(time.perf_counter() - writer.started_s, 1) if cached.built else 0.0
    cached.extract_processes = int(extractor.world_size)
    cached.clips_per_process = writer.clips_per_process
    return cached


def _window_embeddings(net, dm, rows: np.ndarray, count: int, identity: dict, batch_size: int, accelerator: str,
                       progress: bool) -> CachedEmbeddings:
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


def _view_embeddings(net, dm, rows: np.ndarray, view: int, identity: dict, batch_size: int, accelerator: str,
                     progress: bool) -> CachedEmbeddings:
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
                   make_loader: Callable[[], Any], accelerator: str, progress: bool) -> CachedEmbeddings:
    """Open the embedding cache of ``rows`` for ``identity``, or fill it on one device with :func:`_predict_into`.

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

    cached = build_or_load_embeddings(dm.cache, rows, identity, shape, extract, dm.hparams.cache_dir)
    cached.extract_s = round(timing["s"], 1)
    return cached


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
