"""A smoothed validation metric for checkpoint selection (``callbacks=smoothed_selection``).

With 4 validation speakers (240 RAVDESS clips) the validation UA of one epoch is noisy: the best single
epoch partly picks the luckiest draw. Selecting on the mean of the last few epochs' values instead
prefers an epoch whose neighbourhood is good as well.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch


class SmoothedMetric(pl.Callback):
    """Adds the trailing mean of a logged validation metric over the last ``window`` epochs.

    At the end of every validation run (sanity checks excepted) it reads ``monitor`` (e.g. ``val/ua``)
    from ``trainer.callback_metrics``, and writes ``name`` = the mean of its last ``window`` epoch values
    (fewer at the start) into ``trainer.callback_metrics`` and the loggers, before the checkpoint
    callback reads it (Lightning runs checkpoint callbacks after every other callback), so
    ``callbacks.model_checkpoint.monitor=<name>`` selects on it. The mean is trailing (causal): the
    checkpoint saved at epoch ``e`` holds epoch ``e``'s weights, scored by epochs ``e - window + 1 … e``.

    Args:
        monitor: The logged metric to smooth.
        window: Epochs in the mean (1: the metric itself).
        name: Name of the smoothed metric; default ``<monitor>_smooth<window>``.

    Raises:
        ValueError: ``window`` below 1.
        KeyError: (at the first validation end) ``monitor`` was not logged.
    """

    def __init__(self, monitor: str = "val/ua", window: int = 3, name: str | None = None) -> None:
        if int(window) != window or window < 1:
            raise ValueError(f"callbacks.smoothed_selection.window={window!r} must be a whole number of epochs >= 1")
        self.monitor, self.window = monitor, int(window)
        self.name = name or f"{monitor}_smooth{self.window}"
        self.history: list[float] = []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Append this epoch's value and publish the trailing mean as :attr:`name`."""
        if trainer.sanity_checking:
            return
        if self.monitor not in trainer.callback_metrics:
            raise KeyError(f"callbacks.smoothed_selection.monitor={self.monitor!r} was not logged; logged: "
                           f"{sorted(trainer.callback_metrics)}")
        self.history.append(float(trainer.callback_metrics[self.monitor]))
        recent = self.history[-self.window:]
        value = torch.tensor(sum(recent) / len(recent))
        trainer.callback_metrics[self.name] = value
        for logger in trainer.loggers:
            logger.log_metrics({self.name: float(value)}, step=trainer.global_step)

    def state_dict(self) -> dict:
        """The values seen so far (a resumed run continues the same mean)."""
        return {"history": list(self.history)}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the values seen so far."""
        self.history = list(state_dict.get("history", []))
