"""The frozen-feature extraction loop: the pooled hidden states of every clip, as a Lightning prediction loop.

``trainer.predict`` over the whole clips with :class:`FrozenFeatureExtractor`, a progress bar and :class:`FeatureCacheWriter`
writing each batch into the frozen-feature cache's array (:mod:`ser_lightning.data.feature_cache`); in a distributed
run (DDP over devices and nodes) the extraction spreads over the run's processes (:class:`ShardedFeatureCacheWriter`) and
gives the same cache. What is extracted, when, and how a run switches to it is the frozen-feature policy
(:mod:`ser_lightning.modules.frozen_features`).
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
    FeatureCacheBuild,
    FrozenFeatureCache,
    begin_feature_cache,
    extraction_shard,
    merge_shards,
    open_feature_cache,
    shard_files,
)
from ser_lightning.deprecation import renamed

log = logging.getLogger(__name__)


class FrozenFeatureExtractor(pl.LightningModule):
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


class FeatureCacheWriter(BasePredictionWriter):
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


class ShardedFrozenFeatureExtractor(FrozenFeatureExtractor):
    """:class:`FrozenFeatureExtractor` for a distributed extraction: each process predicts the loader
    that its :class:`ShardedFeatureCacheWriter` hands out once the processes agreed to build (empty when
    the cache is reused).

    Args:
        network: As for :class:`FrozenFeatureExtractor`.
        writer: The run's :class:`ShardedFeatureCacheWriter` (in the trainer's callbacks).
    """

    def __init__(self, network: torch.nn.Module, writer: ShardedFeatureCacheWriter) -> None:
        super().__init__(network)
        self.writer = writer
        # A process gets no batch when there are fewer batches than processes (or none when reusing).
        self.allow_zero_length_dataloader_with_multiple_devices = True

    def predict_dataloader(self):
        """This process's share of the clips (:meth:`ShardedFeatureCacheWriter.dataloader`)."""
        return self.writer.dataloader()


class ShardedFeatureCacheWriter(BasePredictionWriter):
    """Builds the frozen-feature cache with every process of a distributed run (DDP over devices and nodes).

    Lightning's own prediction sampler for several processes (``UnrepeatedDistributedSamplerWrapper``
    in Lightning 2.6: clip ``i`` to process ``i % world_size``, nothing repeated) would batch other
    clips together than one device does, so the zero-padding, and with it the encoder's rounding,
    would depend on the number of processes. The trainer runs with ``use_distributed_sampler=False``
    instead and each process predicts whole single-device batches
    (:func:`~ser_lightning.data.feature_cache.extraction_shard`), so the cache does not depend on
    the number of processes.

    Steps (``setup``, the batches, then :meth:`finish` after ``trainer.predict``):

    1. Rank 0 opens the cache or starts its build (:func:`~ser_lightning.data.feature_cache.begin_feature_cache`:
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
        self.cached: FrozenFeatureCache | None = None  # rank 0: the cache it opened or built
        self.clips_per_process: list[int] | None = None
        self.started_s: float | None = None  # time.perf_counter() when the processes agreed to build
        self._build: FeatureCacheBuild | None = None
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
                started = begin_feature_cache(self.audio, self.rows, self.identity, self.shape, self.cache_dir)
                if isinstance(started, FrozenFeatureCache):
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
            raise RuntimeError(f"frozen-feature cache under {self.cache_dir}: {decision['error']}")
        if not decision["build"]:
            trainer.limit_predict_batches = 0  # nothing to predict: the loop asks for no data and skips
            return
        self.started_s = time.perf_counter()  # all processes are up: the extraction proper starts
        shards = Path(decision["shards"])
        if not trainer.strategy.reduce_boolean_decision(shards.is_dir(), all=True):
            self.abort()
            raise RuntimeError(f"not every process of the distributed frozen-feature extraction sees {shards}: "
                               f"data.cache_dir={self.cache_dir} must be one directory shared by all nodes")
        rank, world = trainer.global_rank, trainer.world_size
        self._positions = extraction_shard(len(self.rows), self.batch_size, rank, world)
        data_path, _ = shard_files(shards, rank)
        if len(self._positions):
            self._part = np.lib.format.open_memmap(data_path, mode="w+", dtype=np.float32,
                                                   shape=(len(self._positions), *self.shape))
            self._part[:] = np.nan
        log.info("frozen-feature extraction, process %d of %d: %d of %d clips", rank, world, len(self._positions),
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

    def finish(self, trainer) -> FrozenFeatureCache:
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
                raise RuntimeError("a process of the distributed frozen-feature extraction could not write its shard"
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
                raise RuntimeError(f"the distributed frozen-feature extraction failed on rank 0: {outcome['error']}")
            self.clips_per_process = outcome["clips_per_process"]
        else:
            strategy.barrier("frozen-feature cache checked")
        if trainer.is_global_zero:
            return self.cached
        cached = open_feature_cache(self.audio, self.rows, self.identity, self.shape, self.cache_dir)
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
    """Run the extraction loop (``trainer.predict`` with :class:`FrozenFeatureExtractor`) over ``loader`` into ``out``.

    Args:
        net: The encoder model. loader: Whole-clip batches whose targets are ids of ``ids``.
        out: Writable ``(len(ids), *pooled_shape)``. ids: Sorted id of each ``out`` row.
        accelerator: Lightning accelerator. progress: Show the progress bar.

    Returns:
        Seconds taken. The global random states and the network's mode are left as they were.
    """
    start = time.perf_counter()
    trainer = pl.Trainer(accelerator=accelerator, devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=progress, enable_model_summary=False, callbacks=[FeatureCacheWriter(out, ids)],
                         precision="32-true")
    was_training = net.training
    with _rng_untouched():
        trainer.predict(FrozenFeatureExtractor(net), dataloaders=loader, return_predictions=False)
    net.train(was_training)
    return time.perf_counter() - start


def _extract_distributed(net, dm, rows: np.ndarray, identity: dict, batch_size: int, accelerator: str,
                         progress: bool, trainer: pl.Trainer) -> FrozenFeatureCache:
    """:func:`use_frozen_features`'s extraction over the processes of ``trainer`` (every process calls it)."""
    writer = ShardedFeatureCacheWriter(dm.cache, rows, identity, net.pooled_shape, dm.hparams.cache_dir, batch_size,
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
            extractor.predict(ShardedFrozenFeatureExtractor(net, writer), return_predictions=False)
            cached = writer.finish(extractor)
    finally:
        writer.abort()  # rank 0: an unfinished build releases its lock (nothing once finished)
    net.train(was_training)
    # from the moment all processes are up (Lightning's ddp launcher starts the others in this predict)
    cached.extract_s = round(time.perf_counter() - writer.started_s, 1) if cached.built else 0.0
    cached.extract_processes = int(extractor.world_size)
    cached.clips_per_process = writer.clips_per_process
    return cached


#: Old names (before one name, "frozen features", was used for the cache and what it holds).
__getattr__ = renamed(__name__, {"EmbeddingExtractor": "FrozenFeatureExtractor", "EmbeddingWriter": "FeatureCacheWriter",
                                 "ShardedEmbeddingExtractor": "ShardedFrozenFeatureExtractor",
                                 "ShardedEmbeddingWriter": "ShardedFeatureCacheWriter"}, globals())
