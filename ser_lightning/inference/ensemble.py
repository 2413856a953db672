"""Ensembles of trained checkpoints (``model=ensemble``), evaluated with ``eval.py`` like any model.

Each member is a full ``SERClassifier`` (its own frontend + network), so members may use
different features. Combination: mean of member probabilities, or a weighted mean whose
softmax-normalised weights are fitted on the validation split by minimising the negative
log-likelihood (the late-fusion counterpart of report 000's learned ensemble weights).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ser_lightning.models.registry import register_model

COMBINE_MODES = ("mean", "learned")


@register_model("ensemble", input_kind="waveform", source="late fusion of trained checkpoints")
class CheckpointEnsemble(nn.Module):
    """Frozen member checkpoints combined in probability space.

    Args:
        in_channels: Unused (the ensemble reads waveforms).
        num_classes: Must equal every member's class count.
        members: Checkpoint paths of trained ``SERClassifier`` models with identical class names.
        combine: ``mean`` or ``learned`` (weights fitted with :meth:`fit_weights`).
        weights: Optional fixed member weights (normalised to sum 1), e.g. from an earlier fit.

    Shapes:
        waveform ``(batch, time)`` → log of the combined probabilities ``(batch, num_classes)``
        (valid logits: softmax gives the combined probabilities back).

    Raises:
        ValueError: no members, unknown ``combine``, members with different class names, or a
            class count that differs from ``num_classes``.
        FileNotFoundError: a member checkpoint is missing.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 8,
        members: Sequence[str] = (),
        combine: str = "mean",
        weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        from pathlib import Path

        from ser_lightning.inference.checkpoint import load_classifier

        if not members:
            raise ValueError("model.members is empty: list the member checkpoint paths")
        if combine not in COMBINE_MODES:
            raise ValueError(f"model.combine={combine!r} is not one of {list(COMBINE_MODES)}")
        loaded = []
        for path in members:
            if not Path(path).is_file():
                raise FileNotFoundError(f"model.members: no checkpoint at {path}")
            loaded.append(load_classifier(path, map_location="cpu"))
        names = loaded[0].class_names
        for path, m in zip(members, loaded):
            if m.class_names != names:
                raise ValueError(f"model.members: {path} has classes {m.class_names}, the first member has {names}")
        if len(names) != num_classes:
            raise ValueError(f"model.members have {len(names)} classes, the data has {num_classes}")
        self.class_names = list(names)
        self.members = nn.ModuleList(loaded)
        for p in self.members.parameters():
            p.requires_grad = False
        init = torch.zeros(len(loaded)) if weights is None else torch.log(torch.tensor(list(weights), dtype=torch.float32))
        self.weight_logits = nn.Parameter(init, requires_grad=False)
        self.combine = combine
        self.train(False)

    def train(self, mode: bool = True) -> CheckpointEnsemble:
        """Members always stay in eval mode (frozen BatchNorm statistics, no dropout)."""
        super().train(mode)
        self.members.eval()
        return self

    def member_weights(self) -> list[float]:
        """Current softmax-normalised member weights."""
        return torch.softmax(self.weight_logits.detach(), 0).tolist()

    @torch.no_grad()
    def member_probs(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Member probabilities ``(members, batch, num_classes)`` for waveforms ``(batch, time)``.

        ``lengths`` ``(batch,)``: valid samples per clip of a whole-clip batch (``data.clip_length=whole``),
        passed on to members that read whole clips (the encoder models)."""
        return torch.stack([torch.softmax(m(wave, lengths).float(), dim=-1) for m in self.members])

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Log of the weighted mean of member probabilities ``(batch, num_classes)`` (``lengths``: see
        :meth:`member_probs`)."""
        probs = self.member_probs(wave, lengths)
        w = torch.softmax(self.weight_logits, 0).to(probs)
        return torch.log(torch.einsum("m,mbc->bc", w, probs).clamp_min(1e-12))

    def fit_weights(self, probs: torch.Tensor, target: torch.Tensor, steps: int = 300, lr: float = 0.05) -> list[float]:
        """Fit the member weights on held-out predictions by minimising the NLL.

        Args:
            probs: Member probabilities ``(members, n, num_classes)`` on the validation split.
            target: Class indices ``(n,)``.
            steps: Adam steps.
            lr: Adam learning rate.

        Returns:
            The fitted softmax weights.
        """
        logits = torch.zeros(probs.shape[0], requires_grad=True)
        opt = torch.optim.Adam([logits], lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            mix = torch.einsum("m,mbc->bc", torch.softmax(logits, 0), probs)
            loss = torch.nn.functional.nll_loss(torch.log(mix.clamp_min(1e-12)), target)
            loss.backward()
            opt.step()
        self.weight_logits.data.copy_(logits.detach())
        return self.member_weights()
