"""The batches the data module's loaders serve, and the one collate function that builds them.

A fixed-length batch is a :class:`WaveBatch`; whole clips (``data.clip_length=whole``) carry their lengths
(:class:`WholeClipBatch`); the frozen-feature path serves cached pooled encoder states (:class:`FrozenFeatureBatch`);
test-time crops carry the clip each crop belongs to (:class:`CropBatch`). :class:`~ser_lightning.data.datamodule.SERDataModule`
turns them into features on the device; on the frozen-feature path it hands the classifier :class:`FrozenFeatures`,
so the batch itself says that it is the head's input (nothing is switched on the model).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch.utils.data import default_collate

from ser_lightning.deprecation import renamed


class WaveBatch(NamedTuple):
    """A batch made in one piece by :meth:`CachedWaveDataset.__getitems__`.

    Attributes:
        waves: ``(batch, time)`` float32 waveforms.
        target: ``(batch,)`` int64 class indices.
    """

    waves: torch.Tensor
    target: torch.Tensor


class WholeClipBatch(NamedTuple):
    """A batch of whole clips (``data.clip_length=whole``): zero-padded waveforms and their lengths.

    Attributes:
        waves: ``(batch, time)`` float32 waveforms, zero after each clip's length.
        target: ``(batch,)`` int64 class indices.
        lengths: ``(batch,)`` int64 valid samples per clip.
        norm_stats: ``(batch, 2)`` float32 mean and sd of each clip's corpus (the encoder's
            log-mel standardisation, :meth:`SERDataModule.set_norm_stats`), or ``None``.
    """

    waves: torch.Tensor
    target: torch.Tensor
    lengths: torch.Tensor
    norm_stats: torch.Tensor | None = None


class FrozenFeatureBatch(NamedTuple):
    """A batch of cached frozen features (the frozen-encoder path, :meth:`SERDataModule.use_feature_cache`).

    Attributes:
        features: ``(batch, *feature_shape)`` float32, e.g. ``(batch, hidden_states, pooled_dim)``.
        target: ``(batch,)`` int64 class indices.
        weight: ``(batch,)`` float32 loss weight of each item (``data.corpus_weights=balanced``), or ``None``.
    """

    features: torch.Tensor
    target: torch.Tensor
    weight: torch.Tensor | None = None


class FrozenFeatures(NamedTuple):
    """Cached frozen features on the device: the input of a cacheable encoder model's head.

    ``SERClassifier`` sends them to ``network.forward_pooled`` instead of the frontend and the encoder
    (``SERClassifier._logits``).

    Attributes:
        pooled: ``(batch, *feature_shape)`` float32, e.g. ``(batch, hidden_states, pooled_dim)``.
    """

    pooled: torch.Tensor


class CropBatch(NamedTuple):
    """A batch of clips served as several windows each (``data.test_crops`` > 1).

    Attributes:
        batch: A :class:`WholeClipBatch` of ``batch * crops`` windows, or an :class:`FrozenFeatureBatch` of their
            ``batch * crops`` cached frozen features; each clip's windows consecutive.
        crops: Windows per clip.
        target: ``(batch,)`` int64 class index per clip.
    """

    batch: Any
    crops: int
    target: torch.Tensor


def collate_batch(items: WaveBatch | list) -> Any:
    """DataLoader ``collate_fn``: a :class:`WaveBatch` is already a batch; anything else goes to ``default_collate``.

    Args:
        items: What the dataset returned for one batch of indices.

    Returns:
        ``(waves (batch, time), target (batch,))``.
    """
    if isinstance(items, (WaveBatch, WholeClipBatch, FrozenFeatureBatch, CropBatch)):
        return items
    return default_collate(items)


#: Old name (before one name, "frozen features", was used for the cache and what it holds).
__getattr__ = renamed(__name__, {"EmbeddingBatch": "FrozenFeatureBatch"}, globals())
