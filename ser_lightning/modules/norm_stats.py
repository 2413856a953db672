"""Per-corpus standardisation statistics of an encoder's log-mel input (``model.norm_stats``).

BYOL-S standardises its log-mel input with a mean and a standard deviation. SERAB
(Scheidwasser-Clow et al., "SERAB: A multi-lingual benchmark for speech emotion recognition",
ICASSP 2022; ``SERAB/settings.py`` of GitHub ``Neclow/SERAB``) computes them for every corpus it
evaluates; ``model.norm_stats=fixed`` (the default) uses SERAB's RAVDESS values for every clip,
so another corpus (other loudness, other channel) reaches the encoder off-centre.
``model.norm_stats=per_corpus`` computes them from the data instead:

* training: for each training corpus, over all valid log-mel frames (all mel bands) of its
  *training* clips; its validation and test clips are standardised with them too. They are
  logged, written to ``norm_stats.json`` of the run directory and stored in the checkpoint
  (``SERClassifier``'s ``corpus_stats``), so evaluation and prediction use the same numbers;
* evaluation of a corpus the model was not trained on (``eval.py data=<corpus>``,
  ``cross_corpus.py``'s targets): over all valid frames of the evaluated clips of that corpus
  (labels are not read), written to the evaluation's ``norm_stats.json``;
* a clip of no known corpus (``predict.py`` on a user's file): the training corpora's pooled
  statistics (all their training frames together), the encoder's default after loading.

Statistics over frames, not SERAB's average of per-clip means and standard deviations: every
frame weighs the same whatever the length of its clip. They take one pass of the log-mel frontend
over the clips (no encoder), about 11 s for the 1440 RAVDESS clips on one CPU thread, so they are
computed anew for each run rather than cached.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ser_lightning.models.facts import network_facts

log = logging.getLogger(__name__)

#: ``model.norm_stats`` choices.
NORM_STATS_MODES = ("fixed", "per_corpus")
#: ``norm_stats.json`` name in a run directory.
NORM_STATS_FILE = "norm_stats.json"


def norm_stats_mode(model_settings: dict[str, Any]) -> str:
    """``model.norm_stats`` (default ``fixed``), checked.

    Raises:
        ValueError: not one of :data:`NORM_STATS_MODES`.
    """
    mode = str(model_settings.get("norm_stats", "fixed"))
    if mode not in NORM_STATS_MODES:
        raise ValueError(f"model.norm_stats={mode!r} is not one of {list(NORM_STATS_MODES)}")
    return mode


def checked_norm_stats_mode(model_settings: dict[str, Any], network: torch.nn.Module) -> str:
    """``model.norm_stats`` (:func:`norm_stats_mode`), checked against what ``network`` takes.

    Args:
        model_settings: The ``model`` settings (``name``, ``norm_stats``).
        network: The built network (its :class:`~ser_lightning.models.facts.NetworkFacts` are asked).

    Raises:
        ValueError: an unknown mode, or ``per_corpus`` for a network whose input standardisation takes no
            corpus statistics.
    """
    mode = norm_stats_mode(model_settings)
    if mode == "per_corpus" and not network_facts(network).takes_norm_stats:
        raise ValueError(f"model.norm_stats=per_corpus: model {model_settings.get('name')} standardises its input "
                         "with no corpus statistics (only encoders with a standardised log-mel, e.g. byol_s, take them)")
    return mode


def stats_from_moments(frames: float, values: float, total: float, total_sq: float) -> dict[str, float]:
    """Mean and (population) sd from counts and sums.

    Args:
        frames: Valid frames. values: Values summed (frames × mel bands). total: Their sum.
        total_sq: The sum of their squares.

    Returns:
        ``{"mean", "sd", "frames"}``.

    Raises:
        ValueError: no values, or a zero spread (silent audio).
    """
    if values <= 0:
        raise ValueError("no log-mel frames to compute norm statistics from")
    mean = total / values
    sd = float(np.sqrt(max(total_sq / values - mean * mean, 0.0)))
    if not sd > 0:
        raise ValueError("the log-mel values have zero spread (silent clips?): no sd to standardise with")
    return {"mean": float(mean), "sd": sd, "frames": int(round(frames))}


def pooled_stats(table: dict[str, dict[str, float]]) -> dict[str, float]:
    """Statistics of several corpora's frames together, from each corpus's mean, sd and frame count.

    Args:
        table: Corpus → ``{"mean", "sd", "frames"}``.

    Returns:
        ``{"mean", "sd", "frames"}`` of all frames (each frame weighs the same).

    Raises:
        ValueError: an empty table.
    """
    if not table:
        raise ValueError("no corpus statistics to pool")
    n = np.array([float(s["frames"]) for s in table.values()])
    m = np.array([float(s["mean"]) for s in table.values()])
    sd = np.array([float(s["sd"]) for s in table.values()])
    w = n / n.sum()
    mean = float((w * m).sum())
    var = float((w * (sd ** 2 + m ** 2)).sum() - mean ** 2)
    return {"mean": mean, "sd": float(np.sqrt(max(var, 0.0))), "frames": int(n.sum())}


def mean_sd(table: dict[str, dict[str, float]]) -> dict[str, tuple[float, float]]:
    """Corpus → ``(mean, sd)`` (what :meth:`SERDataModule.set_norm_stats` takes)."""
    return {c: (float(s["mean"]), float(s["sd"])) for c, s in table.items()}


@torch.no_grad()
def compute_corpus_stats(frontend: torch.nn.Module, dm, rows: np.ndarray,
                         device: str | torch.device = "cpu") -> dict[str, dict[str, float]]:
    """Log-mel mean and sd of each corpus over the valid frames of the given clips.

    Args:
        frontend: A log-mel frontend with ``frame_moments(wave, lengths)`` → ``(batch, 4)``
            (e.g. :class:`~ser_lightning.features.encoder_frontends.ByolLogMel`).
        dm: A set-up ``SERDataModule`` (its audio cache, ``row_corpus`` and
            ``all_clips_dataloader`` are used).
        rows: Audio-cache rows of the clips ``(n,)``.
        device: Where the frontend runs.

    Returns:
        Corpus → ``{"mean", "sd", "frames", "clips"}``.

    Raises:
        ValueError: no rows, or a corpus whose clips have no spread (see :func:`stats_from_moments`).
    """
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    if len(rows) == 0:
        raise ValueError("no clips to compute norm statistics from")
    start = time.perf_counter()
    corpora = dm.row_corpus[rows]
    names = sorted({str(c) for c in corpora})
    index = {c: i for i, c in enumerate(names)}
    sums = torch.zeros(len(names), 4, dtype=torch.float64)
    clips = np.zeros(len(names), dtype=np.int64)
    frontend = frontend.to(device)
    for batch in dm.all_clips_dataloader(rows):
        moments = frontend.frame_moments(batch.waves.to(device), batch.lengths.to(device)).cpu()
        which = torch.as_tensor([index[str(c)] for c in dm.row_corpus[batch.target.numpy()]])
        sums.index_add_(0, which, moments)
        np.add.at(clips, which.numpy(), 1)
    table = {c: {**stats_from_moments(*sums[i].tolist()), "clips": int(clips[i])} for c, i in index.items()}
    log.info("norm statistics of %s computed from %d clips in %.1f s: %s", names, len(rows),
             time.perf_counter() - start,
             {c: f"mean {s['mean']:.3f} sd {s['sd']:.3f}" for c, s in table.items()})
    return table


def _frontend(network: torch.nn.Module) -> torch.nn.Module:
    """The log-mel frontend whose statistics ``network`` (an encoder model) standardises with."""
    return network.encoder.frontend


def write_norm_stats(out_dir: str | Path | None, table: dict[str, dict[str, Any]], pooled: dict[str, float] | None,
                     sources: dict[str, str]) -> Path | None:
    """Write ``norm_stats.json``: ``{"mode", "corpora": {corpus: {mean, sd, frames, clips, source}}, "pooled"}``.

    Returns:
        The path, or ``None`` without ``out_dir``.
    """
    if out_dir is None:
        return None
    path = Path(out_dir) / NORM_STATS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"mode": "per_corpus", "corpora": {c: {**s, "source": sources.get(c, "")} for c, s in table.items()},
            "pooled": pooled,
            "note": "log-mel mean and sd over all valid frames and mel bands; pooled: the training corpora's "
                    "frames together, used for clips of no known corpus (predict.py)"}
    path.write_text(json.dumps(body, indent=2))
    return path


def training_norm_stats(network: torch.nn.Module, dm, model_settings: dict[str, Any],
                        run_dir: str | Path | None = None,
                        device: str | torch.device = "cpu") -> dict[str, dict[str, float]] | None:
    """With ``model.norm_stats=per_corpus``: compute each training corpus's statistics from its
    training clips and have the data module's batches carry them; the model is then built with them
    (``SERClassifier(corpus_stats=...)``, stored in the checkpoint).

    Args:
        network: The encoder model (built before the ``SERClassifier``; its log-mel frontend is used).
        dm: The ``SERDataModule``, after ``setup``.
        model_settings: The ``model`` settings.
        run_dir: Where ``norm_stats.json`` goes (``None``: not written).
        device: Where the frontend runs.

    Returns:
        Corpus → ``{"mean", "sd", "frames", "clips"}``, or ``None`` with ``model.norm_stats=fixed``.

    Raises:
        ValueError: an unknown mode, a network whose frontend takes no statistics, or fixed-length clips.
    """
    if checked_norm_stats_mode(model_settings, network) == "fixed":
        return None
    table = compute_corpus_stats(_frontend(network), dm, dm.datasets["train"].rows, device)
    dm.set_norm_stats(mean_sd(table))
    write_norm_stats(run_dir, table, pooled_stats(table), {c: "training clips" for c in table})
    return table


def use_training_norm_stats(model, dm, model_settings: dict[str, Any], run_dir: str | Path | None = None,
                            device: str | torch.device = "cpu") -> dict[str, dict[str, float]] | None:
    """Deprecated: :func:`training_norm_stats` on ``model.network``, then ``model.set_corpus_stats`` (the training
    task now builds the model with the statistics instead)."""
    warnings.warn("use_training_norm_stats is deprecated: compute training_norm_stats(network, dm, ...) and build "
                  "SERClassifier(corpus_stats=...)", FutureWarning, stacklevel=2)
    table = training_norm_stats(model.network, dm, model_settings, run_dir, device)
    if table:
        model.set_corpus_stats(table)
    return table


def use_eval_norm_stats(model, dm, out_dir: str | Path | None = None,
                        device: str | torch.device = "cpu") -> dict[str, str] | None:
    """Hand a per-corpus model's statistics to an evaluation's data module.

    A corpus the model was trained on keeps the stored statistics (of its training clips); any
    other corpus gets statistics computed from its own served clips (``dm``'s test split, labels
    unused).

    Args:
        model: A loaded ``SERClassifier``.
        dm: The evaluation's ``SERDataModule``, after ``setup``.
        out_dir: Where ``norm_stats.json`` goes (``None``: not written).
        device: Where the frontend runs.

    Returns:
        Corpus → where its statistics come from (``training clips`` / ``own clips``), or ``None``
        for a model with fixed statistics.
    """
    stored = model.corpus_stats
    if not stored:
        return None
    served = np.unique(np.concatenate([ds.rows for ds in dm.datasets.values()]))
    unscorable = np.asarray(sorted(dm.unscorable_rows.values()), dtype=np.int64)
    present = {str(c) for c in dm.row_corpus[np.concatenate([served, unscorable])]}
    table = {c: dict(s) for c, s in stored.items() if c in present}
    sources = {c: "training clips" for c in table}
    new = sorted(present - set(stored))
    if new:
        rows = dm.datasets[dm.hparams.test_split].rows
        rows = np.concatenate([rows[np.isin(dm.row_corpus[rows], new)], unscorable[np.isin(dm.row_corpus[unscorable], new)]])
        computed = compute_corpus_stats(_frontend(model.network), dm, rows, device)
        table.update(computed)
        sources.update({c: "own clips" for c in computed})
    dm.set_norm_stats(mean_sd(table))
    write_norm_stats(out_dir, table, model.pooled_norm_stats, sources)
    return sources
