"""Classify a set of recordings, restricted to some classes and adapted to the set without labels: :func:`predict_set`.

The order of :mod:`ser_lightning.inference.adaptation`: feature adaptation (``adapt=set``, two passes over the
files, the second replaying the first's pooled states), label restriction, prior correction (``adapt_prior=em``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ser_lightning.data.speaker_norm import speaker_statistics
from ser_lightning.inference.adaptation import (
    DEFAULT_MIN_CLIPS,
    adaptation_name,
    adjust_to_prior,
    check_adapt,
    em_prior_correction,
    label_subset,
)
from ser_lightning.inference.loading import LoadedModel
from ser_lightning.inference.scheduling import predict_files
from ser_lightning.inference.windows import AudioArray

log = logging.getLogger(__name__)


def _digest(batch: np.ndarray, lengths: np.ndarray | None) -> str:
    """A fingerprint of one model batch (its samples and valid lengths)."""
    h = hashlib.blake2b(np.ascontiguousarray(batch).tobytes(), digest_size=16)
    if lengths is not None:
        h.update(np.ascontiguousarray(lengths, dtype=np.int64).tobytes())
    return h.hexdigest()


def _answer(rec: dict[str, Any]) -> dict[str, Any]:
    return {"label": rec["label"], "confidence": rec["confidence"], "probabilities": rec["probabilities"]}


def _set_probabilities(target: dict[str, Any], probs: np.ndarray, labels: Sequence[str]) -> None:
    target.update(label=labels[int(np.argmax(probs))], confidence=float(np.max(probs)),
                  probabilities={c: float(v) for c, v in zip(labels, probs)})


def predict_set(
    files: Sequence[tuple[Path | AudioArray, str]],
    model: LoadedModel,
    *,
    labels: str | Sequence[str] | None = None,
    adapt: str = "none",
    adapt_prior: str = "none",
    adapt_min_clips: int = DEFAULT_MIN_CLIPS,
    **settings: Any,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Classify a set of recordings, optionally restricted to some classes and adapted to the set without labels.

    The order of :mod:`ser_lightning.inference.adaptation`: feature adaptation, label restriction, prior
    correction.

    * ``adapt="set"`` (transductive): two passes over the files. The first computes every classified
      window's pooled encoder states (and the plain answers, with the checkpoint's training statistics);
      their mean and sd then standardise the head's input in the second pass, which replays the stored
      states (the same windows in the same batches; the encoder does not run twice). Fewer than
      ``adapt_min_clips`` classified files (a single clip, say): a note, and the training statistics.
    * ``labels``: each window's probabilities restricted to those classes and renormalised
      (:func:`predict_files`); a file's answer is the mean over its windows.
    * ``adapt_prior="em"`` (transductive): the class prior of the set is estimated by EM over the files'
      (restricted) probabilities (:func:`~ser_lightning.inference.adaptation.em_prior_correction`,
      starting from the model's training prior restricted to the kept classes), and every file's and
      window's probabilities are re-weighted to it (a file's corrected probabilities are its corrected
      mean, not the mean of corrected windows). Fewer than ``adapt_min_clips`` classified files: a note,
      no correction.

    With any adaptation applied, every classified record keeps its unadapted answer under ``plain``
    (``label``, ``confidence``, ``probabilities``; label restriction applied).

    Args:
        files: ``[(path or AudioArray, display_name)]``.
        model: The :class:`LoadedModel`.
        labels: Classes to keep (see :func:`predict_files`), or ``None``.
        adapt: ``none`` or ``set``.
        adapt_prior: ``none`` or ``em``.
        adapt_min_clips: The smallest set that is adapted.
        **settings: Keyword settings of :func:`predict_files` (``hop_s``, ``batch_size``, ``trim``,
            ``trim_db``, ``silence_dbfs``, ``vad``, ``segment``, ``progress``, ``speaker_stats``).

    Returns:
        ``(records, info)``: the :func:`predict_files` records, and ``{"labels" (the output classes),
        "adaptation" (the row name: ``plain`` or what was applied), "transductive", "adapt": {"mode",
        "applied", "clips", "windows"}, "prior": {"mode", "applied", "training_prior", "estimated_prior",
        "iterations"}, "notes"}``.

    Raises:
        ValueError: a bad setting; ``adapt=set`` with a model that cannot be adapted (an exported model,
            a speaker-normalised or non-encoder checkpoint), ``adapt_prior=em`` without a training prior,
            or a requested label the model does not have; see also :func:`predict_files`.
    """
    adapt, prior, min_clips = check_adapt(adapt, adapt_prior, adapt_min_clips, allowed=("none", "set"))
    keep = list(range(len(model.labels))) if labels is None else label_subset(labels, model.labels, model.source)
    out_labels = [model.labels[i] for i in keep]
    if adapt == "set" and model.adapt_refusal:
        raise ValueError(model.adapt_refusal)
    if prior == "em" and model.training_prior is None:
        raise ValueError(model.prior_refusal or "adapt_prior=em: the model's training prior is unknown")
    notes: list[str] = []
    info: dict[str, Any] = {"labels": out_labels, "adapt": {"mode": adapt, "applied": False},
                            "prior": {"mode": prior, "applied": False}, "notes": notes}

    def too_few(what: str, n: int) -> None:
        note = (f"{what}: {n} file(s) classified, fewer than adapt_min_clips={min_clips}: "
                + ("the training statistics are used" if what == "adapt" else "the prior is not corrected"))
        log.warning("%s", note)
        notes.append(note)

    plain_records: list[dict[str, Any]] | None = None
    if adapt == "set" and len(files) >= min_clips:
        captured: list[tuple[str, np.ndarray]] = []

        def capture(batch: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
            pooled = model.embed(batch, lengths)
            captured.append((_digest(batch, lengths), pooled))
            return model.run_pooled(pooled)

        plain_records = predict_files(files, model, labels=labels, run=capture, **settings)
        n_ok = sum(r["status"] == "ok" for r in plain_records)
        if n_ok < min_clips:
            too_few("adapt", n_ok)
            records, plain_records = plain_records, None
        else:
            pooled_all = np.concatenate([p for _, p in captured])
            stats = speaker_statistics(pooled_all)
            replay = iter(captured)

            def adapted(batch: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
                digest, pooled = next(replay, (None, None))
                if digest != _digest(batch, lengths):  # not the first pass's batch: embed it again
                    pooled = model.embed(batch, lengths)
                return model.run_pooled(pooled, stats)

            records = predict_files(files, model, labels=labels, run=adapted, **settings)
            info["adapt"].update(applied=True, clips=n_ok, windows=int(len(pooled_all)))
    else:
        if adapt == "set":
            too_few("adapt", len(files))
        records = predict_files(files, model, labels=labels, **settings)
    ok = [i for i, r in enumerate(records) if r["status"] == "ok"]
    if prior == "em":
        train = np.asarray(model.training_prior, dtype=np.float64)[keep]
        train = train / train.sum()
        info["prior"]["training_prior"] = dict(zip(out_labels, train.tolist()))
        if len(ok) < min_clips:
            too_few("adapt_prior=em", len(ok))
        else:
            if plain_records is None:
                plain_records = [dict(_answer(r), status=r["status"]) for r in records]
            fit = em_prior_correction(np.asarray([[records[i]["probabilities"][c] for c in out_labels] for i in ok]), train)
            for i, q in zip(ok, fit.probs):
                _set_probabilities(records[i], q, out_labels)
                for w in records[i]["windows"]:
                    if w.get("probabilities"):
                        p = np.asarray([[w["probabilities"][c] for c in out_labels]])
                        _set_probabilities(w, adjust_to_prior(p, train, fit.prior)[0], out_labels)
            info["prior"].update(applied=True, estimated_prior=dict(zip(out_labels, fit.prior.tolist())),
                                 iterations=fit.iterations, converged=fit.converged)
    applied_adapt = "set" if info["adapt"]["applied"] else "none"
    applied_prior = "em" if info["prior"]["applied"] else "none"
    info["adaptation"] = adaptation_name(applied_adapt, applied_prior)
    info["transductive"] = applied_adapt != "none" or applied_prior != "none"
    if info["transductive"] and plain_records is not None:
        for i in ok:
            records[i]["plain"] = _answer(plain_records[i])
    return records, info
