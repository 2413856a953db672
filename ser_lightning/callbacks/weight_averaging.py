"""An exponential moving average (EMA) of the weights, on Lightning's own ``WeightAveraging`` callback.

``EMAWeights`` keeps, next to the trained model, ``ema = decay * ema + (1 - decay) * weights`` after every
optimiser step (Polyak & Juditsky 1992; the EMA form used e.g. by Tarvainen & Valpola 2017, "Mean
teachers", §3), with torch's :func:`~torch.optim.swa_utils.get_ema_multi_avg_fn` inside Lightning's
:class:`~lightning.pytorch.callbacks.WeightAveraging` (an ``AveragedModel`` of the whole LightningModule,
buffers included). ``WeightAveraging`` swaps the averaged weights in for every validation epoch, writes
them as the checkpoint's ``state_dict`` (the raw weights under ``current_model_state``) and copies them
into the model when training ends: so the averaged weights are the ones validated (and therefore the
ones the best-checkpoint selection and early stopping see), checkpointed and tested.

Two differences from Lightning's own ``EMAWeightAveraging``:

- torch's EMA update ``decay * ema + (1 - decay) * w`` (``get_ema_avg_fn``, the one Lightning's class uses)
  does not return ``w`` exactly when ``ema == w`` (it changes about 1 in 10 float32 values by one unit in
  the last place), so a frozen encoder inside the model would drift; ``get_ema_multi_avg_fn`` uses
  ``torch._foreach_lerp_``, which leaves equal values exactly as they are, so a frozen encoder keeps its
  installed weights bit for bit (its SHA-256 is what head-only checkpoints and the feature cache key on).
- ``WeightAveraging.on_load_checkpoint`` loads the raw weights (``current_model_state``) into the model
  whenever its averaged model exists, also when ``trainer.test(ckpt_path=...)`` runs after ``fit`` on the
  same trainer (``train.py``'s test of ``best.ckpt``): the test would score the raw weights. Outside
  fitting, this callback leaves the checkpoint's ``state_dict`` — the averaged weights — in place.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.trainer.states import TrainerFn
from torch.optim.swa_utils import get_ema_multi_avg_fn


class EMAWeights(WeightAveraging):
    """EMA of all weights and buffers, updated after optimiser steps (``callbacks=ema``).

    The first update copies the weights; each later one applies ``ema <- decay * ema + (1 - decay) * w``
    (torch's ``get_ema_multi_avg_fn``). With ``B`` optimiser steps per epoch the average spans about
    ``1 / (1 - decay)`` steps: 0.99 ≈ 100 steps ≈ 3 epochs of a RAVDESS head at 32 clips per batch.

    Args:
        decay: In (0, 1): the weight of the running average at each update.
        start_step: First optimiser step (zero-based) that updates the average.
        every_n_steps: Update after every ``every_n_steps``-th optimiser step from ``start_step`` on.
        device: Where the averaged copy lives (``None``: the model's device; ``"cpu"`` saves GPU memory).

    Raises:
        ValueError: a setting out of range (named as ``callbacks.ema.<setting>``).
    """

    def __init__(self, decay: float = 0.99, start_step: int = 0, every_n_steps: int = 1,
                 device: str | None = None) -> None:
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not math.isfinite(decay) \
                or not 0.0 < decay < 1.0:
            raise ValueError(f"callbacks.ema.decay={decay!r} must be a number in (0, 1) (e.g. 0.99)")
        if isinstance(start_step, bool) or not isinstance(start_step, int) or start_step < 0:
            raise ValueError(f"callbacks.ema.start_step={start_step!r} must be an integer >= 0")
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(f"callbacks.ema.every_n_steps={every_n_steps!r} must be an integer >= 1")
        super().__init__(device=device, use_buffers=True, multi_avg_fn=get_ema_multi_avg_fn(float(decay)))
        self.decay = float(decay)
        self.start_step = start_step
        self.every_n_steps = every_n_steps

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        """Update after optimiser step ``step_idx`` (zero-based) from ``start_step`` on, every ``every_n_steps``;
        never at an epoch's end."""
        return step_idx is not None and step_idx >= self.start_step and \
            (step_idx - self.start_step) % self.every_n_steps == 0

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        """Resume the average while fitting (Lightning's behaviour); outside fitting (test, validate,
        predict with ``ckpt_path``) keep the checkpoint's averaged ``state_dict`` in the model."""
        if trainer.state.fn != TrainerFn.FITTING:
            return
        super().on_load_checkpoint(trainer, pl_module, checkpoint)
