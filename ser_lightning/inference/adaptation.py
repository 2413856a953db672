"""Asking for the classes you need, and adapting to a set of recordings without their labels.

Three operations on a model's output, shared by ``predict.py``, the Python API, ``eval.py`` and
``cross_corpus.py``, applied in this order:

1. **Feature adaptation** (``adapt=set`` or ``adapt=speaker``; transductive): the head's input
   standardisation takes the statistics of the recordings being scored instead of the training
   data's — of the whole set, or of each speaker where speakers are known — as in AdaBN (Li, Wang,
   Shi, Liu & Hou, "Revisiting batch normalization for practical domain adaptation",
   arXiv:1603.04779, 2016). The per-speaker statistics are those of the training-side
   per-speaker normalisation (:func:`~ser_lightning.data.speaker_norm.speaker_statistics`). Every
   change goes through the network's one method
   :meth:`~ser_lightning.models.encoders.encoder_classifier.EncoderClassifier.set_feature_statistics`
   (raw pooled hidden states ``(num_hidden_states, pooled_dim)``). A set (or speaker) with fewer
   than ``adapt_min_clips`` clips keeps the training statistics, with a one-line note: the
   checkpoint's own statistics serve single clips.
2. **Label restriction** (``labels=[angry,happy,neutral,sad]``; not transductive): the model's
   probabilities restricted to those classes and renormalised (:func:`restrict_probabilities`), the
   protocol of EmoBox's cross-corpus track (Ma et al., "EmoBox: Multilingual Multi-corpus Speech
   Emotion Recognition Toolkit and Benchmark", Interspeech 2024).
3. **Class-prior correction** (``adapt_prior=em``; transductive): the EM procedure of Saerens,
   Latinne & Decaestecker, "Adjusting the outputs of a classifier to new a priori probabilities: a
   simple procedure", Neural Computation 14(1): 21–41, 2002 (:func:`em_prior_correction`) estimates
   the class priors of the scored set from its unlabelled posteriors and re-weights them. It needs
   the prior the model's posteriors are calibrated to (:func:`training_prior`), which is not the
   training class frequencies when the loss was class-weighted or the sampler balanced. After a
   label restriction it runs over the kept classes, with the training prior restricted and renormalised.

Results from (1) and (3) are *transductive*: they depend on the other recordings scored with them.
Every table names them (:data:`ADAPT_SET`, :data:`ADAPT_SPEAKER`, :data:`PRIOR_EM`) and keeps the
plain rows beside them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ser_lightning.data.labels import LABEL_SETS, canonical_emotion, get_label_set
from ser_lightning.data.speaker_norm import speaker_statistics
from ser_lightning.models.facts import network_facts

log = logging.getLogger(__name__)

#: ``adapt`` choices: no feature adaptation, the whole scored set's statistics, each speaker's.
ADAPT_MODES = ("none", "set", "speaker")
#: ``adapt_prior`` choices.
PRIOR_MODES = ("none", "em")
#: Default ``adapt_min_clips``: a set (or speaker) with fewer clips keeps the training statistics.
DEFAULT_MIN_CLIPS = 20

#: Row names (every table uses them).
PLAIN = "plain"
ADAPT_SET = "adapted (transductive: target set statistics)"
ADAPT_SPEAKER = "adapted (transductive: each target speaker's statistics)"
PRIOR_EM = "prior-corrected (transductive: EM class priors, Saerens et al. 2002)"


def adaptation_name(adapt: str = "none", prior: str = "none") -> str:
    """The row name of an adaptation: :data:`PLAIN`, :data:`ADAPT_SET`, :data:`ADAPT_SPEAKER`, :data:`PRIOR_EM`
    or a feature adaptation ``+`` :data:`PRIOR_EM`."""
    parts = [{"set": ADAPT_SET, "speaker": ADAPT_SPEAKER}[adapt]] if adapt != "none" else []
    parts += [PRIOR_EM] if prior != "none" else []
    return " + ".join(parts) or PLAIN


def check_adapt(adapt: Any, prior: Any = "none", min_clips: Any = DEFAULT_MIN_CLIPS,
                allowed: Sequence[str] = ADAPT_MODES) -> tuple[str, str, int]:
    """Validate the adaptation settings.

    Args:
        adapt: ``none`` / ``set`` / ``speaker`` (``None`` = ``none``).
        prior: ``none`` / ``em`` (``None`` = ``none``).
        min_clips: ``adapt_min_clips``, at least 2.
        allowed: The ``adapt`` modes the caller offers (``predict.py`` knows no speakers).

    Returns:
        ``(adapt, prior, min_clips)``.

    Raises:
        ValueError: a value outside its choices (one line naming the setting).
    """
    adapt = "none" if adapt in (None, False) else str(adapt)
    prior = "none" if prior in (None, False) else str(prior)
    if adapt not in allowed:
        extra = " (speakers are unknown here; adapt=speaker is for eval.py and cross_corpus.py)" \
            if adapt == "speaker" else ""
        raise ValueError(f"adapt={adapt!r} is not one of {list(allowed)}{extra}")
    if prior not in PRIOR_MODES:
        raise ValueError(f"adapt_prior={prior!r} is not one of {list(PRIOR_MODES)}")
    try:
        n = int(min_clips)
    except (TypeError, ValueError):
        raise ValueError(f"adapt_min_clips={min_clips!r} must be a whole number of clips") from None
    if n < 2:
        raise ValueError(f"adapt_min_clips={min_clips!r} must be at least 2 (a spread needs two clips)")
    return adapt, prior, n


# ------------------------------------------------------------------------------------ label restriction
def requested_labels(requested: str | Sequence[str]) -> list[str]:
    """Requested classes as vocabulary words: a label-set name (``quad4``, ...), a comma-separated
    string or a list, each name in any known spelling (``ANG``, ``fearful``, ...).

    Raises:
        ValueError: an unknown emotion name, or nothing requested.
    """
    if isinstance(requested, str):
        names = list(get_label_set(requested).classes) if requested in LABEL_SETS else \
            [canonical_emotion(x.strip(), "labels") for x in requested.split(",") if x.strip()]
    else:
        names = [canonical_emotion(str(x), "labels") for x in requested]
    if not names:
        raise ValueError("labels=[] names no class; give e.g. labels=[angry,happy,neutral,sad] or leave it out")
    return list(dict.fromkeys(names))


def label_subset(requested: str | Sequence[str], model_labels: Sequence[str], source: Any = "") -> list[int]:
    """Indices of the requested classes among a model's classes, in the model's order.

    Args:
        requested: See :func:`requested_labels`.
        model_labels: The model's class names in output order.
        source: The model, named in the message.

    Returns:
        Sorted class indices (the model's output order is kept).

    Raises:
        ValueError: a requested class the model does not have (one line listing them and the model's
            classes), or an unknown emotion name.
    """
    wanted = requested_labels(requested)
    have = [canonical_emotion(x) for x in model_labels]
    missing = [w for w in wanted if w not in have]
    if missing:
        raise ValueError(f"labels={wanted}: the model {source} has no class {missing}; it predicts "
                         f"{list(model_labels)}")
    return sorted(have.index(w) for w in wanted)


def restrict_probabilities(probs: np.ndarray, keep: Sequence[int]) -> np.ndarray:
    """The probabilities of the kept classes, renormalised to sum to 1 per row.

    Args:
        probs: ``(n, n_classes)`` class probabilities.
        keep: Class indices to keep (``(k,)``).

    Returns:
        ``(n, k)`` float64; a row whose kept probabilities are all 0 becomes uniform.
    """
    p = np.asarray(probs, dtype=np.float64)[:, list(keep)]
    total = p.sum(axis=1, keepdims=True)
    return np.divide(p, total, out=np.full_like(p, 1.0 / max(p.shape[1], 1)), where=total > 0)


# -------------------------------------------------------------------------------------- class priors
def training_prior(class_counts: Sequence[float] | None, class_weights: Any = None, sampler: Any = None,
                   num_classes: int | None = None, corpus_weights: Any = None,
                   corpus_class_counts: Mapping[str, Sequence[float]] | None = None) -> np.ndarray:
    """The class prior a model's posteriors are calibrated to, from how it was trained.

    A classifier trained with weighted cross-entropy ``-Σ_k a_k w_{y_k} log q(y_k | x_k)`` (class weight
    ``w_y``, item weight ``a_k``) on items drawn with class frequencies ``s_y`` converges (given enough
    capacity) to ``q(y | x) ∝ w_y s_y m_y p(x | y)``, ``m_y`` being the mean item weight of class ``y``:
    its posteriors are Bayes posteriors under the prior ``π_y ∝ w_y s_y m_y``. So:

    * no class weights, shuffled items: ``π_y ∝ n_y`` (the training class counts);
    * ``loss.class_weights=balanced`` (``w_y = N / (K n_y)``): ``π_y`` uniform, whatever the counts
      (the default model);
    * ``data.sampler=balanced`` (classes drawn in equal shares): ``s_y`` uniform, ``π_y ∝ w_y``;
    * explicit weights ``[w_0, ...]``: ``π_y ∝ w_y n_y``;
    * ``data.corpus_weights=balanced`` (item weight ``N / (C n_c)`` for an item of corpus ``c``):
      ``m_y = Σ_c a_c n_{c,y} / n_y``, which needs each training corpus's class counts.

    Label smoothing and mixup move the posteriors towards uniform a little; they are not modelled.

    Args:
        class_counts: Training items per class (``SERClassifier.hparams.class_counts``).
        class_weights: ``None``, ``"balanced"`` or one weight per class (``loss.class_weights``).
        sampler: ``data.sampler``: ``None`` (shuffle) or ``"balanced"``.
        num_classes: Expected number of classes (checked when given).
        corpus_weights: ``data.corpus_weights``: ``None`` or ``"balanced"``.
        corpus_class_counts: With ``corpus_weights``: training corpus → items per class.

    Returns:
        ``(n_classes,)`` float64, positive, summing to 1.

    Raises:
        ValueError: missing or non-positive counts, weights that do not fit them, or corpus weights without
            the per-corpus class counts.
    """
    if class_counts is None:
        raise ValueError("the training class counts are unknown (a checkpoint from before they were stored?); "
                         "the class prior cannot be derived")
    counts = np.asarray(list(class_counts), dtype=np.float64)
    k = len(counts)
    if k == 0 or (num_classes is not None and k != num_classes) or not (counts > 0).all():
        raise ValueError(f"training class counts {list(class_counts)} must be one positive count per class"
                         + (f" ({num_classes} classes)" if num_classes is not None else ""))
    freq = np.full(k, 1.0 / k) if sampler == "balanced" else counts / counts.sum()
    if class_weights is None:
        weights = np.ones(k)
    elif isinstance(class_weights, str):
        if class_weights != "balanced":
            raise ValueError(f"loss.class_weights={class_weights!r} is not null, 'balanced' or a list")
        weights = counts.sum() / (k * counts)
    else:
        weights = np.asarray(list(class_weights), dtype=np.float64)
        if weights.shape != (k,) or not (weights > 0).all():
            raise ValueError(f"loss.class_weights={list(class_weights)} must be {k} positive numbers")
    item = np.ones(k)
    if corpus_weights is not None:
        if corpus_weights != "balanced":
            raise ValueError(f"data.corpus_weights={corpus_weights!r} is not null or 'balanced'")
        if not corpus_class_counts:
            raise ValueError("the model was trained with data.corpus_weights=balanced, and its class prior needs each "
                             "training corpus's class counts, which the checkpoint does not store")
        per = np.asarray([list(v) for v in corpus_class_counts.values()], dtype=np.float64)  # (corpora, classes)
        if per.shape[1:] != (k,) or (per < 0).any():
            raise ValueError(f"per-corpus class counts of shape {per.shape} do not fit {k} classes")
        a = per.sum() / (len(per) * per.sum(axis=1))  # item weight of each corpus
        item = (a[:, None] * per).sum(axis=0) / np.maximum(per.sum(axis=0), 1e-12)
    prior = weights * freq * item
    return prior / prior.sum()


@dataclass(frozen=True)
class PriorCorrection:
    """The result of :func:`em_prior_correction`.

    Attributes:
        probs: Re-weighted posteriors ``(n, n_classes)``.
        prior: Estimated class prior of the scored set ``(n_classes,)``.
        iterations: EM iterations run.
        converged: Whether the prior moved less than the tolerance in the last iteration.
    """

    probs: np.ndarray
    prior: np.ndarray
    iterations: int
    converged: bool


def adjust_to_prior(probs: np.ndarray, train_prior: np.ndarray, new_prior: np.ndarray) -> np.ndarray:
    """Bayes' re-weighting of posteriors to a new class prior (Saerens et al. 2002).

    ``p'(y | x) ∝ (new_prior_y / train_prior_y) p(y | x)``, renormalised per row.

    Args:
        probs: ``(n, n_classes)`` posteriors under ``train_prior``.
        train_prior, new_prior: ``(n_classes,)``.

    Returns:
        ``(n, n_classes)`` float64.
    """
    w = np.asarray(new_prior, dtype=np.float64) / np.asarray(train_prior, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64) * w
    total = p.sum(axis=1, keepdims=True)
    return np.divide(p, total, out=np.full_like(p, 1.0 / p.shape[1]), where=total > 0)


def em_prior_correction(probs: np.ndarray, train_prior: np.ndarray, max_iter: int = 1000,
                        tol: float = 1e-8) -> PriorCorrection:
    """Estimate the class prior of an unlabelled set and re-weight its posteriors (Saerens et al. 2002).

    Starting from the training prior, alternate: E-step, the posteriors re-weighted to the current
    prior estimate (:func:`adjust_to_prior`); M-step, the new prior is the mean of those posteriors
    over the set. The likelihood of the unlabelled set rises at every step.

    Args:
        probs: ``(n, n_classes)`` posteriors of the set, calibrated to ``train_prior``.
        train_prior: ``(n_classes,)`` (:func:`training_prior`, restricted and renormalised after a label
            restriction).
        max_iter: Iteration limit.
        tol: Stop when no prior entry moves more than this.

    Returns:
        The :class:`PriorCorrection`.

    Raises:
        ValueError: shapes that disagree, an empty set, or a prior that is not positive.
    """
    p = np.asarray(probs, dtype=np.float64)
    t = np.asarray(train_prior, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(t) or len(p) == 0:
        raise ValueError(f"EM prior correction: posteriors {p.shape} do not fit a prior of {len(t)} classes (or are empty)")
    if not (t > 0).all():
        raise ValueError(f"EM prior correction: the training prior {t.tolist()} must be positive")
    t = t / t.sum()
    prior, converged, iterations = t.copy(), False, 0
    while iterations < max_iter and not converged:
        new = adjust_to_prior(p, t, prior).mean(axis=0)  # E-step, then M-step
        converged = float(np.abs(new - prior).max()) < tol
        prior, iterations = new, iterations + 1
    return PriorCorrection(adjust_to_prior(p, t, prior), prior, iterations, converged)


# ------------------------------------------------------------------------------- feature adaptation
@contextlib.contextmanager
def feature_statistics_used(network: Any, stats: tuple[np.ndarray, np.ndarray] | None) -> Iterator[None]:
    """Standardise the network's head input with ``stats`` inside the block, then restore its own.

    Args:
        network: An encoder model with ``feature_statistics`` / ``set_feature_statistics``
            (:class:`~ser_lightning.models.encoders.encoder_classifier.EncoderClassifier`).
        stats: ``(mean, sd)`` of shape ``network.pooled_shape``, or ``None`` (nothing changes).
    """
    if stats is None:
        yield
        return
    saved = network.feature_statistics()
    network.set_feature_statistics(*stats)
    try:
        yield
    finally:
        network.set_feature_statistics(*saved)


def adaptable(network: Any) -> str | None:
    """Why a network cannot take feature adaptation, or ``None`` when it can.

    It needs pooled hidden states (``pooled_states`` → ``forward_pooled``) and an input standardisation
    it exposes through ``feature_statistics``/``set_feature_statistics``.
    """
    if not (network_facts(network).pooled_split and hasattr(network, "set_feature_statistics")):
        return f"its network {type(network).__name__} has no pooled encoder states to standardise"
    try:
        network.feature_statistics()
    except ValueError as err:
        return str(err)
    return None


@dataclass
class GroupStatistics:
    """Which statistics one group of scored clips got.

    Attributes:
        group: Speaker name, or ``"set"`` for the whole set.
        clips: Clips (or windows) in the group.
        statistics: ``own`` or ``training (fewer than N clips)``.
    """

    group: str
    clips: int
    statistics: str


def group_statistics(pooled: np.ndarray, groups: Sequence[str] | None, min_clips: int
                     ) -> tuple[list[np.ndarray], list[tuple[np.ndarray, np.ndarray] | None], list[GroupStatistics]]:
    """The statistics each group of clips is standardised with.

    Args:
        pooled: Pooled hidden states ``(n, num_hidden_states, pooled_dim)``.
        groups: Speaker of each row ``(n,)``, or ``None`` (one group: the whole set).
        min_clips: Groups with fewer rows keep the training statistics (``None`` in the result).

    Returns:
        ``(indices, stats, table)``: per group, its row indices, its ``(mean, sd)`` (or ``None``) and
        a :class:`GroupStatistics` row.
    """
    n = len(pooled)
    keys = np.asarray(["set"] * n if groups is None else [str(g) for g in groups])
    if len(keys) != n:
        raise ValueError(f"feature adaptation: {len(keys)} speakers for {n} clips")
    indices, stats, table = [], [], []
    for g in sorted(set(keys.tolist())):
        idx = np.flatnonzero(keys == g)
        if len(idx) >= min_clips:
            stats.append(speaker_statistics(pooled[idx]))
            table.append(GroupStatistics(g, len(idx), "own"))
        else:
            stats.append(None)
            table.append(GroupStatistics(g, len(idx), f"training (fewer than adapt_min_clips={min_clips})"))
        indices.append(idx)
    return indices, stats, table


def small_groups_note(table: Sequence[GroupStatistics], min_clips: int) -> str | None:
    """One line naming the groups that kept the training statistics, or ``None``."""
    small = [t for t in table if t.statistics != "own"]
    if not small:
        return None
    if len(table) == 1 and table[0].group == "set":
        return (f"adapt: the set has {table[0].clips} clip(s), fewer than adapt_min_clips={min_clips}: the "
                "training statistics are used")
    names = ", ".join(f"{t.group} ({t.clips})" for t in small[:10]) + (" ..." if len(small) > 10 else "")
    return (f"adapt: {len(small)} of {len(table)} speaker(s) have fewer than adapt_min_clips={min_clips} clips and "
            f"keep the training statistics: {names}")


def adapted_logits(network: torch.nn.Module, pooled: np.ndarray, groups: Sequence[str] | None = None,
                   min_clips: int = DEFAULT_MIN_CLIPS, batch_size: int = 512
                   ) -> tuple[np.ndarray, list[GroupStatistics]]:
    """Logits of cached pooled states with the head's input standardised per group (AdaBN-style).

    Args:
        network: The encoder model (eval mode), see :func:`feature_statistics_used`.
        pooled: ``(n, num_hidden_states, pooled_dim)``.
        groups: Speaker of each row (``adapt=speaker``), or ``None`` (``adapt=set``).
        min_clips: See :func:`group_statistics`.
        batch_size: Rows per forward pass.

    Returns:
        ``(logits (n, n_classes) float32, table)``; the network's own statistics are restored.
    """
    indices, stats, table = group_statistics(pooled, groups, min_clips)
    device = next(network.parameters()).device
    out: np.ndarray | None = None
    with torch.no_grad():
        for idx, st in zip(indices, stats):
            with feature_statistics_used(network, st):
                for i in range(0, len(idx), batch_size):
                    part = idx[i:i + batch_size]
                    x = torch.from_numpy(np.ascontiguousarray(pooled[part], dtype=np.float32)).to(device)
                    logits = network.forward_pooled(x).float().cpu().numpy()
                    if out is None:
                        out = np.empty((len(pooled), logits.shape[1]), dtype=np.float32)
                    out[part] = logits
    return (np.zeros((0, 0), dtype=np.float32) if out is None else out), table
