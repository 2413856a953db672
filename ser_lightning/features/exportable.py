"""Export-friendly equivalents of frontend operations that ONNX cannot express as written.

Used only when exporting (:func:`ser_lightning.inference.export.make_exportable` swaps them in on a
copy of the model); training and evaluation keep torchaudio's modules. The export's parity check
(:func:`ser_lightning.cli.export.export`) proves each copy computes the same probabilities.

torchaudio's STFT / mel filterbank / dB conversion / DCT export to ONNX as they are (ONNX ``STFT``,
opset ≥ 17), so no hand-written DFT is needed. What does not export is
:func:`torchaudio.functional.compute_deltas` (MFCC Δ/ΔΔ): it runs a grouped ``conv1d`` whose
group count is ``batch × n_mfcc``, a dynamic value, while ONNX ``Conv`` needs a constant
``group``. :class:`ExportableDeltas` computes the same regression with slices.
"""

from __future__ import annotations

import torch
from torch import nn


class ExportableDeltas(nn.Module):
    """Delta coefficients as in :class:`torchaudio.transforms.ComputeDeltas`, without a grouped conv.

    ``d_t = Σ_{k=1..n} k · (c_{t+k} − c_{t−k}) / (2 Σ_{k=1..n} k²)`` with ``n = (win_length − 1) // 2``,
    the ends padded by ``mode`` (``replicate`` by default) — the regression formula torchaudio
    implements (its kernel ``[-n, …, n]`` over the padded frames), evaluated with slices.

    Args:
        win_length: Regression window in frames (odd, ≥ 3).
        mode: Padding mode of :func:`torch.nn.functional.pad` at both ends of the time axis.

    Shapes:
        ``(..., n_coeffs, frames)`` → same shape.

    Raises:
        ValueError: ``win_length < 3``.
    """

    def __init__(self, win_length: int = 5, mode: str = "replicate") -> None:
        super().__init__()
        if win_length < 3:
            raise ValueError(f"win_length={win_length} must be at least 3 frames")
        self.n = (win_length - 1) // 2
        self.mode = mode
        self.denom = self.n * (self.n + 1) * (2 * self.n + 1) / 3

    @classmethod
    def from_torchaudio(cls, module: nn.Module) -> ExportableDeltas:
        """The equivalent of a :class:`torchaudio.transforms.ComputeDeltas` instance."""
        return cls(int(module.win_length), str(module.mode))

    def forward(self, specgram: torch.Tensor) -> torch.Tensor:
        """Deltas along the last (time) axis; see the class docstring."""
        shape = specgram.shape
        x = specgram.reshape(1, -1, shape[-1])  # pad needs (batch, channels, time) for replicate
        frames = shape[-1]
        n = self.n
        x = nn.functional.pad(x, (n, n), mode=self.mode)
        out = torch.zeros_like(x[..., n : n + frames])
        for k in range(1, n + 1):
            out = out + k * (x[..., n + k : n + k + frames] - x[..., n - k : n - k + frames])
        return (out / self.denom).reshape(shape)
