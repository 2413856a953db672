"""Convolutional networks on spectrograms: the CNN family (``model=homebrew_cnn``, ``plain_cnn``,
``parallel_cnn``, ``mfcc_cnn``, ``residual_cnn``).

Report 003 — ``homebrew_cnn``
-----------------------------

Report 003's homebrew CNN (Berhoff & Lu, "Efficient Speech Emotion Classification Using
Transfer Learning", §3.3): four conv blocks (conv → ReLU → BatchNorm, Kaiming init) with
8-16-32-64 channels, adaptive average pooling and one linear layer.

Report 001 — ``plain_cnn``, ``parallel_cnn`` (and ``cnn_transformer``, :mod:`ser_lightning.models.sequence`)
-----------------------------------------------------------------------------------------------------------

Report 001's from-scratch networks (§4.3–4.5): a 3-layer CNN block, two CNN blocks in
parallel, and two CNN blocks in parallel with a 4-layer Transformer encoder.

Source: report 001 (January 2023, RAVDESS + SAVEE + TESS + CREMA-D, 7 classes), §4.3.1 "Convolutional
Neural Network Block", §4.4 "Two CNNs in Parallel", §4.5 "Two CNNs and a Transformer in Parallel"
(Keras summaries with 27,495 / 54,983 / 848,967 parameters at input ``1 × 128 × 94``).

Reading of the Keras summaries (what the layer shapes and counts pin down):

* Conv2D 3×3, "same" padding (160 = 1·9·16 + 16; maps keep 128 × 94), BatchNorm → ReLU →
  MaxPool (2, 4, 4, floor) → Dropout 0.3; three stages 16-32-64; Flatten 64·4·2 = 512 → Dense.
* The BatchNorm counts 376 / 188 / 44 = 4 · 94 / 47 / 11: Keras' ``BatchNormalization()`` default
  ``axis=-1`` on a channels-first tensor normalises each *time frame* (width column), not each
  channel. That is a quirk of the Keras code, not a design choice; here ``batchnorm="channel"``
  (default, ``BatchNorm2d`` per feature map, any input size) is used, and ``batchnorm="time"``
  reproduces the Keras layer exactly (needs the frame count, ``model.frames``).
* Transformer: 198,272 parameters per layer = ``nn.TransformerEncoderLayer(d_model=128, nhead=4,
  dim_feedforward=512)`` exactly (post-norm, ReLU). The encoder reads the squeezed input, i.e. the
  128 MFCC bins of each of the 94 frames are the embedding: no pooling, no projection, no
  positional encoding. The output is averaged over time (128 values).
* Keras counts BatchNorm moving mean/variance as (non-trainable) parameters; PyTorch keeps them as
  buffers. Compare PyTorch ``parameters()`` with the report's *trainable* counts (27,191 / 54,375 /
  848,359), or add the ``running_mean``/``running_var`` buffers to compare with the totals.

Parameter counts at input 1 × 128 × 94, 7 classes (PyTorch parameters / + BN running stats):

=============================  ==================  ==================  ======================
model                          report (train/all)  batchnorm=channel   batchnorm=time
=============================  ==================  ==================  ======================
``plain_cnn``              27,191 / 27,495     27,111 / 27,335     27,191 / 27,495
``parallel_cnn``     54,375 / 54,983     54,215 / 54,663     54,375 / 54,983
``cnn_transformer``  848,359 / 848,967   848,199 / 848,647   848,359 / 848,967
=============================  ==================  ==================  ======================

The default (``channel``) differs by −0.3 % / −0.6 % (−0.02 % / −0.04 % with the transformer):
only the BatchNorm sizes differ.

Frontend (owned by the ``features``/``data`` config groups, not by the model): the report feeds
128 MFCCs (§4.3–4.4; §4.5 also 128 log-mels) × 94 frames at 16 kHz, i.e. ``features.n_mfcc=128``
(or ``n_mels=128``) and a hop giving 94 frames for its clip length.

Input-size handling (the Keras model has a fixed-size Flatten): after the third max-pool the map is
adaptively max-pooled to ``pool_grid`` (default 4 × 2). At the report's 128 × 94 input the third
pool already yields 4 × 2, so this is the identity and the network is the report's; other inputs
(≥ 32 × 32, e.g. 64 × 94 or 40 × 63) are pooled / repeated onto the same grid. Set
``pool_grid=[n_feats // 32, frames // 32]`` to get the report's exact Flatten at another input size.
The transformer's embedding is the (channel-stacked) feature axis adaptively average-pooled to
``d_model`` bins: the identity when ``in_channels · n_feats == d_model`` (the report: 1 · 128).

Report 002 — ``mfcc_cnn``
-------------------------

Report 002's CNN on MFCC + Δ + ΔΔ (MAIS 202 "Preliminary Results", §3 "Machine learning model"):
two ``Conv 3×3 (pad 1) → ReLU → MaxPool 2 → Dropout 0.2`` layers (32, 64 channels), flatten,
``Linear → 256 → ReLU → 128 → ReLU → num_classes``, on 2-second clips.

Reading of the report's printed PyTorch module: its first conv is ``Conv2d(1, 32, …)`` and its first
linear layer takes 13,248 = 64 · 9 · 23 inputs, so MFCC, Δ and ΔΔ were *concatenated along the
coefficient axis* into one single-channel image of 36–39 rows (3 · 13 MFCCs = 39 fits librosa-style
13 coefficients) × 92–95 frames (two 2×2 pools: 39 // 4 = 9, 94 // 4 = 23). The report gives no
parameter total; the module list fixes it: 3,444,488 at that input with 8 classes (320 + 18,496 +
3,391,744 + 32,896 + 1,032).

Our MFCC frontend puts Δ and ΔΔ in channels ``(batch, 1 + deltas, n_mfcc, frames)``. With
``stack_channels=True`` (default) the network folds the channels into the coefficient axis,
``(batch, 1, C · n_mfcc, frames)``, reproducing the report's input and its ``Conv2d(1, 32)``;
with ``stack_channels=False`` the first conv takes the ``C`` channels instead
(``Conv2d(in_channels, 32)``: 288 · (C − 1) more parameters).

Input-size handling (the report's Flatten is fixed-size): the second pool's output is adaptively
max-pooled to ``pool_grid`` (default 9 × 23), the identity at the report's 39 × 94 input and a
pool/repeat onto the same grid otherwise, so the linear layers keep the report's 13,248 inputs.
Set ``pool_grid=[rows // 4, frames // 4]`` for the report's exact Flatten at another geometry.

Frontend (owned by the ``features``/``data`` config groups, not by the model): MFCC with
``features.deltas=2`` (13 coefficients fit the report's sizes), clips of 2 s (truncate / zero-pad),
per-utterance normalisation.

Report 000 — ``residual_cnn``
-----------------------------

Report 000's CNN member (§3.3.1), also trained on its own; the report, its reading and the ensemble it joins are
described in :mod:`ser_lightning.models.ensembles`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ser_lightning.models.registry import register_model
from ser_lightning.models.settings import dropout_prob, int_list, positive_int

_BATCHNORM = ("channel", "time")


class TimeBatchNorm(nn.Module):
    """Keras ``BatchNormalization(axis=-1)`` on a channels-first map: one mean/variance/γ/β per
    time frame (last axis), statistics over batch, channels and frequency.

    Args:
        frames: Size of the last axis.

    Shapes:
        ``(batch, channels, n_feats, frames)`` → same shape.
    """

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.frames = frames
        self.bn = nn.BatchNorm2d(frames)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise each time frame of ``x`` ``(batch, channels, n_feats, frames)``."""
        return self.bn(x.transpose(1, 3)).transpose(1, 3)


class CNNBlock(nn.Module):
    """Report 001 §4.3.1 CNN block: three ``Conv 3×3 (same) → BatchNorm → ReLU → MaxPool → Dropout``
    stages (16-32-64 channels, pools 2/4/4, dropout 0.3), then flatten.

    Args:
        in_channels: Feature channels.
        widths: Output channels per stage (report: 16, 32, 64).
        pools: Max-pool kernel = stride per stage (report: 2, 4, 4).
        kernel_size: Conv kernel size, "same" padding (report: 3).
        dropout: Dropout after every pool (report: 0.3).
        pool_grid: ``[H, W]`` the last pool's output is adaptively max-pooled to (report: 4, 2 —
            the identity at its 128 × 94 input).
        batchnorm: ``"channel"`` (``BatchNorm2d`` per feature map) or ``"time"`` (the report's
            Keras per-frame normalisation; fixes the input frame count to ``frames``).
        frames: Input frames; used (and checked) only with ``batchnorm="time"`` (report: 94).

    Shapes:
        input ``(batch, in_channels, n_feats, frames)`` with ``n_feats, frames ≥ prod(pools)`` →
        ``(batch, out_features)``, ``out_features = widths[-1] · pool_grid[0] · pool_grid[1]``.

    Raises:
        ValueError: bad settings (named ``model.<key>``); at forward time an input smaller than
            ``prod(pools)`` or, with ``batchnorm="time"``, not ``frames`` frames wide.
    """

    def __init__(
        self,
        in_channels: int = 1,
        widths: Sequence[int] = (16, 32, 64),
        pools: Sequence[int] = (2, 4, 4),
        kernel_size: int = 3,
        dropout: float = 0.3,
        pool_grid: Sequence[int] = (4, 2),
        batchnorm: str = "channel",
        frames: int = 94,
    ) -> None:
        super().__init__()
        widths = int_list(widths, "widths")
        pools = int_list(pools, "pools", len(widths))
        grid = int_list(pool_grid, "pool_grid", 2)
        dropout = dropout_prob(dropout, "dropout")
        positive_int(kernel_size, "kernel_size")
        if batchnorm not in _BATCHNORM:
            raise ValueError(f"model.batchnorm={batchnorm!r} must be one of {list(_BATCHNORM)}")
        self.batchnorm = batchnorm
        self.min_size = 1
        for p in pools:
            self.min_size *= p
        self.frames = int(frames)
        if batchnorm == "time" and self.frames < self.min_size:
            raise ValueError(f"model.frames={frames} must be ≥ {self.min_size} (the product of model.pools={pools})")
        layers: list[nn.Module] = []
        c_in, width = in_channels, self.frames
        for i, (c_out, p) in enumerate(zip(widths, pools)):
            norm = nn.BatchNorm2d(c_out) if batchnorm == "channel" else TimeBatchNorm(width)
            layers += [
                nn.Conv2d(c_in, c_out, int(kernel_size), padding="same"),
                norm,
                nn.ReLU(inplace=True),
                nn.MaxPool2d(p),
            ]
            if i == len(widths) - 1:  # after the last pool: fix the flattened size
                layers.append(nn.AdaptiveMaxPool2d(tuple(grid)))
            layers.append(nn.Dropout(dropout))
            c_in, width = c_out, width // p
        self.layers = nn.Sequential(*layers)
        self.out_features = c_in * grid[0] * grid[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened features ``(batch, out_features)`` from ``(batch, in_channels, n_feats, frames)``."""
        h, w = x.shape[-2:]
        if h < self.min_size or w < self.min_size:
            raise ValueError(f"report 001 CNN block needs n_feats and frames ≥ {self.min_size} (its max-pools), got {h} × {w}")
        if self.batchnorm == "time" and w != self.frames:
            raise ValueError(f"model.frames={self.frames} (batchnorm=time) but the input has {w} frames")
        return self.layers(x).flatten(1)


@register_model("plain_cnn", default_input_size=(128, 94), min_input_size=(32, 32), source="report 001 §4.3.1")
class PlainCNN(nn.Module):
    """Report 001 §4.3: one CNN block (see :class:`CNNBlock`) and a linear classifier.

    27,111 parameters (+224 BN running stats) at 1 × 128 × 94 and 7 classes; the report has 27,191
    trainable / 27,495 total; ``batchnorm="time"`` matches it exactly (module docstring).

    Args:
        in_channels: Feature channels (report: 1, 128 MFCCs or log-mels).
        num_classes: Number of emotion classes (report: 7).
        widths, pools, kernel_size, dropout, pool_grid, batchnorm, frames: see :class:`CNNBlock`.

    Shapes:
        input ``(batch, in_channels, n_feats, frames)`` → logits ``(batch, num_classes)`` (the
        report's softmax is left to the loss).

    Raises:
        ValueError: bad settings, named ``model.<key>``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 7,
        widths: Sequence[int] = (16, 32, 64),
        pools: Sequence[int] = (2, 4, 4),
        kernel_size: int = 3,
        dropout: float = 0.3,
        pool_grid: Sequence[int] = (4, 2),
        batchnorm: str = "channel",
        frames: int = 94,
    ) -> None:
        super().__init__()
        self.block = CNNBlock(in_channels, widths, pools, kernel_size, dropout, pool_grid, batchnorm, frames)
        self.classifier = nn.Linear(self.block.out_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_classes)`` from features ``(batch, in_channels, n_feats, frames)``."""
        return self.classifier(self.block(x))


@register_model("parallel_cnn", default_input_size=(128, 94), min_input_size=(32, 32), source="report 001 §4.4")
class ParallelCNN(nn.Module):
    """Report 001 §4.4: two independent CNN blocks on the same input, flattened outputs
    concatenated (2 · 512 at the report's input) → linear classifier.

    54,215 parameters (+448 BN running stats) at 1 × 128 × 94 and 7 classes; the report has 54,375
    trainable / 54,983 total; ``batchnorm="time"`` matches it exactly.

    Args:
        in_channels: Feature channels (report: 1).
        num_classes: Number of emotion classes (report: 7).
        widths, pools, kernel_size, dropout, pool_grid, batchnorm, frames: per block, see
            :class:`CNNBlock`.

    Shapes:
        input ``(batch, in_channels, n_feats, frames)`` → logits ``(batch, num_classes)``.

    Raises:
        ValueError: bad settings, named ``model.<key>``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 7,
        widths: Sequence[int] = (16, 32, 64),
        pools: Sequence[int] = (2, 4, 4),
        kernel_size: int = 3,
        dropout: float = 0.3,
        pool_grid: Sequence[int] = (4, 2),
        batchnorm: str = "channel",
        frames: int = 94,
    ) -> None:
        super().__init__()
        args = (in_channels, widths, pools, kernel_size, dropout, pool_grid, batchnorm, frames)
        self.blocks = nn.ModuleList([CNNBlock(*args), CNNBlock(*args)])
        self.classifier = nn.Linear(2 * self.blocks[0].out_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_classes)`` from features ``(batch, in_channels, n_feats, frames)``."""
        return self.classifier(torch.cat([b(x) for b in self.blocks], dim=1))


@register_model("homebrew_cnn", source="report 003 §3.3")
class HomebrewCNN(nn.Module):
    """Four strided conv blocks, global average pooling, linear classifier (report 003 §3.3).

    Each block is ``Conv2d(k, stride) → ReLU → BatchNorm2d`` with Kaiming-normal init; the first
    kernel is 5×5 and the rest 3×3, all with stride 2 as in the report's code lineage.

    Args:
        in_channels: Feature channels (1 for log-mel, 3 for MFCC + Δ + ΔΔ).
        num_classes: Number of emotion classes.
        widths: Output channels of the conv blocks (report: 8, 16, 32, 64).
        kernel_sizes: Kernel size per block.
        stride: Stride of every conv.
        dropout: Dropout before the linear layer (report: none).

    Shapes:
        input ``(batch, in_channels, n_feats, frames)`` → logits ``(batch, num_classes)``.

    Raises:
        ValueError: if ``widths`` and ``kernel_sizes`` differ in length or are empty.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 8,
        widths: Sequence[int] = (8, 16, 32, 64),
        kernel_sizes: Sequence[int] = (5, 3, 3, 3),
        stride: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        widths, kernel_sizes = list(widths), list(kernel_sizes)
        if not widths or len(widths) != len(kernel_sizes):
            raise ValueError(f"model.widths={widths} and model.kernel_sizes={kernel_sizes} must be non-empty and of equal length")
        blocks: list[nn.Module] = []
        c_in = in_channels
        for c_out, k in zip(widths, kernel_sizes):
            conv = nn.Conv2d(c_in, c_out, kernel_size=k, stride=stride, padding=k // 2)
            nn.init.kaiming_normal_(conv.weight, a=0.1)
            nn.init.zeros_(conv.bias)
            blocks += [conv, nn.ReLU(inplace=True), nn.BatchNorm2d(c_out)]
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_classes)`` from features ``(batch, in_channels, n_feats, frames)``."""
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(self.dropout(x))


@register_model("mfcc_cnn", default_input_size=(39, 94), min_input_size=(4, 4), source="report 002 §3")
class MFCCCNN(nn.Module):
    """Report 002's CNN: conv blocks ``Conv k×k (same) → ReLU → MaxPool → Dropout`` (32, 64
    channels, pool 2, dropout 0.2), adaptive max-pool to ``pool_grid``, flatten, then linear layers
    256 → 128 (ReLU) → ``num_classes``.

    Args:
        in_channels: Feature channels (3 for our MFCC frontend with ``deltas=2``).
        num_classes: Number of emotion classes (report: 8).
        widths: Conv output channels (report: 32, 64).
        kernel_size: Conv kernel size, "same" padding (report: 3, padding 1).
        pool: Max-pool kernel = stride after each conv (report: 2).
        dropout: Dropout after each pool (report: 0.2; none between the linear layers).
        hidden: Hidden linear widths (report: 256, 128).
        pool_grid: ``[H, W]`` grid the last pool's output is adaptively max-pooled to
            (report: 9, 23 — the identity at its 39 × 94 input).
        stack_channels: Fold the input channels into the coefficient axis before the first conv,
            as the report concatenated MFCC, Δ and ΔΔ into one image (report: yes).

    Shapes:
        input ``(batch, in_channels, n_mfcc, frames)`` with (stacked) rows and frames
        ≥ ``pool ** len(widths)`` → logits ``(batch, num_classes)`` (the report's softmax is left
        to the loss).

    Raises:
        ValueError: bad settings (named ``model.<key>``); at forward time an input too small for the
            max-pools.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 8,
        widths: Sequence[int] = (32, 64),
        kernel_size: int = 3,
        pool: int = 2,
        dropout: float = 0.2,
        hidden: Sequence[int] = (256, 128),
        pool_grid: Sequence[int] = (9, 23),
        stack_channels: bool = True,
    ) -> None:
        super().__init__()
        widths = int_list(widths, "widths")
        hidden = int_list(hidden, "hidden")
        grid = int_list(pool_grid, "pool_grid", 2)
        positive_int(kernel_size, "kernel_size")
        positive_int(pool, "pool")
        dropout_prob(dropout, "dropout")
        self.stack_channels = bool(stack_channels)
        self.min_size = int(pool) ** len(widths)
        layers: list[nn.Module] = []
        c_in = 1 if self.stack_channels else in_channels
        for c_out in widths:
            layers += [
                nn.Conv2d(c_in, c_out, int(kernel_size), padding="same"),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(int(pool)),
                nn.Dropout(float(dropout)),
            ]
            c_in = c_out
        layers.insert(len(layers) - 1, nn.AdaptiveMaxPool2d(tuple(grid)))  # before the last dropout
        self.features = nn.Sequential(*layers)
        mlp: list[nn.Module] = []
        n_in = c_in * grid[0] * grid[1]
        for n_out in hidden:
            mlp += [nn.Linear(n_in, n_out), nn.ReLU(inplace=True)]
            n_in = n_out
        mlp.append(nn.Linear(n_in, num_classes))
        self.classifier = nn.Sequential(*mlp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_classes)`` from features ``(batch, in_channels, n_mfcc, frames)``."""
        if self.stack_channels:
            b, c, f, t = x.shape
            x = x.reshape(b, 1, c * f, t)
        h, w = x.shape[-2:]
        if h < self.min_size or w < self.min_size:
            raise ValueError(f"report 002 CNN needs (stacked) rows and frames ≥ {self.min_size} (its max-pools), got {h} × {w}")
        return self.classifier(self.features(x).flatten(1))


class _ResidualBlock(nn.Module):
    """``convs`` × (3×3 conv → BatchNorm, ReLU between) + shortcut → ReLU → 2×2 max-pool."""

    def __init__(self, c_in: int, c_out: int, convs: int, residual: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(convs):
            layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out)]
            if i < convs - 1:
                layers.append(nn.ReLU(inplace=True))
        self.body = nn.Sequential(*layers)
        self.shortcut: nn.Module | None = None
        if residual:
            self.shortcut = (
                nn.Identity()
                if c_in == c_out
                else nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
            )
        self.pool = nn.MaxPool2d(2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if self.shortcut is not None:
            y = y + self.shortcut(x)
        return self.pool(F.relu(y))


@register_model("residual_cnn", default_input_size=(128, 94), source="report 000 §3.3.1")
class ResidualCNN(nn.Module):
    """Residual CNN 64-128-256 with global average pooling and an FC-128 head (report 000 §3.3.1).

    Args:
        in_channels: Feature channels (1 for log-mel).
        num_classes: Number of emotion classes.
        widths: Output channels of the residual stages (report: 64, 128, 256).
        convs_per_block: 3×3 convolutions per residual block.
        residual: Add the (identity or 1×1-projection) shortcut (§5.2); ``False`` gives a plain CNN.
        fc_dim: Width of the hidden FC layer (report: 128).
        dropout: Dropout after the hidden FC layer (report: 0.3).

    Shapes:
        input ``(batch, in_channels, n_feats, frames)`` (any size ≥ 1 × 1) → logits
        ``(batch, num_classes)``.

    Raises:
        ValueError: empty or non-positive ``widths``, ``convs_per_block`` or ``fc_dim`` < 1, or
            ``dropout`` outside [0, 1).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 8,
        widths: Sequence[int] = (64, 128, 256),
        convs_per_block: int = 2,
        residual: bool = True,
        fc_dim: int = 128,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or min(widths) <= 0:
            raise ValueError(f"model.widths={widths} must be a non-empty list of positive channel counts")
        if convs_per_block < 1:
            raise ValueError(f"model.convs_per_block={convs_per_block} must be ≥ 1")
        if fc_dim < 1:
            raise ValueError(f"model.fc_dim={fc_dim} must be ≥ 1")
        dropout_prob(dropout)
        blocks, c_in = [], in_channels
        for c_out in widths:
            blocks.append(_ResidualBlock(c_in, c_out, int(convs_per_block), bool(residual)))
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(c_in, fc_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(fc_dim, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_classes)`` from features ``(batch, in_channels, n_feats, frames)``."""
        return self.head(self.features(x))
