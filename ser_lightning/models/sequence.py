"""Networks that read a spectrogram as a sequence of frames: the sequence family (``model=attentive_bilstm``,
``cls_transformer``, ``cnn_transformer``).

* ``attentive_bilstm``, ``cls_transformer``: report 000's sequence members (§3.3.2–3.3.3), also trained on their
  own; the report and its reading are in :mod:`ser_lightning.models.ensembles`.
* ``cnn_transformer``: report 001 §4.5, two CNN blocks (:class:`~ser_lightning.models.cnn.CNNBlock`) and a
  Transformer encoder in parallel; the report's Keras summaries and their reading are in
  :mod:`ser_lightning.models.cnn`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ser_lightning.models.attention_fcn import AttentionPooling
from ser_lightning.models.cnn import CNNBlock
from ser_lightning.models.registry import register_model
from ser_lightning.models.settings import dropout_prob, positive_int


def _frame_sequence(x: torch.Tensor, n_feats: int) -> torch.Tensor:
    """Frame vectors ``(batch, frames, C · n_feats)`` from features ``(batch, C, F, frames)``.

    The frequency axis of each channel is adaptively average-pooled to ``n_feats`` bins (the
    identity when ``F == n_feats``); channels are stacked per frame.
    """
    b, c, f, t = x.shape
    if f != n_feats:
        x = F.adaptive_avg_pool2d(x, (n_feats, t))
    return x.permute(0, 3, 1, 2).reshape(b, t, c * n_feats)


class _BatchNorm1dAnyBatch(nn.BatchNorm1d):
    """``BatchNorm1d`` that normalises a one-item training batch with its running statistics."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


@register_model("attentive_bilstm", default_input_size=(128, 94), source="report 000 §3.3.2")
class AttentiveBiLSTM(nn.Module):
    """3-layer bidirectional LSTM with attention pooling over time (report 000 §3.3.2).

    Args:
        in_channels: Feature channels ``C``.
        num_classes: Number of emotion classes.
        n_feats: Mel bins per channel fed to the LSTM (input size ``C · n_feats``; report: 128).
        hidden_size: LSTM hidden size per direction.
        num_layers: Stacked LSTM layers (report: 3).
        lstm_dropout: Dropout between LSTM layers (report: not given).
        attention_dim: Size of the attention's tanh layer; ``None``: ``2 · hidden_size``.
        fc_dim: Width of the hidden FC layer (report: 128).
        dropout: Dropout after the hidden FC layer (report: 0.3).

    Shapes:
        input ``(batch, in_channels, n_feats, frames)`` → logits ``(batch, num_classes)``;
        :meth:`forward_with_attention` also returns the weights ``(batch, frames)``.

    Raises:
        ValueError: non-positive sizes or dropouts outside [0, 1).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 8,
        n_feats: int = 128,
        hidden_size: int = 256,
        num_layers: int = 3,
        lstm_dropout: float = 0.0,
        attention_dim: int | None = None,
        fc_dim: int = 128,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        for key, value in (("n_feats", n_feats), ("hidden_size", hidden_size), ("num_layers", num_layers), ("fc_dim", fc_dim)):
            positive_int(value, key)
        dropout_prob(dropout)
        dropout_prob(lstm_dropout, "lstm_dropout")
        self.n_feats = int(n_feats)
        self.lstm = nn.LSTM(
            in_channels * self.n_feats,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=lstm_dropout if num_layers > 1 else 0.0,
        )
        self.attention = AttentionPooling(2 * hidden_size, attention_dim, attention_lambda=1.0)
        self.head = nn.Sequential(
            nn.Linear(2 * hidden_size, fc_dim),
            _BatchNorm1dAnyBatch(fc_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(fc_dim, num_classes),
        )

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(batch, num_classes)`` and attention weights ``(batch, frames)``."""
        states, _ = self.lstm(_frame_sequence(x, self.n_feats))  # (batch, frames, 2·hidden)
        pooled, alpha = self.attention(states)
        return self.head(pooled), alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_classes)`` from features ``(batch, in_channels, n_feats, frames)``."""
        return self.forward_with_attention(x)[0]


def sinusoidal_positions(length: int, dim: int, device=None, dtype=None) -> torch.Tensor:
    """Sinusoidal positional encoding ``(length, dim)`` of Vaswani et al. (2017)."""
    pos = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return pe.to(dtype) if dtype is not None else pe


@register_model("cls_transformer", default_input_size=(128, 94), source="report 000 §3.3.3")
class CLSTransformer(nn.Module):
    """Transformer encoder over frames with a CLS token (report 000 §3.3.3).

    Args:
        in_channels: Feature channels ``C``.
        num_classes: Number of emotion classes.
        n_feats: Mel bins per channel fed to the projection (input size ``C · n_feats``; report: 128).
        d_model: Projection / model width (report: 256).
        num_layers: Encoder layers (report: 4).
        num_heads: Attention heads (report: 8).
        ff_dim: Feed-forward width (report: not given).
        encoder_dropout: Dropout inside the encoder layers.
        norm_first: Pre-norm encoder layers (plus a final LayerNorm) instead of post-norm.
        fc_dim: Width of the hidden FC layer (report: 128).
        dropout: Dropout after the hidden FC layer (report: 0.2).

    Shapes:
        input ``(batch, in_channels, n_feats, frames)`` → logits ``(batch, num_classes)``.

    Raises:
        ValueError: ``d_model`` not divisible by ``num_heads``, non-positive sizes or dropouts
            outside [0, 1).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 8,
        n_feats: int = 128,
        d_model: int = 256,
        num_layers: int = 4,
        num_heads: int = 8,
        ff_dim: int = 512,
        encoder_dropout: float = 0.1,
        norm_first: bool = True,
        fc_dim: int = 128,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        for key, value in (
            ("n_feats", n_feats), ("d_model", d_model), ("num_layers", num_layers),
            ("num_heads", num_heads), ("ff_dim", ff_dim), ("fc_dim", fc_dim),
        ):
            positive_int(value, key)
        if d_model % num_heads:
            raise ValueError(f"model.d_model={d_model} must be divisible by model.num_heads={num_heads}")
        if d_model % 2:
            raise ValueError(f"model.d_model={d_model} must be even (sinusoidal positional encoding)")
        dropout_prob(dropout)
        dropout_prob(encoder_dropout, "encoder_dropout")
        self.n_feats = int(n_feats)
        self.proj = nn.Linear(in_channels * self.n_feats, d_model)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))
        nn.init.normal_(self.cls_token, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, num_heads, dim_feedforward=ff_dim, dropout=encoder_dropout,
            batch_first=True, norm_first=bool(norm_first),
        )
        self.encoder = nn.TransformerEncoder(
            layer, num_layers, norm=nn.LayerNorm(d_model) if norm_first else None, enable_nested_tensor=False
        )
        self.head = nn.Sequential(
            nn.Linear(d_model, fc_dim),
            nn.LayerNorm(fc_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(fc_dim, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_classes)`` from features ``(batch, in_channels, n_feats, frames)``."""
        tokens = self.proj(_frame_sequence(x, self.n_feats))  # (batch, frames, d_model)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        tokens = tokens + sinusoidal_positions(tokens.shape[1], tokens.shape[2], tokens.device, tokens.dtype)
        return self.head(self.encoder(tokens)[:, 0])


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
