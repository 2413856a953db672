"""Report 003's homebrew CNN (Berhoff & Lu, "Efficient Speech Emotion Classification Using
Transfer Learning", §3.3): four conv blocks (conv → ReLU → BatchNorm, Kaiming init) with
8-16-32-64 channels, adaptive average pooling and one linear layer."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ser_lightning.models.registry import register_model


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
