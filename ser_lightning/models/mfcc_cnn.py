"""Report 002's CNN on MFCC + Δ + ΔΔ (MAIS 202 "Preliminary Results", §3 "Machine learning model"):
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
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ser_lightning.models.registry import register_model
from ser_lightning.models.settings import dropout_prob, int_list, positive_int


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
