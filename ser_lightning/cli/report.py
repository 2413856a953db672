"""Files a train or eval run leaves behind: ``metrics.json`` and the confusion-matrix PNG."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def collect_metrics(logged: dict[str, Any], results: dict[str, Any], split: str) -> dict[str, Any]:
    """Merge ``trainer.test`` output and the module's test results into one record.

    Args:
        logged: One dict returned by ``trainer.test`` (keys ``test/ua``, ``test/wa``, ...).
        results: ``SERClassifier.test_results`` (per-class recall, confusion matrix, labels).
        split: Split that was evaluated.

    Returns:
        ``{"split", "ua", "wa", "macro_f1", "loss", "per_class_recall", "confusion_matrix", "labels", "n"}``.
    """
    cm = results["confusion_matrix"]
    return {
        "split": split,
        "ua": float(logged["test/ua"]),
        "wa": float(logged["test/wa"]),
        "macro_f1": float(logged["test/f1"]),
        "loss": float(logged["test/loss"]),
        "n": int(np.asarray(cm).sum()),
        "per_class_recall": results["per_class_recall"],
        "confusion_matrix": cm,
        "labels": results["labels"],
    }


def plot_confusion(cm: Sequence[Sequence[int]], labels: Sequence[str], path: str | Path, title: str = "") -> None:
    """Save a row-normalised confusion matrix (counts annotated) as PNG.

    Args:
        cm: Counts ``(n_classes, n_classes)``, rows = true class, columns = predicted class.
        labels: Class names.
        path: Output PNG path.
        title: Figure title.
    """
    cm = np.asarray(cm, dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * n, 0.8 + 0.7 * n))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="recall")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_metrics(metrics: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``metrics.json`` and ``confusion_matrix.png`` into ``out_dir``.

    Returns:
        Path of ``metrics.json``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2))
    plot_confusion(metrics["confusion_matrix"], metrics["labels"], out_dir / "confusion_matrix.png",
                   title=f"{metrics['split']}: UA {metrics['ua']:.3f}  WA {metrics['wa']:.3f}")
    return path
