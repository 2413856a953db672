"""Test helper callback: make a multi-process run hang the way a real one does.

At the start of ``fit`` each process writes its process id to ``<marker_dir>/rank<k>.pid``; then rank 0
waits in a collective (``torch.distributed.barrier``) that no other process joins, blocked inside
torch's C++ code where no Python signal handler can run, and every other rank sleeps.
"""

import os
import time
from pathlib import Path

import lightning.pytorch as pl
import torch


class HangInFit(pl.Callback):
    """Hang every process of the run at the start of ``fit`` (see the module docstring)."""

    def __init__(self, marker_dir: str):
        self.marker_dir = Path(marker_dir)

    def on_train_start(self, trainer, pl_module):  # noqa: D102
        self.marker_dir.mkdir(parents=True, exist_ok=True)
        (self.marker_dir / f"rank{trainer.global_rank}.pid").write_text(str(os.getpid()))
        if trainer.global_rank == 0:
            torch.distributed.barrier()
        else:
            time.sleep(3600)
