"""What a model predicts for clips it cannot be scored on (``data.unknown_labels=unscorable``).

A clip whose emotion is outside the model's label set (EmoDB's boredom for an ``ekman7`` model)
has no right answer among the model's classes, so it is not scored; with
``data.unknown_labels=unscorable`` the data module still decodes it, and this module counts the
classes the model gives it (boredom → neutral 60 %, sad 30 %, ...).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
import torch

from ser_lightning.data.manifest import Utterance


@torch.no_grad()
def predict_unscorable(model: torch.nn.Module, dm, clips: Sequence[Utterance], batch_size: int = 64) -> list[str | None]:
    """Predicted class name per clip (``None`` where the clip was not decoded).

    Args:
        model: A ``SERClassifier`` (waveforms ``(batch, time)`` → logits ``(batch, num_classes)``).
        dm: The set-up ``SERDataModule`` (its cache rows of dropped clips:
            ``unscorable_rows``, filled with ``data.unknown_labels=unscorable``).
        clips: The unscorable clips to predict.
        batch_size: Clips per forward pass.

    Returns:
        One class name (or ``None``) per clip, in order; all ``None`` unless
        ``data.unknown_labels=unscorable``.
    """
    rows = [dm.unscorable_rows.get(u.path) for u in clips]
    have = [i for i, r in enumerate(rows) if r is not None]
    out: list[str | None] = [None] * len(clips)
    if not have or dm.cache is None:
        return out
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    waves = dm.cache.waves
    for start in range(0, len(have), batch_size):
        idx = have[start:start + batch_size]
        block = torch.from_numpy(np.asarray(waves[[rows[i] for i in idx]], dtype=np.float32)).to(device)  # (batch, time)
        if getattr(dm, "row_norm_stats", None) is None:
            pred = model(block).argmax(dim=1).tolist()
        else:  # per-corpus statistics: each clip standardised with its corpus's (batch, 2)
            norm = torch.from_numpy(dm.row_norm_stats[[rows[i] for i in idx]]).to(device)
            pred = model(block, None, norm).argmax(dim=1).tolist()
        for i, p in zip(idx, pred):
            out[i] = model.class_names[p]
    model.train(was_training)
    return out


def prediction_counts(clips: Sequence[Utterance], predicted: Sequence[str | None]) -> dict[str, dict[str, int]]:
    """``{emotion: {predicted class: clips}}`` over the clips that were predicted."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for u, p in zip(clips, predicted):
        if p is not None:
            counts[u.emotion][p] += 1
    return {e: dict(sorted(c.items())) for e, c in sorted(counts.items())}
