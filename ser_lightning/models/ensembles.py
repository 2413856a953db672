"""Ensembles trained as one network (``model=joint_ensemble``): report 000's learned ensemble of its residual CNN,
attentive BiLSTM and Transformer (§3.3); the members live in :mod:`ser_lightning.models.cnn` (``residual_cnn``) and
:mod:`ser_lightning.models.sequence` (``attentive_bilstm``, ``cls_transformer``). (An ensemble of trained checkpoints,
``eval.py model=ensemble``, is :mod:`ser_lightning.inference.ensemble`.)

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

from collections.abc import Sequence

import torch
from torch import nn

from ser_lightning.models.cnn import ResidualCNN
from ser_lightning.models.registry import register_model
from ser_lightning.models.sequence import AttentiveBiLSTM, CLSTransformer

COMBINE_MODES = ("probs", "logits")


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
