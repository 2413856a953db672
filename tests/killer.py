"""Test helper callback: SIGKILL the training process part-way through an epoch."""

import os
import signal

import lightning.pytorch as pl


class KillMidEpoch(pl.Callback):
    """Kill the process (SIGKILL: no cleanup, like an OOM kill or a pre-empted node) at
    ``batch`` of ``epoch``."""

    def __init__(self, epoch: int, batch: int = 1):
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):  # noqa: D102
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), signal.SIGKILL)
