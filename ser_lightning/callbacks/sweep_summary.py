"""One table for a Hydra multirun: per-job test metrics, their mean ± standard deviation, and a
per-job chart.

Hydra calls :class:`SweepSummary` when a multirun ends (``conf/hydra/default.yaml`` registers it),
so ``python train.py -m data.split=kfold 'data.fold=range(6)'`` leaves ``summary.csv``,
``summary.md`` and ``per_fold.png`` in the sweep directory. It works for any sweep (grid, Optuna,
k-fold): each job directory that holds a ``metrics.json`` becomes one row, labelled by its
overrides (the tables and chart: :mod:`ser_lightning.evaluation.results`). Re-run it by hand on a
finished or partly finished sweep::

    python -m ser_lightning.cli.results summary multirun/train/2026-11-21_10-00-00
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ser_lightning.evaluation.results import METRICS, collect_jobs, write_summary

__all__ = ["METRICS", "SweepSummary", "collect_jobs", "main", "write_summary"]


class SweepSummary(Callback):
    """Hydra callback: at the end of a multirun, write :func:`write_summary` into the sweep dir."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Write ``summary.csv`` / ``summary.md`` / ``per_fold.png`` into ``config.hydra.sweep.dir``."""
        write_summary(config.hydra.sweep.dir)


def main(argv: list[str] | None = None) -> None:
    """``python -m ser_lightning.callbacks.sweep_summary SWEEP_DIR``: (re)write a sweep's summary."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep_dir")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = write_summary(args.sweep_dir)
    if out:
        print(out[1].read_text())


if __name__ == "__main__":
    main()
