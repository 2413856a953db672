"""Attention-based fully convolutional networks (report 004, after Zhang et al. 2019).

Sources: report 004 (Gans, Theodores, Rusu, "Emotion in Motion", RAVDESS, 4 classes) §2.2, which
adapts Zhang et al., "Attention Based Fully Convolutional Network for Speech Emotion Recognition"
(2018; the report cites it as 2019).

Architecture (report 004 §2.2): a fully convolutional encoder of 1-D convolutions with 5-10-20-30
channels, kernels 11-5-3-3, strides 4-1-1-1, ReLU after each, and three identical max-pools (size 3,
stride 2; after convs 1, 2 and 4 in the report's code), then the attention layer of eq. (1)–(4):

* (1) the encoder output is a set of annotation vectors ``A = {a_1 … a_L}``, ``a_i ∈ R^C``;
* (2) ``e_i = uᵀ tanh(W a_i + b)`` — the "dense layer with a tanh activation" of the report;
* (3) ``α_i = exp(λ e_i) / Σ_k exp(λ e_k)`` — a *scaled* softmax; λ = 1 is the plain softmax, smaller
  λ flattens the weights (paper: λ = 0.3; report 004 tuned λ = 0.8);
* (4) ``c = Σ_i α_i a_i`` — the utterance vector, classified by one linear layer (logits; the
  softmax lives in the cross-entropy loss).

What the convolutions run over (report 004 §2.1/§4 and its ``preprocess.py``): the report averages
each log-mel spectrogram over the mel axis, giving one value per frame, and runs the 1-D encoder over
*time* (its 259 frames) with a single input channel; the annotations ``a_i`` are therefore time
steps. :class:`AttentionFCN` does the same on the ``(batch, C, n_feats, frames)`` features
(``frequency_reduction="mean"``: ``C`` input channels, one per feature channel), or keeps the whole
spectrum of each frame as ``C · n_feats`` input channels (``frequency_reduction="stack"``).

Zhang et al. instead keep the 2-D time-frequency map (an ImageNet AlexNet encoder over the
spectrogram; annotations are the ``F' × T'`` cells of its output): :class:`AttentionFCN2d`.

Interpretations (the report's TensorFlow code collapses the encoder output into one 4-unit tanh
dense layer and "attends" over those 4 numbers; the equations above are followed instead):

* The tanh dense layer is ``W`` in eq. (2) (size ``attention_dim``, default ``C``); ``u`` is one
  learned vector shared by all items (not one per batch row as in the report's code).
* Convolutions are zero-padded by ``k // 2`` and the max-pools by 1, so any utterance length (and for
  the 2-D variant any number of mel bins) ≥ 1 works; the report's Keras layers are unpadded, which
  needs ≳ 100 frames.
* AlexNet's local response normalisation is omitted, as in the report.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ser_lightning.models.registry import register_model
from ser_lightning.models.settings import dropout_prob

FREQUENCY_REDUCTIONS = ("mean", "stack")


class AttentionPooling(nn.Module):
    """Scaled-softmax attention pooling, eq. (2)–(4) of report 004 / Zhang et al.

    ``e_i = uᵀ tanh(W a_i + b)``, ``α = softmax(λ e)``, ``c = Σ_i α_i a_i``.

    Args:
        dim: Size ``C`` of each annotation vector.
        attention_dim: Output size of the tanh dense layer ``W`` (and of ``u``).
        attention_lambda: Softmax scale λ > 0 (1.0: plain softmax; smaller: flatter weights).

    Shapes:
        annotations ``(batch, L, C)`` → ``(c (batch, C), α (batch, L))`` with ``α`` summing to 1
        over ``L``.

    Raises:
        ValueError: ``attention_lambda`` ≤ 0 or a non-positive size.
    """

    def __init__(self, dim: int, attention_dim: int | None = None, attention_lambda: float = 1.0) -> None:
        super().__init__()
        attention_dim = dim if attention_dim is None else int(attention_dim)
        if attention_dim <= 0:
            raise ValueError(f"model.attention_dim={attention_dim} must be positive (or null for the annotation size)")
        if not attention_lambda > 0:
            raise ValueError(f"model.attention_lambda={attention_lambda} must be > 0 (paper 0.3, report 004 0.8)")
        self.attention_lambda = float(attention_lambda)
        self.proj = nn.Linear(dim, attention_dim)  # W, b of eq. (2)
        self.context = nn.Linear(attention_dim, 1, bias=False)  # u of eq. (2)

    def forward(self, annotations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Utterance vector ``(batch, C)`` and weights ``(batch, L)`` from ``(batch, L, C)``."""
        scores = self.context(torch.tanh(self.proj(annotations))).squeeze(-1)  # e_i: (batch, L)
        alpha = torch.softmax(self.attention_lambda * scores, dim=-1)
        pooled = torch.bmm(alpha.unsqueeze(1), annotations).squeeze(1)
        return pooled, alpha


def _check_encoder(channels, kernel_sizes, strides, pool_after) -> tuple[list[int], list[int], list[int], set[int]]:
    channels, kernel_sizes, strides = [int(c) for c in channels], [int(k) for k in kernel_sizes], [int(s) for s in strides]
    pool_after = [int(p) for p in pool_after]
    if not channels or not len(channels) == len(kernel_sizes) == len(strides):
        raise ValueError(
            f"model.channels={channels}, model.kernel_sizes={kernel_sizes} and model.strides={strides} "
            "must be non-empty and of equal length"
        )
    if min(channels) <= 0 or min(kernel_sizes) <= 0 or min(strides) <= 0:
        raise ValueError(
            f"model.channels={channels}, model.kernel_sizes={kernel_sizes} and model.strides={strides} must be positive"
        )
    bad = [p for p in pool_after if not 1 <= p <= len(channels)]
    if bad:
        raise ValueError(f"model.pool_after={pool_after}: conv indices are 1-based, in [1, {len(channels)}]; got {bad}")
    return channels, kernel_sizes, strides, set(pool_after)


def _encoder(conv: type[nn.Module], pool: type[nn.Module], c_in: int, channels, kernel_sizes, strides, pool_after) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (c_out, k, s) in enumerate(zip(channels, kernel_sizes, strides), start=1):
        layers += [conv(c_in, c_out, kernel_size=k, stride=s, padding=k // 2), nn.ReLU(inplace=True)]
        if i in pool_after:
            layers.append(pool(kernel_size=3, stride=2, padding=1))
        c_in = c_out
    return nn.Sequential(*layers)


@register_model("attention_fcn", source="report 004 §2.2 (after Zhang et al. 2018)")
class AttentionFCN(nn.Module):
    """Report 004's attention-based FCN: 1-D convs over time + scaled-softmax attention pooling.

    Args:
        in_channels: Feature channels ``C`` (1 for log-mel).
        num_classes: Number of emotion classes.
        channels: Conv output channels (report 004: 5, 10, 20, 30).
        kernel_sizes: Conv kernel sizes in frames (report: 11, 5, 3, 3).
        strides: Conv strides (report: 4, 1, 1, 1).
        pool_after: 1-based conv indices followed by a max-pool of size 3, stride 2 (report: 1, 2, 4).
        attention_dim: Size of the tanh dense layer ``W`` of eq. (2); ``None``: ``channels[-1]``.
        attention_lambda: Softmax scale λ of eq. (3) (paper 0.3, report 004 0.8).
        frequency_reduction: ``mean`` (report 004: average over the mel axis, ``C`` input
            channels) or ``stack`` (each frame's ``C · n_feats`` values as input channels).
        n_feats: With ``stack``: mel bins each channel is adaptively average-pooled to (the identity
            when the input has that many), so the first conv has ``C · n_feats`` input channels.
        dropout: Dropout on the utterance vector before the classifier (report: none).

    Shapes:
        input ``(batch, in_channels, n_feats, frames)`` → logits ``(batch, num_classes)``;
        :meth:`forward_with_attention` also returns the weights ``(batch, L)`` over the encoder's
        ``L ≈ frames / 32`` time steps (report geometry).

    Raises:
        ValueError: bad encoder lists, ``attention_lambda`` ≤ 0, unknown ``frequency_reduction``,
            ``n_feats`` ≤ 0 or ``dropout`` outside [0, 1).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 8,
        channels: Sequence[int] = (5, 10, 20, 30),
        kernel_sizes: Sequence[int] = (11, 5, 3, 3),
        strides: Sequence[int] = (4, 1, 1, 1),
        pool_after: Sequence[int] = (1, 2, 4),
        attention_dim: int | None = None,
        attention_lambda: float = 0.8,
        frequency_reduction: str = "mean",
        n_feats: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        channels, kernel_sizes, strides, pools = _check_encoder(channels, kernel_sizes, strides, pool_after)
        if frequency_reduction not in FREQUENCY_REDUCTIONS:
            raise ValueError(f"model.frequency_reduction={frequency_reduction!r} is not one of {list(FREQUENCY_REDUCTIONS)}")
        if n_feats <= 0:
            raise ValueError(f"model.n_feats={n_feats} must be a positive number of mel bins")
        dropout_prob(dropout, "dropout")
        self.frequency_reduction, self.n_feats = frequency_reduction, int(n_feats)
        c_in = in_channels if frequency_reduction == "mean" else in_channels * self.n_feats
        self.encoder = _encoder(nn.Conv1d, nn.MaxPool1d, c_in, channels, kernel_sizes, strides, pools)
        self.attention = AttentionPooling(channels[-1], attention_dim, attention_lambda)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels[-1], num_classes)

    def _sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder input ``(batch, C or C·n_feats, frames)`` from ``(batch, C, n_feats, frames)``."""
        if self.frequency_reduction == "mean":
            return x.mean(dim=2)
        b, c, _, t = x.shape
        x = F.adaptive_avg_pool2d(x, (self.n_feats, t))
        return x.reshape(b, c * self.n_feats, t)

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(batch, num_classes)`` and attention weights ``(batch, L)`` over time steps."""
        annotations = self.encoder(self._sequence(x)).transpose(1, 2)  # (batch, L, C)
        pooled, alpha = self.attention(annotations)
        return self.classifier(self.dropout(pooled)), alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_classes)`` from features ``(batch, in_channels, n_feats, frames)``."""
        return self.forward_with_attention(x)[0]


@register_model("attention_fcn_2d", source="Zhang et al. 2018 (report 004 §2.2)")
class AttentionFCN2d(nn.Module):
    """Zhang et al.'s time-frequency variant: 2-D convs over the spectrogram + attention pooling.

    Same encoder lists as :class:`AttentionFCN`, with square 2-D kernels/strides and 3×3/2 max-pools;
    the annotations are the ``F' × T'`` cells of the encoder output (eq. (1) of the paper, where the
    FCN output is ``F × T × C``). Zhang et al. use ImageNet AlexNet conv layers
    (``channels=[96, 256, 384, 384, 256]``, ``kernel_sizes=[11, 5, 3, 3, 3]``,
    ``strides=[4, 1, 1, 1, 1]``, ``pool_after=[1, 2, 5]``; no pretrained weights here) and λ = 0.3;
    the default keeps report 004's small 5-10-20-30 encoder, trainable from scratch on RAVDESS.

    Args:
        in_channels: Feature channels (1 for log-mel).
        num_classes: Number of emotion classes.
        channels: Conv output channels.
        kernel_sizes: Square kernel sizes.
        strides: Square strides.
        pool_after: 1-based conv indices followed by a 3×3 max-pool with stride 2.
        attention_dim: Size of the tanh dense layer ``W``; ``None``: ``channels[-1]``.
        attention_lambda: Softmax scale λ (paper 0.3).
        dropout: Dropout on the utterance vector before the classifier.

    Shapes:
        input ``(batch, in_channels, n_feats, frames)`` → logits ``(batch, num_classes)``;
        :meth:`forward_with_attention` also returns the weights ``(batch, F', T')``
        (``≈ n_feats / 32 × frames / 32`` with the default geometry), summing to 1 per item.

    Raises:
        ValueError: bad encoder lists, ``attention_lambda`` ≤ 0 or ``dropout`` outside [0, 1).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 8,
        channels: Sequence[int] = (5, 10, 20, 30),
        kernel_sizes: Sequence[int] = (11, 5, 3, 3),
        strides: Sequence[int] = (4, 1, 1, 1),
        pool_after: Sequence[int] = (1, 2, 4),
        attention_dim: int | None = None,
        attention_lambda: float = 0.3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        channels, kernel_sizes, strides, pools = _check_encoder(channels, kernel_sizes, strides, pool_after)
        dropout_prob(dropout, "dropout")
        self.encoder = _encoder(nn.Conv2d, nn.MaxPool2d, in_channels, channels, kernel_sizes, strides, pools)
        self.attention = AttentionPooling(channels[-1], attention_dim, attention_lambda)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels[-1], num_classes)

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(batch, num_classes)`` and attention weights ``(batch, F', T')``."""
        fmap = self.encoder(x)  # (batch, C, F', T')
        b, _, f, t = fmap.shape
        pooled, alpha = self.attention(fmap.flatten(2).transpose(1, 2))  # annotations (batch, F'·T', C)
        return self.classifier(self.dropout(pooled)), alpha.reshape(b, f, t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_classes)`` from features ``(batch, in_channels, n_feats, frames)``."""
        return self.forward_with_attention(x)[0]
