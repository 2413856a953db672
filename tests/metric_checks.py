"""Checks of a run's ``metrics.json`` against the split it evaluated, shared by the smoke tests.

A ``debug=fast`` run (Lightning's ``fast_dev_run``) tests one batch: the first ``batch_size`` clips
of the test split, in ``split.csv`` order (the test loader does not shuffle). The confusion matrix,
per-class recall, UA, WA and macro-F1 are recomputed here from those clips' labels and the
confusion matrix, with torchmetrics' macro rule: a class that is neither present nor predicted
(``tp + fp + fn == 0``) is left out of the average.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

#: RAVDESS emotion codes 01–08 in order (the file-name convention, RAVDESS README).
RAVDESS8 = ["neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise"]
#: The other label sets' classes in order (ser_lightning/data/labels.py module docstring).
LABEL_SETS = {
    "ravdess8": RAVDESS8,
    "ekman7": ["neutral", "happy", "sad", "angry", "fear", "disgust", "surprise"],
    "core6": ["neutral", "happy", "sad", "angry", "fear", "disgust"],
    "quad4": ["angry", "happy", "neutral", "sad"],
}


def split_rows(run: Path) -> list[dict[str, str]]:
    """The rows of ``run/split.csv``."""
    with open(run / "split.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def assert_test_metrics_match_split(metrics: dict, rows: list[dict[str, str]], labels: list[str],
                                    first: int | None = None) -> None:
    """``metrics`` (one test run) agrees with the test clips it evaluated and with its own counts.

    Args:
        metrics: The run's ``metrics.json``.
        rows: The run's ``split.csv`` rows.
        labels: The expected classes, in order.
        first: Only the first ``first`` test clips were evaluated (``fast_dev_run``: the batch size).
    """
    test = [r for r in rows if r["split"] == "test"]
    evaluated = test[:first] if first is not None else test
    assert metrics["split"] == "test" and metrics["labels"] == labels
    assert metrics["n"] == len(evaluated) > 0
    cm = np.asarray(metrics["confusion_matrix"], dtype=np.int64)
    assert cm.shape == (len(labels), len(labels)) and (cm >= 0).all()
    support = cm.sum(axis=1)  # rows are the true classes
    assert support.tolist() == [sum(r["label"] == c for r in evaluated) for c in labels]
    tp, predicted = np.diag(cm), cm.sum(axis=0)
    recall = np.divide(tp, support, out=np.zeros(len(labels)), where=support > 0)
    assert list(metrics["per_class_recall"]) == labels
    assert [metrics["per_class_recall"][c] for c in labels] == pytest.approx(recall.tolist(), abs=1e-6)
    counted = (support + predicted) > 0  # tp + fp + fn > 0
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros(len(labels)), where=counted)
    assert metrics["ua"] == pytest.approx(recall[counted].mean(), abs=1e-6)
    assert metrics["wa"] == pytest.approx(tp.sum() / len(evaluated), abs=1e-6)
    assert metrics["macro_f1"] == pytest.approx(f1[counted].mean(), abs=1e-6)
    assert np.isfinite(metrics["loss"]) and metrics["loss"] > 0
