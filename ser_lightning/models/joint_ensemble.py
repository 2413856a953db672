"""Report 000's networks (§3.3): residual CNN, attentive BiLSTM, Transformer and their learned ensemble.

Source: report 000 (Imran, "Speech Emotion Recognition Using Deep Learning Ensemble Architecture",
RAVDESS + TESS + CREMA-D, 7 classes, 128 log-mel bins × 94 frames at 16 kHz / 3 s), §3.3.1–3.3.4,
§5.2 (residual connections in the CNN blocks, attention in LSTM and Transformer, BatchNorm) and §7.1
(ablation: the ensemble with one member removed).

* ``residual_cnn`` (§3.3.1): three stages 64-128-256, each a residual block (two 3×3 conv →
  BatchNorm [→ ReLU] with an identity/1×1-projection shortcut, He et al. 2016) → ReLU → 2×2 max-pool,
  then global average pooling → FC 128 → ReLU → Dropout 0.3 → FC classes.
* ``attentive_bilstm`` (§3.3.2): each frame's ``C · n_feats`` values → 3-layer bidirectional LSTM
  → additive attention pooling over time → FC 128 → BatchNorm → ReLU → Dropout 0.3 → FC classes.
* ``cls_transformer`` (§3.3.3): each frame → Linear 256 → [CLS] token + sinusoidal positional
  encoding → 4 encoder layers × 8 heads → the CLS output → FC 128 → LayerNorm → GELU → Dropout 0.2
  → FC classes.
* ``joint_ensemble`` (§3.3.4): ``w_cnn · CNN + w_lstm · LSTM + w_tr · Transformer`` with
  ``w = softmax(learnable vector)``, all trained jointly (report's learned weights: 0.311 / 0.375 /
  0.314).

Interpretations:

* The report writes "Ensemble Output = w1·CNN + …" without saying whether member probabilities or
  logits are mixed. Default ``combine="probs"``: the output is the log of the mixture
  ``Σ_k w_k softmax(z_k)``, i.e. log-probabilities, which are valid logits (``softmax`` returns the
  mixture unchanged), so the usual cross-entropy-on-logits loss trains the ensemble by the mixture's
  negative log-likelihood ``−log Σ_k w_k p_k(y)``. ``combine="logits"`` returns ``Σ_k w_k z_k``
  instead. A one-member ensemble returns ``log_softmax`` of its member (``probs``) or the member's
  logits (``logits``).
* "BiLSTM(256, 3 layers)": ``hidden_size`` is per direction (PyTorch ``nn.LSTM``), default 256
  (output 512 per frame, 4.27 M parameters in all). The report's 1.2 M parameters fit 128 per
  direction (256 concatenated; 1.15 M in all): set ``hidden_size=128`` for that reading.
* The report's 1.0 M Transformer parameters are not reachable with 4 layers of width 256 (their
  attention projections alone are 1.05 M); the feed-forward width is not given: ``ff_dim=512``.
  Pre-norm layers (``norm_first``) with a final LayerNorm; the CLS token gets a position too.
* The CNN's "FC(128) → Dropout(0.3)" gets a ReLU in between (two stacked linear layers would
  collapse into one); two convs per residual block give ≈ 1.2 M parameters (report: 1.1 M).
* The BiLSTM's BatchNorm uses its running statistics for a training batch of one item (a plain
  ``BatchNorm1d`` raises there).

Parameter counts (1 input channel, 8 classes; independent of the input size): ``residual_cnn``
1,221,000 (report 1.1 M), ``attentive_bilstm`` 4,274,568 (report 1.2 M, see above),
``cls_transformer`` 2,176,392 (report 1.0 M), ``joint_ensemble`` 7,671,963 (report
3,313,689).

Input-size handling: the CNN works on any ``n_feats × frames`` (ceil-mode pooling, global pooling).
The sequence models read ``frames`` vectors of ``C · n_feats`` values: each channel's frequency axis is
adaptively average-pooled to ``n_feats`` bins (default 128, the report's mel count; the identity
when the frontend already gives 128), so other frontends (e.g. 64 mels) still run. The frontend
itself is configured by the ``features`` group (report: 16 kHz, 3 s, 128 log-mels, 94 frames).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ser_lightning.models.attention_fcn import AttentionPooling
from ser_lightning.models.registry import register_model
from ser_lightning.models.settings import dropout_prob, positive_int

COMBINE_MODES = ("probs", "logits")


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


MEMBERS: dict[str, type[nn.Module]] = {
    "cnn": ResidualCNN,
    "bilstm": AttentiveBiLSTM,
    "transformer": CLSTransformer,
}


@register_model("joint_ensemble", default_input_size=(128, 94), source="report 000 §3.3.4")
class JointEnsemble(nn.Module):
    """CNN + BiLSTM + Transformer with learned softmax-normalised weights (report 000 §3.3.4).

    The members (their default settings) and the weight vector train jointly under one loss on
    the ensemble output. Dropping members reproduces the report's ablation (§7.1), e.g.
    ``model.members=[cnn,bilstm]`` for "ensemble without Transformer".

    Args:
        in_channels: Feature channels ``C``.
        num_classes: Number of emotion classes.
        members: Member names, any non-empty subset of ``cnn``, ``bilstm``, ``transformer``.
        combine: ``probs`` (log of the weighted probability mixture) or ``logits`` (weighted sum of
            member logits); see the module docstring.
        n_feats: Mel bins the sequence members read per channel (report: 128).

    Shapes:
        input ``(batch, in_channels, n_feats, frames)`` → logits ``(batch, num_classes)``
        (log-probabilities with ``combine="probs"``).

    Raises:
        ValueError: empty, repeated or unknown member names (the message lists the choices), or an
            unknown ``combine``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 8,
        members: Sequence[str] = ("cnn", "bilstm", "transformer"),
        combine: str = "probs",
        n_feats: int = 128,
    ) -> None:
        super().__init__()
        if isinstance(members, str):
            raise ValueError(f"model.members={members!r} must be a list of names from {sorted(MEMBERS)}")
        members = [str(m) for m in members]
        unknown = [m for m in members if m not in MEMBERS]
        if unknown:
            raise ValueError(f"model.members={members}: unknown {unknown}; choose from {sorted(MEMBERS)}")
        if not members or len(set(members)) != len(members):
            raise ValueError(f"model.members={members} must be a non-empty list without repeats from {sorted(MEMBERS)}")
        if combine not in COMBINE_MODES:
            raise ValueError(f"model.combine={combine!r} is not one of {list(COMBINE_MODES)}")
        self.combine = combine
        self.members = nn.ModuleDict(
            {
                name: MEMBERS[name](in_channels=in_channels, num_classes=num_classes, **({} if name == "cnn" else {"n_feats": n_feats}))
                for name in members
            }
        )
        self.weight_logits = nn.Parameter(torch.zeros(len(members)))  # uniform weights at start

    def weights(self) -> torch.Tensor:
        """Current member weights ``softmax(weight_logits)`` ``(n_members,)``, summing to 1."""
        return torch.softmax(self.weight_logits, dim=0)

    def member_weights(self) -> dict[str, float]:
        """Current softmax weights by member name (report 000 §4.5: 0.311 / 0.375 / 0.314)."""
        return dict(zip(self.members.keys(), self.weights().detach().cpu().tolist()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_classes)`` from features ``(batch, in_channels, n_feats, frames)``."""
        logits = torch.stack([member(x) for member in self.members.values()])  # (members, batch, classes)
        if self.combine == "logits":
            return torch.einsum("m,mbc->bc", self.weights().to(logits.dtype), logits)
        # log Σ_k w_k softmax(z_k), computed stably in log space
        log_w = torch.log_softmax(self.weight_logits, dim=0).to(logits.dtype)
        return torch.logsumexp(log_w[:, None, None] + torch.log_softmax(logits, dim=-1), dim=0)
