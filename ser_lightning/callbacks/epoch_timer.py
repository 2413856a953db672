"""Project callbacks."""

from __future__ import annotations

import time

import lightning.pytorch as pl


class EpochTimer(pl.Callback):
    """Logs the wall time of every training epoch as ``time/train_epoch_s`` (seconds).

    Measured from ``on_train_epoch_start`` to ``on_train_epoch_end``, so it includes the
    validation loop that Lightning runs at the end of each training epoch.

    ``epoch_times_s`` keeps the list, so ``train.py`` can put the mean in ``metrics.json``
    (the model table's "CPU seconds per epoch").
    """

    def __init__(self) -> None:
        self.epoch_times_s: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start the clock."""
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Stop the clock and log the epoch time."""
        elapsed = time.perf_counter() - self._start
        self.epoch_times_s.append(elapsed)
        pl_module.log("time/train_epoch_s", elapsed, on_epoch=True, on_step=False)
