"""Report 001's from-scratch networks (§4.3–4.5): a 3-layer CNN block, two CNN blocks in
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


@register_model("cnn_transformer", default_input_size=(128, 94), min_input_size=(32, 32), source="report 001 §4.5")
class CNNTransformer(nn.Module):
    """Report 001 §4.5: two CNN blocks and a Transformer encoder in parallel; the encoder's
    time-averaged output and both flattened CNN outputs are concatenated (128 + 512 + 512 = 1152
    at the report's input) → linear classifier.

    Transformer branch (report §4.5.1, after Vaswani et al.): the input's channel axis is folded
    into the feature axis (``(batch, C·n_feats, frames)``; the report squeezes its single
    channel), the feature axis is adaptively average-pooled to ``d_model`` bins (identity when
    ``C·n_feats == d_model``, as in the report: 128 MFCCs) and each frame is a token: 4 post-norm
    encoder layers, 4 heads, feed-forward 512 with ReLU, dropout 0.4, no positional encoding (as in
    the report's ``keras_nlp.layers.TransformerEncoder`` stack), then the mean over time.

    Interpretation: the report transposes its input to ``(time, batch, freq)`` before the
    batch-first ``keras_nlp`` encoder, which makes Keras attend across the *batch* at each frame;
    its text says attention is meant over time steps, which is what this does (batch-first,
    tokens = frames). The parameter count is the same either way.

    848,199 parameters (+448 BN running stats) at 1 × 128 × 94 and 7 classes; the report has
    848,359 trainable / 848,967 total; ``batchnorm="time"`` matches it exactly.

    Args:
        in_channels: Feature channels (report: 1).
        num_classes: Number of emotion classes (report: 7).
        widths, pools, kernel_size, dropout, pool_grid, batchnorm, frames: per CNN block, see
            :class:`CNNBlock`.
        d_model: Transformer width = feature bins per token (report: 128).
        num_layers: Stacked encoder layers (report: 4).
        nhead: Attention heads (report: 4); must divide ``d_model``.
        dim_feedforward: Feed-forward width (report: 512).
        transformer_dropout: Dropout inside the encoder layers (report: 0.4).

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
        d_model: int = 128,
        num_layers: int = 4,
        nhead: int = 4,
        dim_feedforward: int = 512,
        transformer_dropout: float = 0.4,
    ) -> None:
        super().__init__()
        for key, value in (("d_model", d_model), ("num_layers", num_layers), ("nhead", nhead), ("dim_feedforward", dim_feedforward)):
            positive_int(value, key)
        if d_model % nhead:
            raise ValueError(f"model.d_model={d_model} must be divisible by model.nhead={nhead}")
        transformer_dropout = dropout_prob(transformer_dropout, "transformer_dropout")
        args = (in_channels, widths, pools, kernel_size, dropout, pool_grid, batchnorm, frames)
        self.blocks = nn.ModuleList([CNNBlock(*args), CNNBlock(*args)])
        self.d_model = int(d_model)
        layer = nn.TransformerEncoderLayer(
            d_model=self.d_model,
            nhead=int(nhead),
            dim_feedforward=int(dim_feedforward),
            dropout=transformer_dropout,
            activation="relu",
            batch_first=True,
            norm_first=False,
        )
        self.transformer = nn.TransformerEncoder(layer, num_layers=int(num_layers), enable_nested_tensor=False)
        self.classifier = nn.Linear(self.d_model + 2 * self.blocks[0].out_features, num_classes)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Transformer input ``(batch, frames, d_model)`` from ``(batch, C, n_feats, frames)``."""
        b, c, f, t = x.shape
        seq = x.reshape(b, c * f, t).transpose(1, 2)  # (batch, frames, C·n_feats)
        if c * f != self.d_model:
            seq = F.adaptive_avg_pool1d(seq, self.d_model)
        return seq

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_classes)`` from features ``(batch, in_channels, n_feats, frames)``."""
        attended = self.transformer(self.tokens(x)).mean(dim=1)
        return self.classifier(torch.cat([attended, *(b(x) for b in self.blocks)], dim=1))
