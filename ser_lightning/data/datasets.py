"""The datasets behind the data module's loaders, over the decode-once cache: clips, crops/windows, robustness views
and cached frozen features (:class:`CachedWaveDataset`, with :class:`_WindowDataset` and :class:`_ViewDataset`), and the
class-balanced training sampler (``data.sampler=balanced``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, WeightedRandomSampler

from ser_lightning.data.audio import AudioConfig
from ser_lightning.data.batches import CropBatch, FrozenFeatureBatch, WaveBatch, WholeClipBatch
from ser_lightning.data.crops import (
    cut_windows,
    even_windows,
    random_windows,
)
from ser_lightning.data.views import (
    make_view,
    view_seed,
)


class CachedWaveDataset(Dataset):
    """Rows of a cached waveform array with their class indices.

    The memory map is opened lazily in each worker process, so nothing large is pickled.

    Args:
        waves_path: The cache's ``waves.npy`` (or any ``.npy`` with one row per clip, e.g. the
            frozen-feature cache's ``embeddings.npy``).
        rows: Row index per item.
        labels: Class index per item.
        lengths: Valid samples per item (whole clips): batches are then :class:`WholeClipBatch`
            cut to their longest clip; ``None``: fixed-length :class:`WaveBatch`.
        frozen_features: The rows are cached frozen features: batches are :class:`FrozenFeatureBatch`.
        array: Read the rows from this in-memory array instead of ``waves_path`` (e.g. the
            per-speaker standardised embeddings of ``data.speaker_norm=true``).
        norm_stats: ``(n, 2)`` mean and sd of each item's corpus, carried by whole-clip batches
            (see :meth:`SERDataModule.set_norm_stats`); ``None``: none.
        crop_samples: Whole clips (``lengths`` given) are served as windows of this many samples
            (:mod:`ser_lightning.data.crops`; a clip no longer than it whole): with ``crop_count=0`` one
            uniformly drawn window per clip each time it is served (training), with ``crop_count=N`` its N
            evenly spaced windows as a :class:`CropBatch`. ``None``: whole clips.
        crop_count: With ``crop_samples``: windows per clip (0: one random window). With ``embeddings``:
            the array holds ``crop_count`` consecutive rows per item (row ``rows[i] * crop_count + j`` is
            window ``j`` of item ``i``) and batches are :class:`CropBatch` of them.
        weights: ``(n,)`` loss weight per item, carried by :class:`FrozenFeatureBatch` (``data.corpus_weights``);
            ``None``: none.

    Item:
        ``(waveform (time,) float32, class index)``.
    """

    def __init__(self, waves_path: str | Path, rows: np.ndarray, labels: np.ndarray,
                 lengths: np.ndarray | None = None, frozen_features: bool = False,
                 array: np.ndarray | None = None, norm_stats: np.ndarray | None = None,
                 crop_samples: int | None = None, crop_count: int = 0, weights: np.ndarray | None = None) -> None:
        self.waves_path = str(waves_path)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.lengths = None if lengths is None else np.asarray(lengths, dtype=np.int64)
        if self.lengths is not None and self.lengths.shape != self.rows.shape:
            raise ValueError(f"CachedWaveDataset: {len(self.lengths)} lengths for {len(self.rows)} rows")
        self.frozen_features = bool(frozen_features)
        self.norm_stats = None if norm_stats is None else np.asarray(norm_stats, dtype=np.float32)
        self.crop_samples = None if crop_samples is None else int(crop_samples)
        self.crop_count = int(crop_count)
        if self.crop_samples is not None and self.lengths is None:
            raise ValueError("CachedWaveDataset: crops (crop_samples) need whole clips (lengths)")
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float32)
        if self.weights is not None and self.weights.shape != self.rows.shape:
            raise ValueError(f"CachedWaveDataset: {len(self.weights)} weights for {len(self.rows)} rows")
        self._waves: np.ndarray | None = array

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self._memmap()[self.rows[i]].astype(np.float32)), int(self.labels[i])

    def __getitems__(self, indices: list[int]) -> WaveBatch:
        """A whole batch with one memory-map read and one float32 conversion.

        The DataLoader calls this instead of ``__getitem__`` per index. The result is already the
        batch — the items' waveforms stacked in order — and :func:`collate_batch` passes it on
        as it is, instead of splitting it into items and copying them back together.

        Returns:
            ``WaveBatch(waves (len(indices), time) float32, target (len(indices),) int64)``; with
            lengths a :class:`WholeClipBatch` whose time axis ends at its longest clip; for
            embeddings an :class:`FrozenFeatureBatch`.
        """
        idx = np.asarray(indices, dtype=np.int64)
        target = torch.from_numpy(self.labels[idx])
        if self.crop_samples is not None:
            return self._windows(idx, target)
        if self.frozen_features and self.crop_count:
            k = self.crop_count
            items = (self.rows[idx][:, None] * k + np.arange(k)).reshape(-1)
            block = torch.from_numpy(self._memmap()[items].astype(np.float32))  # (batch * crops, ...)
            return CropBatch(FrozenFeatureBatch(block.clone(), target.repeat_interleave(k)), k, target)
        if self.lengths is not None:
            lengths = self.lengths[idx]
            block = self._memmap()[self.rows[idx], : int(lengths.max())]
            norm = None if self.norm_stats is None else torch.from_numpy(self.norm_stats[idx])
            return WholeClipBatch(torch.from_numpy(block.astype(np.float32)), target, torch.from_numpy(lengths), norm)
        block = torch.from_numpy(self._memmap()[self.rows[idx]].astype(np.float32))  # (batch, time)
        if self.frozen_features:
            # A copy in torch's own (64-byte aligned) memory: NumPy's buffer sits wherever malloc puts it, and
            # CPU kernels round differently at other alignments, so a head would train differently in a run
            # that extracted the embeddings (its heap differs) than in one that reused them.
            weight = None if self.weights is None else torch.from_numpy(self.weights[idx])
            return FrozenFeatureBatch(block.clone(), target, weight)
        return WaveBatch(block, target)

    def _windows(self, idx: np.ndarray, target: torch.Tensor) -> WholeClipBatch | CropBatch:
        """Windows of the whole clips ``idx``: one random window each, or ``crop_count`` evenly spaced ones."""
        rows, lengths = self.rows[idx], self.lengths[idx]
        norm = None if self.norm_stats is None else self.norm_stats[idx]
        if self.crop_count == 0:
            starts, lens = random_windows(lengths, self.crop_samples)
            block = cut_windows(self._memmap(), rows, starts, lens)
            return WholeClipBatch(torch.from_numpy(block), target, torch.from_numpy(lens),
                                  None if norm is None else torch.from_numpy(norm))
        k = self.crop_count
        starts, lens = even_windows(lengths, self.crop_samples, k)
        block = cut_windows(self._memmap(), np.repeat(rows, k), starts.reshape(-1), lens.reshape(-1))
        inner = WholeClipBatch(torch.from_numpy(block), target.repeat_interleave(k), torch.from_numpy(lens.reshape(-1)),
                               None if norm is None else torch.from_numpy(np.repeat(norm, k, axis=0)))
        return CropBatch(inner, k, target)

    def _memmap(self) -> np.ndarray:
        """The cache's ``(clips, time)`` array, memory-mapped on first use in this process."""
        if self._waves is None:
            self._waves = np.load(self.waves_path, mmap_mode="r")
        return self._waves

    def __getstate__(self) -> dict:
        in_memory = self._waves is not None and not isinstance(self._waves, np.memmap)
        return {**self.__dict__, "_waves": self._waves if in_memory else None}


class _WindowDataset(Dataset):
    """Fixed windows of cached whole clips (the crop extraction's input); item ``i`` is window ``i``.

    Args:
        waves_path: The audio cache's ``waves.npy``.
        rows: Cache row per window ``(m,)``. starts: First sample per window ``(m,)``.
        lengths: Samples per window ``(m,)``. norm_stats: ``(m, 2)`` corpus statistics, or ``None``.

    Batch: ``WholeClipBatch(waves (batch, longest window), window indices (batch,), lengths (batch,), norm)``.
    """

    def __init__(self, waves_path: str | Path, rows: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
                 norm_stats: np.ndarray | None = None) -> None:
        self.waves_path, self.rows, self.starts, self.lengths = str(waves_path), rows, starts, lengths
        self.norm_stats = norm_stats
        self._waves: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, indices: list[int]) -> WholeClipBatch:
        if self._waves is None:
            self._waves = np.load(self.waves_path, mmap_mode="r")
        idx = np.asarray(indices, dtype=np.int64)
        block = cut_windows(self._waves, self.rows[idx], self.starts[idx], self.lengths[idx])
        norm = None if self.norm_stats is None else torch.from_numpy(self.norm_stats[idx])
        return WholeClipBatch(torch.from_numpy(block), torch.from_numpy(idx), torch.from_numpy(self.lengths[idx]), norm)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_waves": None}


class _ViewDataset(Dataset):
    """Augmented views of cached whole clips (the views extraction's input, :mod:`ser_lightning.data.views`);
    item ``i * len(views) + m`` is view ``views[m]`` of clip ``i``, made when it is read.

    Args:
        waves_path: The audio cache's ``waves.npy``.
        rows: Cache row per clip ``(n,)``. lengths: Valid samples per clip ``(n,)``.
        clip_ids: Identity per clip (:func:`~ser_lightning.data.views.clip_identity`).
        views: View indices to make per clip. chain: The view chain. seed: ``augment.views.seed``.
        audio: The decoding settings (sample rate, normalisation, ``duration_s``).
        norm_stats: ``(n, 2)`` corpus statistics per clip, or ``None``.

    Batch: ``WholeClipBatch(waves (batch, longest view), item indices (batch,), lengths (batch,), norm)``.
    """

    def __init__(self, waves_path: str | Path, rows: np.ndarray, lengths: np.ndarray, clip_ids: list[str],
                 views: list[int], chain, seed: int, audio: AudioConfig, norm_stats: np.ndarray | None = None) -> None:
        self.waves_path, self.rows, self.lengths, self.clip_ids = str(waves_path), rows, lengths, clip_ids
        self.views, self.chain, self.seed, self.audio, self.norm_stats = list(views), chain, int(seed), audio, norm_stats
        self.count = len(self.views)
        self._waves: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rows) * self.count

    def __getitems__(self, indices: list[int]) -> WholeClipBatch:
        if self._waves is None:
            self._waves = np.load(self.waves_path, mmap_mode="r")
        idx = np.asarray(indices, dtype=np.int64)
        views = []
        for i in idx:
            clip, m = divmod(int(i), self.count)
            wave = self._waves[self.rows[clip], : self.lengths[clip]].astype(np.float32)
            seed = view_seed(self.seed, self.clip_ids[clip], self.views[m])
            views.append(make_view(wave, self.chain, self.audio.sample_rate, seed,
                                   self.audio.normalize, self.audio.target_rms_dbfs, self.audio.num_samples)[0])
        lengths = np.asarray([len(v) for v in views], dtype=np.int64)
        block = np.zeros((len(views), int(lengths.max()) if len(views) else 0), dtype=np.float32)
        for k, v in enumerate(views):
            block[k, : len(v)] = v
        norm = None if self.norm_stats is None else torch.from_numpy(self.norm_stats[idx // self.count])
        return WholeClipBatch(torch.from_numpy(block), torch.from_numpy(idx), torch.from_numpy(lengths), norm)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_waves": None}


#: ``data.sampler`` choices: ``None`` (shuffle) or ``balanced`` (:class:`BalancedClassSampler`).
SAMPLERS = (None, "balanced")


class BalancedClassSampler(WeightedRandomSampler):
    """Class-balanced sampling: each item drawn with probability proportional to 1 / its class's count.

    torch's :class:`~torch.utils.data.WeightedRandomSampler` (with replacement) with inverse class
    frequency weights, so every class present makes up an equal share of the draws in expectation;
    an epoch draws as many items as the dataset holds. The draws are seeded: epoch ``e`` uses the
    seed ``seed + e`` (Lightning calls :meth:`set_epoch` at every training epoch's start, as for a
    ``DistributedSampler``), so a run, and a run resumed at an epoch boundary, draws the same items.

    Args:
        labels: Class index per item ``(n,)``.
        seed: Base seed (``data.seed``).

    Raises:
        ValueError: no items.
    """

    def __init__(self, labels: np.ndarray, seed: int = 0) -> None:
        labels = np.asarray(labels, dtype=np.int64)
        if labels.size == 0:
            raise ValueError("data.sampler=balanced: the training split has no clips")
        counts = np.bincount(labels)
        weights = torch.from_numpy(1.0 / counts[labels]).double()
        super().__init__(weights, num_samples=len(labels), replacement=True, generator=torch.Generator())
        self.seed = int(seed)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Seed the draws of training epoch ``epoch`` with ``seed + epoch``."""
        self.generator.manual_seed(self.seed + int(epoch))
