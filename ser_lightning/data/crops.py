"""Crop strategy for whole-clip encoders: random windows in training, several windows averaged at test.

Whole clips (``data.clip_length=whole``) reach an encoder at their own length. With
``data.train_crop_s`` set, a training clip is instead a window of that many seconds, and with
``data.test_crops=N`` (N > 1) a validation or test clip is scored by N evenly spaced windows of the
same length whose class probabilities are averaged. A clip no longer than the window is used whole.
This is the multi-crop recipe of image classification (Krizhevsky et al., NIPS 2012, §4.1: random
crops in training, the softmax averaged over crops at test) applied to time.

Two paths (``SERDataModule``):

* **Waveform path** (a trained encoder, ``model.feature_cache=off``): every training clip is a new
  uniformly drawn window each time it is served (each epoch); validation/test clips are served as
  their N windows.
* **Frozen-feature path** (cached frozen features): an embedding that changes every epoch cannot be
  cached, so each clip's ``data.train_crops`` (K) evenly spaced windows are embedded once, and every
  training clip contributes all K windows as training items (a fixed, deterministic training set, as
  full-batch L-BFGS needs); the N test windows are embedded once as well.

``data.train_crops=0`` keeps the training clips whole on either path (test-time crops alone).

Functions here are plain NumPy/torch; the data module and the classifier call them.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch


class CropGroups(NamedTuple):
    """Model inputs of ``crops`` windows per clip, window-major within each clip.

    Attributes:
        inputs: What the network takes for ``batch * crops`` windows, e.g. ``(waves (batch * crops, time),
            lengths (batch * crops,))`` features or cached frozen features ``(batch * crops, hidden_states, pooled_dim)``;
            rows ``i * crops ... (i + 1) * crops - 1`` are clip ``i``'s windows.
        crops: Windows per clip.
    """

    inputs: Any
    crops: int


def check_crop_settings(train_crop_s: float | None, test_crops: int, train_crops: int, clip_length: str) -> None:
    """Reject bad crop settings with one line naming the setting.

    Args:
        train_crop_s: Window length in seconds (``data.train_crop_s``), or ``None`` (whole clips).
        test_crops: Windows averaged per validation/test clip (``data.test_crops``; 1: the whole clip).
        train_crops: Windows embedded per training clip on the frozen-feature path (``data.train_crops``;
            0: training clips stay whole on either path, ``train_crop_s`` only sets the test windows).
        clip_length: ``data.clip_length``.

    Raises:
        ValueError: a non-positive or non-finite window, a count below 1 or not an integer, ``test_crops > 1``
            without a window, or crops of fixed-length clips.
    """
    if train_crop_s is not None:
        if isinstance(train_crop_s, bool) or not isinstance(train_crop_s, (int, float)) \
                or not math.isfinite(train_crop_s) or train_crop_s <= 0:
            raise ValueError(f"data.train_crop_s={train_crop_s!r} must be null (whole clips) or a positive number of seconds")
        if clip_length != "whole":
            raise ValueError(f"data.train_crop_s={train_crop_s} crops whole clips for the encoder models; "
                             f"data.clip_length={clip_length} already crops every clip to data.duration_s")
    for name, value, least in (("data.test_crops", test_crops, 1), ("data.train_crops", train_crops, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name}={value!r} must be a whole number of windows, at least {least}")
    if test_crops > 1 and train_crop_s is None:
        raise ValueError(f"data.test_crops={test_crops} averages windows of data.train_crop_s seconds, "
                         "but data.train_crop_s is null; set it (e.g. data.train_crop_s=2.0) or data.test_crops=1")


def even_windows(lengths: np.ndarray, crop_samples: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` evenly spaced windows of ``crop_samples`` per clip, first at the start, last at the end.

    One window is centred. A clip no longer than ``crop_samples`` gives ``count`` copies of the whole clip.

    Args:
        lengths: Valid samples per clip ``(n,)``.
        crop_samples: Window length in samples (> 0).
        count: Windows per clip (>= 1).

    Returns:
        ``(starts (n, count), window_lengths (n, count))`` int64, each window inside its clip.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    slack = np.maximum(lengths - crop_samples, 0)[:, None]  # (n, 1)
    frac = np.full((1, 1), 0.5) if count == 1 else np.linspace(0.0, 1.0, count)[None, :]
    starts = np.floor(slack * frac + 0.5).astype(np.int64)
    return starts, np.broadcast_to(np.minimum(lengths, crop_samples)[:, None], starts.shape).copy()


def random_windows(lengths: np.ndarray, crop_samples: int, rng: np.random.Generator | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """One uniformly drawn window of ``crop_samples`` per clip (the whole clip where it is no longer).

    Args:
        lengths: Valid samples per clip ``(n,)``.
        crop_samples: Window length in samples (> 0).
        rng: Random generator; ``None``: NumPy's global one (seeded per worker by Lightning's ``seed_everything``).

    Returns:
        ``(starts (n,), window_lengths (n,))`` int64.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    slack = np.maximum(lengths - crop_samples, 0)
    draw = rng.random(len(lengths)) if rng is not None else np.random.random(len(lengths))
    starts = np.minimum(np.floor(draw * (slack + 1)).astype(np.int64), slack)
    return starts, np.minimum(lengths, crop_samples)


def cut_windows(waves: np.ndarray, rows: np.ndarray, starts: np.ndarray, window_lengths: np.ndarray) -> np.ndarray:
    """Read windows out of a ``(clips, time)`` array into one zero-padded block.

    Args:
        waves: ``(clips, time)`` array (e.g. the audio cache's memory map).
        rows: Clip row per window ``(m,)``.
        starts: First sample per window ``(m,)``.
        window_lengths: Samples per window ``(m,)``.

    Returns:
        float32 ``(m, max(window_lengths))``, zero after each window's length.
    """
    out = np.zeros((len(rows), int(window_lengths.max()) if len(rows) else 0), dtype=np.float32)
    for i, (r, s, n) in enumerate(zip(rows, starts, window_lengths)):
        out[i, :n] = waves[r, s:s + n]
    return out


def average_crop_logits(logits: torch.Tensor, crops: int) -> torch.Tensor:
    """Per-clip log of the mean class probability over its windows.

    Args:
        logits: ``(batch * crops, num_classes)``, each clip's windows consecutive.
        crops: Windows per clip.

    Returns:
        ``(batch, num_classes)`` log-probabilities ``log(mean_j softmax(logits_j))``: their softmax is the
        averaged probability, so argmax, cross-entropy and calibration read them as logits.
    """
    grouped = torch.log_softmax(logits.float(), dim=-1).reshape(-1, crops, logits.shape[-1])
    return torch.logsumexp(grouped, dim=1) - math.log(crops)
