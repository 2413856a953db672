"""Calibration maths of an evaluation: expected calibration error, reliability bins,
confidence summary and temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural
Networks")."""

from __future__ import annotations

from typing import Any

import numpy as np

# ------------------------------------------------------------------------------ eval report
#: Equal-width confidence bins of the expected calibration error (Guo et al. 2017, "On
#: Calibration of Modern Neural Networks", §2, who use 15).
ECE_BINS = 15


def expected_calibration_error(probs: Any, targets: Any, n_bins: int = ECE_BINS) -> float:
    """Top-label expected calibration error (torchmetrics ``MulticlassCalibrationError``, L1).

    ECE = Σ_b (|B_b| / n) · |accuracy(B_b) − mean confidence(B_b)| over ``n_bins`` equal-width
    bins of the max probability (Guo et al. 2017, eq. 3).

    Args:
        probs: Class probabilities ``(n, n_classes)`` (rows sum to 1).
        targets: True class indices ``(n,)``.
        n_bins: Number of confidence bins.

    Returns:
        ECE in [0, 1].
    """
    import torch
    from torchmetrics.functional.classification import multiclass_calibration_error

    probs = torch.as_tensor(probs, dtype=torch.float32)
    return float(multiclass_calibration_error(probs, torch.as_tensor(targets, dtype=torch.long),
                                              num_classes=probs.shape[1], n_bins=n_bins, norm="l1"))


def reliability_bins(probs: Any, targets: Any, n_bins: int = ECE_BINS) -> list[dict[str, float]]:
    """Per-bin mean confidence, accuracy and count of the top-label prediction.

    Bins are ``[i/n_bins, (i+1)/n_bins)`` (a confidence of exactly 1 falls in the last bin).

    Args:
        probs: Class probabilities ``(n, n_classes)``.
        targets: True class indices ``(n,)``.
        n_bins: Number of bins.

    Returns:
        ``n_bins`` dicts ``{"lower", "upper", "confidence", "accuracy", "count"}`` (confidence
        and accuracy are 0 for empty bins).
    """
    probs, targets = np.asarray(probs, dtype=np.float64), np.asarray(targets)
    conf, correct = probs.max(axis=1), probs.argmax(axis=1) == targets
    idx = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    out = []
    for b in range(n_bins):
        sel = idx == b
        n = int(sel.sum())
        out.append({"lower": b / n_bins, "upper": (b + 1) / n_bins, "count": n,
                    "confidence": float(conf[sel].mean()) if n else 0.0,
                    "accuracy": float(correct[sel].mean()) if n else 0.0})
    return out


def confidence_summary(probs: Any, targets: Any, n_bins: int = ECE_BINS) -> dict[str, Any]:
    """Mean max-probability of right and wrong predictions, and the ECE.

    Args:
        probs: Class probabilities ``(n, n_classes)``.
        targets: True class indices ``(n,)``.
        n_bins: ECE bins.

    Returns:
        ``{"mean_confidence_correct", "mean_confidence_wrong", "n_correct", "n_wrong", "ece",
        "ece_bins"}`` (a mean over no samples is ``None``).
    """
    p, t = np.asarray(probs, dtype=np.float64), np.asarray(targets)
    conf, correct = p.max(axis=1), p.argmax(axis=1) == t
    return {
        "mean_confidence_correct": float(conf[correct].mean()) if correct.any() else None,
        "mean_confidence_wrong": float(conf[~correct].mean()) if (~correct).any() else None,
        "n_correct": int(correct.sum()),
        "n_wrong": int((~correct).sum()),
        "ece": expected_calibration_error(p, t, n_bins),
        "ece_bins": n_bins,
    }


def fit_temperature(logits: Any, targets: Any, max_iter: int = 100) -> float:
    """Temperature scaling: the ``T > 0`` minimising the NLL of ``softmax(logits / T)``.

    Fitted with L-BFGS on ``log T`` (Guo et al. 2017, §4.2: fit on the validation set; the
    predicted class never changes, only the confidence).

    Args:
        logits: Validation logits ``(n, n_classes)``.
        targets: Validation class indices ``(n,)``.
        max_iter: L-BFGS iterations.

    Returns:
        The temperature ``T`` (> 1 softens over-confident predictions).

    Raises:
        ValueError: no samples or mismatched shapes.
    """
    import torch
    import torch.nn.functional as F

    # via numpy: logits collected under ``torch.inference_mode`` cannot enter autograd directly
    logits = torch.from_numpy(np.array(logits, dtype=np.float64))
    targets = torch.from_numpy(np.array(targets, dtype=np.int64))
    if logits.ndim != 2 or len(logits) == 0 or len(targets) != len(logits):
        raise ValueError(f"calibrate: validation logits {tuple(logits.shape)} / targets {tuple(targets.shape)} "
                         "are empty or do not match")
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


def nll(logits: Any, targets: Any, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood (nats) of ``softmax(logits / temperature)``."""
    import torch
    import torch.nn.functional as F

    return float(F.cross_entropy(torch.as_tensor(logits, dtype=torch.float64) / temperature,
                                 torch.as_tensor(targets, dtype=torch.long)))
