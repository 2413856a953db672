"""Scores of one set of predictions seen several ways: the full output, the output restricted to a
class subset, each plain or adapted (:mod:`ser_lightning.inference.adaptation`).

``eval.py`` and ``cross_corpus.py`` report every *view* as one named row:

* ``output``: ``full`` — the arg-max over all the model's classes (a class the data lacks still
  takes predictions, which count as errors), scored over the classes the data has
  (:func:`scorable_scores`); ``restricted`` — the probabilities of a class subset (the classes
  present in the evaluated data, EmoBox's cross-corpus protocol, or ``labels=[...]``) renormalised
  and the arg-max re-taken over them only.
* ``adaptation``: ``plain``, or a transductive adaptation (feature statistics of the scored set or
  of each speaker, EM class-prior correction, both), named as in
  :mod:`ser_lightning.inference.adaptation`; ``transductive`` is true for all but ``plain``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ser_lightning.inference.adaptation import (
    PLAIN,
    PRIOR_EM,
    em_prior_correction,
    restrict_probabilities,
)


def scorable_scores(cm: Sequence[Sequence[int]] | np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """UA, WA and macro-F1 over the classes with clips (support > 0) in a confusion matrix.

    Args:
        cm: ``(num_classes, num_classes)`` counts, rows = true class, columns = prediction.
        labels: Class names in index order.

    Returns:
        ``{"n", "ua", "wa", "macro_f1", "scorable_classes"}``; scores ``None`` when ``n`` is 0.
        Predictions of a class the target lacks still count as errors (they lower WA and the
        recall of the true class); F1 of a scorable class uses all its predictions.
    """
    cm = np.asarray(cm, dtype=np.float64)
    support = cm.sum(axis=1)
    n = int(support.sum())
    scorable = np.flatnonzero(support > 0)
    if n == 0:
        return {"n": 0, "ua": None, "wa": None, "macro_f1": None, "scorable_classes": []}
    tp = np.diag(cm)
    recall = tp[scorable] / support[scorable]
    predicted = cm.sum(axis=0)[scorable]
    precision = np.divide(tp[scorable], predicted, out=np.zeros_like(recall), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(recall), where=(precision + recall) > 0)
    return {"n": n, "ua": float(recall.mean()), "wa": float(tp.sum() / n), "macro_f1": float(f1.mean()),
            "scorable_classes": [labels[i] for i in scorable]}


def confusion(targets: np.ndarray, predictions: np.ndarray, k: int) -> np.ndarray:
    """``(k, k)`` int64 counts, rows = true class, columns = prediction."""
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (np.asarray(targets, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1)
    return cm


def present_classes(targets: np.ndarray, num_classes: int) -> list[int]:
    """The class indices with at least one clip among ``targets``."""
    return sorted(set(np.asarray(targets, dtype=np.int64).tolist()) & set(range(num_classes)))


def output_views(probs: Mapping[str, np.ndarray], targets: np.ndarray, labels: Sequence[str],
                 keep: Sequence[int] | None, restricted_name: str, *, prior: str = "none",
                 train_prior: np.ndarray | None = None, min_clips: int = 2) -> list[dict[str, Any]]:
    """One scored row per (adaptation, output kind, prior correction).

    Args:
        probs: Adaptation name (:data:`~ser_lightning.inference.adaptation.PLAIN` first, then e.g.
            :data:`~ser_lightning.inference.adaptation.ADAPT_SET`) → class probabilities ``(n, n_classes)``
            of the same clips.
        targets: True class index of each clip ``(n,)`` (the model's classes).
        labels: The model's class names.
        keep: Class indices of the restricted output (model order), or ``None`` for no restricted rows.
        restricted_name: The restricted rows' ``output_name`` (e.g. ``restricted to the target's classes``).
        prior: ``none`` or ``em``: also a prior-corrected row for each of the above
            (:func:`~ser_lightning.inference.adaptation.em_prior_correction`, over every clip of the set,
            on the restricted probabilities for a restricted row).
        train_prior: The model's training prior ``(n_classes,)`` (needed with ``prior="em"``).
        min_clips: Fewer clips than this: the prior is not corrected (the row says so in ``note``).

    Returns:
        Rows ``{"output", "output_name", "adaptation", "transductive", "n", "ua", "wa", "macro_f1",
        "scorable_classes", "classes", "excluded", "confusion_matrix", "note"}`` (plus ``prior`` for
        prior-corrected rows: the estimated prior per class). ``classes`` are the row's output classes and
        index ``confusion_matrix``; ``excluded`` counts clips whose true class is outside them (not scored).

    Raises:
        ValueError: ``prior="em"`` without ``train_prior``.
    """
    targets = np.asarray(targets, dtype=np.int64)
    if prior == "em" and train_prior is None:
        raise ValueError("adapt_prior=em needs the model's training prior")
    k = len(labels)
    kinds: list[tuple[str, str, list[int]]] = [("full", f"full {k}-way output", list(range(k)))]
    if keep is not None:
        kinds.append(("restricted", restricted_name, list(keep)))
    rows = []
    for adaptation, p in probs.items():
        p = np.asarray(p, dtype=np.float64)
        if p.shape != (len(targets), k):
            raise ValueError(f"{adaptation}: probabilities of shape {p.shape} for {len(targets)} clips and {k} classes")
        for output, name, idx in kinds:
            view = p if output == "full" else restrict_probabilities(p, idx)
            variants: list[tuple[str, np.ndarray, dict[str, Any]]] = [(adaptation, view, {})]
            if prior == "em":
                tp = np.asarray(train_prior, dtype=np.float64)[idx]
                if len(view) < min_clips:
                    extra = {"note": f"adapt_prior=em: {len(view)} clip(s), fewer than adapt_min_clips={min_clips}: "
                                     "the prior is not corrected"}
                    corrected = view
                else:
                    fit = em_prior_correction(view, tp / tp.sum())
                    corrected = fit.probs
                    extra = {"prior": {labels[i]: float(v) for i, v in zip(idx, fit.prior)},
                             "em_iterations": fit.iterations}
                variants.append((PRIOR_EM if adaptation == PLAIN else f"{adaptation} + {PRIOR_EM}", corrected, extra))
            for name_a, q, extra in variants:
                rows.append({**score_view(q, targets, labels, idx), "output": output, "output_name": name,
                             "adaptation": name_a, "transductive": name_a != PLAIN, "note": "", **extra})
    return rows


def score_view(probs: np.ndarray, targets: np.ndarray, labels: Sequence[str], idx: Sequence[int]) -> dict[str, Any]:
    """Scores of probabilities over the output classes ``idx`` (arg-max over those columns only).

    Args:
        probs: ``(n, len(idx))`` probabilities of the output classes.
        targets: True class index of each clip in the model's classes ``(n,)``.
        labels: The model's class names.
        idx: The output classes (model indices).

    Returns:
        :func:`scorable_scores` of the clips whose true class is among ``idx``, with ``classes``,
        ``confusion_matrix`` (over ``idx``) and ``excluded`` (the other clips).
    """
    idx = list(idx)
    position = {c: j for j, c in enumerate(idx)}
    targets = np.asarray(targets, dtype=np.int64)
    scored = np.asarray([t in position for t in targets.tolist()], dtype=bool)
    t = np.asarray([position[c] for c in targets[scored].tolist()], dtype=np.int64)
    pred = np.asarray(probs)[scored].argmax(axis=1) if scored.any() else np.zeros(0, dtype=np.int64)
    cm = confusion(t, pred, len(idx))
    names = [labels[i] for i in idx]
    return {**scorable_scores(cm, names), "classes": names, "excluded": int((~scored).sum()),
            "confusion_matrix": cm.tolist()}
