"""Head parts shared by the encoder models: layer weighting, padding-aware pooling, MLP head.

* :class:`LayerWeightedSum` — a learned softmax-weighted sum of an encoder's hidden states, as in
  SUPERB (Yang et al., "SUPERB: Speech processing Universal PERformance Benchmark",
  Interspeech 2021, §3): intermediate layers of speech encoders carry more paralinguistic
  information than the last one.
* :class:`MeanStdPooling` — mean and standard deviation over a clip's valid frames ("statistics
  pooling", Snyder et al., "X-vectors", ICASSP 2018, §2.2).
* :class:`AttentiveStatsPooling` — attention-weighted mean and standard deviation (Okabe et al.,
  "Attentive Statistics Pooling for Deep Speaker Embedding", Interspeech 2018, §3.2).
* :class:`MLPHead` — dropout → linear → ReLU blocks → linear classifier.

Padding: every pooling takes the valid frame count of each clip and ignores the frames beyond
it, so a clip's pooled vector does not depend on how much padding its batch added.
"""

from __future__ import annotations

import torch
from torch import nn

POOLINGS = ("mean", "mean_std", "attentive")
_EPS = 1e-5


def _mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """Float mask ``(batch, frames, 1)``: 1 on valid frames (at least the first frame of each clip)."""
    lengths = lengths.clamp(min=1)
    return (torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]).unsqueeze(-1)


class LayerWeightedSum(nn.Module):
    """Softmax-weighted sum of hidden states (SUPERB, Yang et al. 2021 §3).

    Args:
        num_layers: Number of hidden states to combine.
        layer_norm: Layer-normalise each hidden state (without affine parameters) before the sum,
            which keeps layers of very different scale comparable.

    Shapes:
        ``hidden_states`` — a sequence of ``num_layers`` tensors ``(batch, frames, dim)`` or one
        tensor ``(batch, num_layers, frames, dim)`` → ``(batch, frames, dim)``.

    Raises:
        ValueError: ``num_layers < 1`` or a different number of hidden states at run time.
    """

    def __init__(self, num_layers: int, layer_norm: bool = False) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"LayerWeightedSum: num_layers={num_layers} must be at least 1")
        self.num_layers, self.layer_norm = num_layers, bool(layer_norm)
        self.logits = nn.Parameter(torch.zeros(num_layers))

    @property
    def weights(self) -> torch.Tensor:
        """The current layer weights ``(num_layers,)`` (they sum to 1)."""
        return self.logits.softmax(0)

    def forward(self, hidden_states) -> torch.Tensor:
        """Weighted sum ``(batch, frames, dim)``."""
        x = hidden_states if torch.is_tensor(hidden_states) else torch.stack(tuple(hidden_states), dim=1)
        if x.shape[1] != self.num_layers:
            raise ValueError(f"LayerWeightedSum: got {x.shape[1]} hidden states, built for {self.num_layers}")
        if self.layer_norm:
            x = nn.functional.layer_norm(x, x.shape[-1:])
        return torch.einsum("l,blfd->bfd", self.weights.to(x.dtype), x)


class MeanPooling(nn.Module):
    """Mean over valid frames: ``(batch, frames, dim)`` + lengths ``(batch,)`` → ``(batch, dim)``."""

    def output_dim(self, dim: int) -> int:
        """Width of the pooled output for frame features of width ``dim``."""
        return dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Pooled ``(batch, dim)`` from frames ``(batch, frames, dim)`` and valid lengths ``(batch,)``."""
        m = _mask(lengths, x.shape[1]).to(x.dtype)
        return (x * m).sum(1) / m.sum(1)


class MeanStdPooling(nn.Module):
    """Mean and standard deviation over valid frames (statistics pooling, Snyder et al. 2018 §2.2).

    Shapes:
        ``(batch, frames, dim)`` + lengths ``(batch,)`` → ``(batch, 2 * dim)`` (mean, then std).
    """

    def output_dim(self, dim: int) -> int:
        """Width of the pooled output for frame features of width ``dim`` (mean and std)."""
        return 2 * dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Pooled ``(batch, 2 * dim)`` from frames ``(batch, frames, dim)`` and valid lengths ``(batch,)``."""
        m = _mask(lengths, x.shape[1]).to(x.dtype)
        n = m.sum(1)
        mean = (x * m).sum(1) / n
        var = (((x - mean[:, None]) * m) ** 2).sum(1) / n
        return torch.cat([mean, (var + _EPS).sqrt()], dim=-1)


class AttentiveStatsPooling(nn.Module):
    """Attentive statistics pooling (Okabe et al., Interspeech 2018, §3.2, Eq. 5–8).

    Frame scores ``e_t = vᵀ tanh(W h_t + b) + k`` are softmax-normalised over the valid frames
    only; the output is the attention-weighted mean and standard deviation.

    Args:
        dim: Width of the frame features.
        attention_dim: Width of the attention's hidden layer.

    Shapes:
        ``(batch, frames, dim)`` + lengths ``(batch,)`` → ``(batch, 2 * dim)``.
    """

    def __init__(self, dim: int, attention_dim: int = 128) -> None:
        super().__init__()
        self.attention = nn.Sequential(nn.Linear(dim, attention_dim), nn.Tanh(), nn.Linear(attention_dim, 1))

    def output_dim(self, dim: int) -> int:
        """Width of the pooled output for frame features of width ``dim`` (mean and std)."""
        return 2 * dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Pooled ``(batch, 2 * dim)`` from frames ``(batch, frames, dim)`` and valid lengths ``(batch,)``."""
        m = _mask(lengths, x.shape[1])
        scores = self.attention(x).masked_fill(~m, float("-inf"))  # (batch, frames, 1)
        alpha = scores.softmax(dim=1)
        mean = (alpha * x).sum(1)
        var = (alpha * (x - mean[:, None]) ** 2).sum(1)
        return torch.cat([mean, (var + _EPS).sqrt()], dim=-1)


class LayerWeightedSumOrLast(nn.Module):
    """:class:`~ser_lightning.models.encoders.heads.LayerWeightedSum`, or the last hidden state.

    Args:
        num_layers: Hidden states the encoder returns.
        enabled: Learn the weighted sum (only when ``num_layers > 1``).
        layer_norm: Layer-normalise each hidden state first (weighted sum only).

    Shapes:
        hidden states (sequence of ``(batch, frames, dim)`` or ``(batch, layers, frames, dim)``) →
        ``(batch, frames, dim)``.
    """

    def __init__(self, num_layers: int, enabled: bool = True, layer_norm: bool = False) -> None:
        super().__init__()
        self.sum = LayerWeightedSum(num_layers, layer_norm) if enabled and num_layers > 1 else None

    def forward(self, hidden_states) -> torch.Tensor:
        """Frames ``(batch, frames, dim)``: the weighted sum of the hidden states, or the last one."""
        if self.sum is not None:
            return self.sum(hidden_states)
        return hidden_states[:, -1] if torch.is_tensor(hidden_states) else hidden_states[-1]


def build_pooling(pooling: str, dim: int, attention_dim: int = 128) -> nn.Module:
    """A pooling module by name (``mean``, ``mean_std``, ``attentive``).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if pooling == "mean":
        return MeanPooling()
    if pooling == "mean_std":
        return MeanStdPooling()
    if pooling == "attentive":
        return AttentiveStatsPooling(dim, attention_dim)
    raise ValueError(f"model.pooling={pooling!r} is not one of {POOLINGS}")


class MLPHead(nn.Module):
    """Classifier on pooled vectors: ``num_hidden`` × (dropout → linear → ReLU), dropout → linear.

    Args:
        in_dim: Width of the pooled vector.
        num_classes: Number of output classes.
        hidden_dim: Width of the hidden layers.
        num_hidden: Number of hidden layers (0: a linear classifier).
        dropout: Dropout before every linear layer.

    Shapes:
        ``(batch, in_dim)`` → logits ``(batch, num_classes)``.

    Raises:
        ValueError: non-positive widths, a negative ``num_hidden`` or a dropout outside ``[0, 1)``.
    """

    def __init__(self, in_dim: int, num_classes: int, hidden_dim: int = 256, num_hidden: int = 1,
                 dropout: float = 0.2) -> None:
        super().__init__()
        if in_dim < 1 or num_classes < 1 or (num_hidden and hidden_dim < 1) or num_hidden < 0:
            raise ValueError(f"MLPHead: bad sizes in_dim={in_dim}, num_classes={num_classes}, "
                             f"hidden_dim={hidden_dim}, num_hidden={num_hidden}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MLPHead: dropout={dropout} must lie in [0, 1)")
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(num_hidden):
            layers += [nn.Dropout(dropout), nn.Linear(width, hidden_dim), nn.ReLU()]
            width = hidden_dim
        layers += [nn.Dropout(dropout), nn.Linear(width, num_classes)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_classes)`` from pooled features ``(batch, in_dim)``."""
        return self.net(x)
