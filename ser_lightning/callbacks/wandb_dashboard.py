"""``WandbDashboard``: what a W&B run shows beyond Lightning's per-epoch metrics.

Active only when a :class:`~lightning.pytorch.loggers.WandbLogger` is among ``trainer.loggers``
(every hook returns at once otherwise, and ``wandb`` is never imported). ``build_callbacks`` in
:mod:`ser_lightning.cli.common` adds it by itself whenever ``logger:`` configures a W&B logger.
It logs, on global rank zero only:

* the whole composed Hydra config, resolved, as the run config (plus the command-line overrides
  under ``overrides``); Lightning's ``log_hyperparams`` only sees the module's hyperparameters;
* ``params_total`` and ``params_trainable`` in the run summary;
* ``augment/examples``: log-mel (or MFCC) features of a few clips of the first training batch
  before augmentation (the frontend on the raw waveforms) and after it (waveform augmentation,
  frontend, SpecAugment: exactly what the network was trained on);
* at test end: ``test/confusion_matrix`` (interactive W&B chart), ``test/confusion_matrix_image``
  (the same PNG as the run directory's ``confusion_matrix.png``), ``test/per_class`` (table of
  precision, recall, F1, support per class) and ``test/recall/<class>`` summary values, which W&B
  can average over a group of runs (e.g. cross-validation folds);
* with ``log_best_checkpoint``: the best checkpoint as a ``model`` artifact at the end of ``fit``.
  This works offline too (``wandb sync`` uploads it later), unlike Lightning's own ``log_model``.

Works offline (``WANDB_MODE=offline``): images and tables land in
``<save_dir>/wandb/offline-run-*/files/media/``, everything else in the run's ``.wandb`` file.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import matplotlib.pyplot as plt
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities.model_helpers import is_overridden

from ser_lightning.evaluation.report import plot_confusion  # also selects matplotlib's Agg backend

log = logging.getLogger(__name__)

EXAMPLES_KEY = "augment/examples"
PER_CLASS_COLUMNS = ["class", "precision", "recall", "f1", "support", "predicted"]


def per_class_rows(confusion: Sequence[Sequence[int]], labels: Sequence[str]) -> list[list[Any]]:
    """Per-class precision, recall, F1, support and prediction count from a confusion matrix.

    Args:
        confusion: Counts ``(n_classes, n_classes)``; rows = true class, columns = predicted class.
        labels: Class names in index order.

    Returns:
        One row per class, in the order of :data:`PER_CLASS_COLUMNS`. Precision (no predictions
        of the class) and recall (no items of the class) are ``None`` where undefined; F1 is
        ``2·TP / (support + predicted)`` (0 when the class is never hit, as in torchmetrics'
        macro-F1), ``None`` only when the class neither occurs nor is predicted.

    Raises:
        ValueError: if ``confusion`` is not square with one row per label.
    """
    cm = np.asarray(confusion, dtype=np.int64)
    if cm.ndim != 2 or cm.shape != (len(labels), len(labels)):
        raise ValueError(f"confusion matrix of shape {cm.shape} does not match {len(labels)} labels")
    support, predicted, hits = cm.sum(axis=1), cm.sum(axis=0), np.diag(cm)
    rows = []
    for i, name in enumerate(labels):
        precision = float(hits[i] / predicted[i]) if predicted[i] else None
        recall = float(hits[i] / support[i]) if support[i] else None
        f1 = float(2 * hits[i] / (support[i] + predicted[i])) if support[i] + predicted[i] else None
        rows.append([str(name), precision, recall, f1, int(support[i]), int(predicted[i])])
    return rows


def plot_augmentation_examples(before: torch.Tensor, after: torch.Tensor, titles: Sequence[str]):
    """Figure with one row per clip: features before (left) and after (right) augmentation.

    Both panels of a row share the colour scale of the "before" panel, so masked or
    noise-filled regions stand out. Only channel 0 is drawn (pseudo-RGB inputs repeat it).

    Args:
        before: Features ``(clips, channels, n_feats, frames)`` of the un-augmented waveforms.
        after: Features of the same clips after augmentation, same shape as ``before``.
        titles: One row label per clip (e.g. the class name).

    Returns:
        A ``matplotlib.figure.Figure`` (the caller closes it).

    Raises:
        ValueError: if the shapes differ, are not 4-D, or ``titles`` has the wrong length.
    """
    if before.dim() != 4 or before.shape != after.shape:
        raise ValueError(f"expected two equal (clips, channels, n_feats, frames) shapes, got "
                         f"{tuple(before.shape)} and {tuple(after.shape)}")
    n = before.shape[0]
    if len(titles) != n:
        raise ValueError(f"{len(titles)} titles for {n} clips")
    b = before[:, 0].detach().float().cpu().numpy()
    a = after[:, 0].detach().float().cpu().numpy()
    fig, axes = plt.subplots(n, 2, figsize=(9, 2.2 * n), squeeze=False, sharex=True, sharey=True)
    for i in range(n):
        vmin, vmax = float(b[i].min()), float(b[i].max())
        for j, (img, label) in enumerate([(b[i], "before augmentation"),
                                          (a[i], "after (waveform aug. + SpecAugment)")]):
            ax = axes[i, j]
            ax.imshow(img, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_title(f"{titles[i]}: {label}", fontsize=9)
        axes[i, 0].set_ylabel("feature bin")
    for ax in axes[-1]:
        ax.set_xlabel("frame")
    fig.tight_layout()
    return fig


class WandbDashboard(pl.Callback):
    """Log the run config, parameter counts, augmentation examples, test confusion matrix,
    per-class table and (optionally) the best checkpoint to every ``WandbLogger`` of the trainer.

    A no-op when the trainer has no ``WandbLogger``. See the module docstring for the logged keys.

    Args:
        run_config: The whole composed config, resolved to plain containers; logged as the run
            config (``None``: nothing beyond Lightning's hyperparameters).
        num_examples: Clips of the first training batch drawn before/after augmentation
            (0 disables the figure).
        log_best_checkpoint: Log the best checkpoint as a ``model`` artifact at the end of fit.

    Raises:
        ValueError: if ``num_examples`` is negative.
    """

    def __init__(self, run_config: dict[str, Any] | None = None, num_examples: int = 4,
                 log_best_checkpoint: bool = False) -> None:
        super().__init__()
        if int(num_examples) < 0:
            raise ValueError(f"num_examples={num_examples} must be >= 0")
        self.run_config = run_config
        self.num_examples = int(num_examples)
        self.log_best_checkpoint = bool(log_best_checkpoint)
        self._examples_logged = False
        self._raw: tuple[torch.Tensor, torch.Tensor] | None = None
        self._patched_dm: Any = None

    # --------------------------------------------------------------------------------- helpers
    @staticmethod
    def _experiments(trainer: pl.Trainer) -> list[Any]:
        """W&B runs of the trainer's W&B loggers (empty off global rank zero or without one)."""
        if not trainer.is_global_zero:
            return []
        return [lg.experiment for lg in trainer.loggers if isinstance(lg, WandbLogger)]

    def _log(self, trainer: pl.Trainer, data: dict[str, Any]) -> None:
        for run in self._experiments(trainer):
            run.log({**data, "trainer/global_step": trainer.global_step})

    def _log_config_and_sizes(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        params = list(pl_module.parameters())
        sizes = {"params_total": sum(p.numel() for p in params),
                 "params_trainable": sum(p.numel() for p in params if p.requires_grad)}
        for run in self._experiments(trainer):
            if self.run_config is not None:
                run.config.update(self.run_config, allow_val_change=True)
            run.summary.update(sizes)

    # ----------------------------------------------------------------------------------- hooks
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Run config (after Lightning's ``log_hyperparams``, so the full config wins) and sizes."""
        self._log_config_and_sizes(trainer, pl_module)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Same as :meth:`on_train_start`, for test-only runs (``eval.py``)."""
        self._log_config_and_sizes(trainer, pl_module)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Before the first training batch: start recording its raw waveforms.

        The datamodule's ``on_after_batch_transfer`` augments, extracts features and applies
        SpecAugment in one go, so the un-augmented waveforms are only visible there: for one
        batch, that hook is wrapped (on the instance) to keep a copy of the first clips.
        """
        if self._examples_logged or not self.num_examples or not self._experiments(trainer):
            return
        dm = trainer.datamodule
        if dm is None or not is_overridden("on_after_batch_transfer", dm, pl.LightningDataModule):
            log.info("W&B: no datamodule transforming batches on the device, so no augmentation examples")
            self._examples_logged = True
            return
        original = dm.on_after_batch_transfer

        def recording(batch, dataloader_idx: int = 0, **kwargs):
            if self._raw is None and trainer.training and isinstance(batch, (tuple, list)) and len(batch) == 2:
                wave, target = batch
                self._raw = (wave[: self.num_examples].detach().clone(), target[: self.num_examples].detach().clone())
            return original(batch, dataloader_idx, **kwargs)

        dm.on_after_batch_transfer = recording
        self._patched_dm = dm

    def _unpatch(self) -> None:
        dm, self._patched_dm = self._patched_dm, None
        if dm is not None and "on_after_batch_transfer" in vars(dm):
            del dm.on_after_batch_transfer

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        """Log ``augment/examples`` for the first training batch, then stop recording."""
        dm = self._patched_dm
        if dm is None:
            return
        self._unpatch()
        raw, self._raw = self._raw, None
        self._examples_logged = True
        after = batch[0] if isinstance(batch, (tuple, list)) else None
        if raw is None or not torch.is_tensor(after) or after.dim() != 4:
            log.info("W&B: the training batches are not spectrograms, so no augmentation examples")
            return
        wave, target = raw
        n = len(wave)
        before, _ = dm.on_after_batch_transfer((wave, target), training=False)  # the same batch path, not augmented
        names = list(getattr(pl_module, "class_names", []))
        titles = [names[int(t)] if int(t) < len(names) else str(int(t)) for t in target]
        import wandb

        fig = plot_augmentation_examples(before, after[:n], titles)
        try:
            self._log(trainer, {EXAMPLES_KEY: wandb.Image(fig, caption="left: before, right: after augmentation")})
        finally:
            plt.close(fig)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Stop recording if no training batch came."""
        self._unpatch()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """Restore the datamodule's hook on failure."""
        self._unpatch()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """``<monitor>_best`` (e.g. ``val/ua_best``, the metric of the W&B sweeps in ``sweeps/``) in
        the summary; with ``log_best_checkpoint``: the best checkpoint as artifact ``model-<run id>``."""
        runs = self._experiments(trainer)
        ckpt = trainer.checkpoint_callback
        if ckpt is not None and ckpt.monitor and ckpt.best_model_score is not None:
            for run in runs:
                run.summary[f"{ckpt.monitor}_best"] = float(ckpt.best_model_score)
        if not self.log_best_checkpoint:
            return
        path = ckpt.best_model_path if ckpt is not None else ""
        if not runs:
            return
        if not path or not Path(path).is_file():
            log.warning("W&B: log_model=true but there is no best checkpoint to log")
            return
        import wandb

        score = ckpt.best_model_score
        metadata = {"monitor": ckpt.monitor, "score": float(score) if score is not None else None,
                    "original_filename": Path(path).name}
        for run in runs:
            artifact = wandb.Artifact(name=f"model-{run.id}", type="model", metadata=metadata)
            artifact.add_file(path, name="model.ckpt")
            run.log_artifact(artifact, aliases=["best", "latest"])
        log.info("W&B: logged %s as artifact model-<run id>", path)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Confusion matrix (chart and image), per-class table and per-class recall summary."""
        runs = self._experiments(trainer)
        results = getattr(pl_module, "test_results", None) or {}
        if not runs or "confusion_matrix" not in results:
            return
        import wandb

        labels = [str(x) for x in results["labels"]]
        cm = np.asarray(results["confusion_matrix"], dtype=np.int64)
        rows = per_class_rows(cm, labels)
        idx = np.arange(len(labels))
        y_true = np.repeat(idx, cm.sum(axis=1)).tolist()
        y_pred = np.concatenate([np.repeat(idx, cm[i]) for i in idx]).tolist()
        metrics = trainer.callback_metrics
        title = " ".join(f"{k.split('/')[-1].upper()} {float(metrics[k]):.3f}"
                         for k in ("test/ua", "test/wa") if k in metrics)
        with tempfile.TemporaryDirectory() as tmp:
            png = Path(tmp) / "confusion_matrix.png"
            plot_confusion(cm, labels, png, title=title)
            self._log(trainer, {
                "test/confusion_matrix": wandb.plot.confusion_matrix(y_true=y_true, preds=y_pred, class_names=labels),
                "test/confusion_matrix_image": wandb.Image(str(png)),
                "test/per_class": wandb.Table(columns=PER_CLASS_COLUMNS, data=rows),
            })
        recall = {f"test/recall/{r[0]}": r[2] for r in rows if r[2] is not None}
        for run in runs:
            run.summary.update(recall)
