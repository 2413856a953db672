"""Resuming a killed run so that it ends exactly where an uninterrupted run would have.

Lightning's ``trainer.fit(ckpt_path=...)`` restores weights, optimiser, scheduler, loop counters
and callback states (early stopping, best checkpoint). Two things are missing for an *exact*
continuation, and this module adds them:

* **Random-number state.** The shuffle order of the next epoch, the on-the-fly augmentation and
  dropout all draw from the global generators. :class:`RNGStateCheckpoint` stores the torch,
  numpy and Python generator states in every checkpoint and puts them back on resume, so the
  resumed epochs see the same random stream as the uninterrupted run.
* **The per-epoch CSV log.** Lightning's ``CSVLogger`` deletes an existing ``metrics.csv`` in
  its directory. :class:`AppendingCSVLogger` keeps it, and :func:`prepare_csv_log` cuts the rows
  of the killed, unfinished epoch, so the log of a resumed run continues without gaps or
  duplicates.

Resume a run in its own directory (the same overrides as the killed run, plus two)::

    python train.py <overrides> hydra.run.dir=outputs/train/<stamp> ckpt_path=last
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from ser_lightning.inference.checkpoint import read_checkpoint

log = logging.getLogger(__name__)


class RNGStateCheckpoint(pl.Callback):
    """Save the global RNG states (torch, CUDA, numpy, Python) in checkpoints and restore them.

    Checkpoints are written at the end of an epoch's validation, after which nothing draws a
    random number before the next epoch's shuffle, so restoring the states at resume makes the
    remaining epochs bit-identical to an uninterrupted run on CPU.
    """

    def state_dict(self) -> dict[str, Any]:
        """The current RNG states (numpy's array stored as a list, to load with ``weights_only``)."""
        states = _collect_rng_states(include_cuda=torch.cuda.is_available())
        if "numpy" in states:
            name, keys, pos, has_gauss, gauss = states["numpy"]
            states["numpy"] = [name, np.asarray(keys).tolist(), int(pos), int(has_gauss), float(gauss)]
        return {"rng_states": states}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the RNG states saved by :meth:`state_dict`."""
        states = dict(state_dict["rng_states"])
        if "numpy" in states:
            name, keys, pos, has_gauss, gauss = states["numpy"]
            states["numpy"] = (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss)
        if not torch.cuda.is_available():
            states.pop("torch.cuda", None)
        _set_rng_states(states)
        log.info("restored random-number generator states from the checkpoint")


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing ``metrics.csv`` is kept and appended to."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = sorted(next(csv.reader(f), []))


class AppendingCSVLogger(CSVLogger):
    """``lightning.pytorch.loggers.CSVLogger`` that appends to an existing ``metrics.csv``.

    Used with :func:`prepare_csv_log`, which removes a stale log for a fresh run and trims the
    unfinished epoch for a resumed one. Same arguments as ``CSVLogger``.
    """

    @property
    def experiment(self) -> ExperimentWriter:
        """The CSV writer, which appends to an existing ``metrics.csv`` instead of deleting it."""
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def resolve_ckpt_path(ckpt_path: str | None, output_dir: str | Path) -> str | None:
    """Turn ``ckpt_path=last`` into ``<output_dir>/checkpoints/last.ckpt``.

    Args:
        ckpt_path: ``None``, ``"last"`` or a checkpoint file.
        output_dir: This run's directory (``hydra.run.dir``).

    Returns:
        The checkpoint file to resume from, or ``None``.

    Raises:
        FileNotFoundError: if the checkpoint file does not exist.
    """
    if ckpt_path in (None, ""):
        return None
    path = Path(output_dir) / "checkpoints" / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    if not path.is_file():
        hint = " (ckpt_path=last needs hydra.run.dir=<the killed run's directory>)" if ckpt_path == "last" else ""
        raise FileNotFoundError(f"ckpt_path: checkpoint {path} does not exist{hint}")
    return str(path)


def prepare_csv_log(metrics_csv: str | Path, resume_step: int | None) -> None:
    """Make ``metrics.csv`` ready for :class:`AppendingCSVLogger`.

    Args:
        metrics_csv: The run's ``csv/metrics.csv``.
        resume_step: ``None`` for a fresh run (an old file is removed, as Lightning would), else
            the ``global_step`` stored in the checkpoint being resumed: rows logged at that step
            or later (the epoch that was killed part-way) are dropped, earlier rows kept.
    """
    path = Path(metrics_csv)
    if not path.is_file():
        return
    if resume_step is None:
        log.warning("removing the previous run's %s (fresh run in a used directory)", path)
        path.unlink()
        return
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        rows = list(reader)
    kept = [r for r in rows if not r.get("step") or int(float(r["step"])) < resume_step]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(kept)
    if len(kept) < len(rows):
        log.info("resume: dropped %d log rows of the unfinished epoch (step >= %d) from %s",
                 len(rows) - len(kept), resume_step, path)


def checkpoint_step(ckpt_path: str | Path) -> int:
    """The ``global_step`` stored in a Lightning checkpoint (optimiser steps taken)."""
    return int(read_checkpoint(ckpt_path)["global_step"])


def prepare_resume(ckpt_path: str | None, output_dir: str | Path, write_log: bool = True) -> str | None:
    """Resolve ``ckpt_path`` (``last`` allowed) and prepare this run's ``csv/metrics.csv`` for it.

    Args:
        ckpt_path: ``cfg.ckpt_path``: ``None`` for a fresh run, ``last``, or a checkpoint file.
        output_dir: This run's directory.
        write_log: Whether this process owns the log (``trainer.is_global_zero``; other DDP ranks
            only resolve the path).

    Returns:
        The checkpoint file to pass to ``trainer.fit``, or ``None``.

    Raises:
        FileNotFoundError: if the checkpoint does not exist.
    """
    path = resolve_ckpt_path(ckpt_path, output_dir)
    if not write_log:
        return path
    prepare_csv_log(Path(output_dir) / "csv" / "metrics.csv", checkpoint_step(path) if path else None)
    if path:
        log.info("resuming from %s", path)
    return path
