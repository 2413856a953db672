"""Mixup (Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018) and its soft-target loss.

A training batch is replaced by convex combinations of pairs of its items, ``lam * x_i + (1 - lam) * x_j``
with ``lam ~ Beta(alpha, alpha)`` drawn once per batch and ``j`` a random permutation of the batch
(Zhang et al. §2, their reference implementation), and the targets by the same combination of the two
one-hot labels: soft targets whose rows sum to 1. :func:`soft_cross_entropy` scores logits against such
targets, with class weights and label smoothing composed exactly as ``torch.nn.functional.cross_entropy``
composes them for class-index targets (it equals that function on one-hot targets).

What is mixed is whatever the classifier's training step receives (``SERClassifier``,
``loss.mixup_alpha``): the spectrogram for the spectrogram networks (input mixup, as in the paper); the
frontend's features of whole clips for the encoder models on the waveform path (the mixed clip's valid
length is the longer of the two); and, on the frozen-feature path, the cached pooled hidden states of the
frozen encoder, i.e. the head's input — mixing a hidden representation instead of the input is manifold
mixup (Verma et al., "Manifold Mixup", ICML 2019, there at a randomly chosen layer, here always at the
pooled embedding).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def check_mixup_alpha(alpha: float) -> float:
    """``loss.mixup_alpha`` as a float, checked.

    Args:
        alpha: Beta distribution parameter; 0 switches mixup off.

    Returns:
        ``float(alpha)``.

    Raises:
        ValueError: not a finite number >= 0.
    """
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"loss.mixup_alpha={alpha!r} must be a number >= 0 (0: no mixup)") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"loss.mixup_alpha={alpha!r} must be a finite number >= 0 (0: no mixup)")
    return value


def mixup_batch(x: torch.Tensor, target: torch.Tensor, num_classes: int,
                alpha: float) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
    """Mix a batch with a random permutation of itself.

    Args:
        x: Inputs ``(batch, ...)``: a spectrogram ``(batch, channels, n_mels, frames)``, features, or cached
            pooled embeddings ``(batch, hidden_states, pooled_dim)``.
        target: Class indices ``(batch,)``.
        num_classes: Number of classes.
        alpha: ``Beta(alpha, alpha)`` parameter, > 0. ``lam`` and the permutation come from torch's global
            random generator (seeded by ``seed_everything``; its state is in the resume checkpoints).

    Returns:
        ``(mixed (batch, ...), soft_targets (batch, num_classes), lam, perm (batch,))``: ``mixed =
        lam * x + (1 - lam) * x[perm]`` in ``x``'s dtype and ``soft_targets = lam * onehot(target) +
        (1 - lam) * onehot(target[perm])`` (float32; each row sums to 1).

    Raises:
        ValueError: ``alpha`` not > 0, or ``x`` and ``target`` of different batch sizes.
    """
    if not alpha > 0:
        raise ValueError(f"loss.mixup_alpha={alpha} must be > 0 to mix a batch")
    if x.shape[0] != target.shape[0]:
        raise ValueError(f"mixup: {x.shape[0]} inputs but {target.shape[0]} targets")
    a = torch.tensor(float(alpha))
    lam = float(torch.distributions.Beta(a, a).sample())
    perm = torch.randperm(x.shape[0]).to(x.device)
    mixed = x * lam + x[perm] * (1.0 - lam)
    onehot = F.one_hot(target, num_classes).float()
    soft = onehot * lam + onehot[perm] * (1.0 - lam)
    return mixed, soft, lam, perm


def soft_cross_entropy(logits: torch.Tensor, soft_targets: torch.Tensor, weight: torch.Tensor | None = None,
                       label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy against soft targets, with class weights and label smoothing as for class indices.

    ``sum_i sum_c w_c * t~_ic * -log p_ic / sum_i sum_c w_c * t_ic`` with ``t~ = (1 - eps) * t + eps / C``:
    on one-hot targets this is exactly ``F.cross_entropy(logits, index, weight, label_smoothing=eps)``
    (whose weighted mean divides by the summed weights of the targets' classes); without weights it is
    the mean over the batch, and on mixed targets the ``lam``-weighted sum of the two items' losses.

    Args:
        logits: ``(batch, num_classes)``.
        soft_targets: ``(batch, num_classes)`` probabilities (rows sum to 1).
        weight: Per-class weights ``(num_classes,)`` or ``None``.
        label_smoothing: In [0, 1).

    Returns:
        The scalar loss (float32).
    """
    logp = F.log_softmax(logits.float(), dim=-1)
    t = soft_targets.float()
    n = t.shape[-1]
    smoothed = t * (1.0 - label_smoothing) + label_smoothing / n if label_smoothing else t
    if weight is None:
        return -(smoothed * logp).sum() / t.shape[0]
    w = weight.float()
    return -(smoothed * w * logp).sum() / (t * w).sum()
