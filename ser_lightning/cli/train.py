"""``train.py``: fit with early stopping on validation UA, keep the best checkpoint, test it.

The run directory (Hydra's output dir) ends up holding ``.hydra/`` (composed config and
overrides), ``config_resolved.yaml``, ``split.csv``, ``skipped.csv``, ``class_counts.csv``,
``checkpoints/best.ckpt`` and ``last.ckpt``, ``csv/metrics.csv`` (per-epoch log),
``metrics.json`` (test UA, WA, macro-F1, per-class recall, confusion matrix, label names) and
``confusion_matrix.png``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ser_lightning.cli.callbacks import EpochTimer
from ser_lightning.cli.common import build_trainer, finish_wandb, quiet_known_warnings
from ser_lightning.cli.report import collect_metrics, write_metrics
from ser_lightning.cli.resume import prepare_resume
from ser_lightning.modules.classifier import SERClassifier

log = logging.getLogger(__name__)


def _plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}


def build_datamodule(cfg: DictConfig, run_dir: str | Path | None):
    """Instantiate ``cfg.data`` (a ``SERDataModule``) with ``cfg.augment`` and the run directory."""
    return instantiate(cfg.data, augment=_plain(cfg.get("augment")), run_dir=str(run_dir) if run_dir else None,
                       _convert_="all")


def build_module(cfg: DictConfig, dm) -> SERClassifier:
    """``SERClassifier`` from ``cfg.model``, ``cfg.features``, ``cfg.optim`` and ``cfg.loss``."""
    loss = _plain(cfg.get("loss"))
    return SERClassifier(
        model=_plain(cfg.model),
        features=_plain(cfg.features),
        class_names=dm.class_names,
        optim=_plain(cfg.get("optim")),
        label_smoothing=float(loss.get("label_smoothing", 0.0)),
        class_weights=loss.get("class_weights"),
        class_counts=dm.train_class_counts(),
        num_samples=dm.audio_cfg.num_samples,
    )


def train(cfg: DictConfig) -> float | None:
    """Train and test one configuration.

    Args:
        cfg: The composed ``conf/train.yaml``.

    Returns:
        The value of ``cfg.optimized_metric`` (e.g. best ``val/ua``) for Hydra sweepers, or
        ``None`` when it was not logged.
    """
    quiet_known_warnings()
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    pl.seed_everything(cfg.seed, workers=True)
    start = time.perf_counter()

    dm = build_datamodule(cfg, out_dir)
    dm.prepare_data()
    dm.setup("fit")
    model = build_module(cfg, dm)
    n_params = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        input_shape = list(model.frontend(torch.zeros(1, dm.audio_cfg.num_samples)).shape[1:])
    log.info("model %s: %d parameters", cfg.model.name, n_params)

    trainer = build_trainer(cfg)
    try:
        trainer.fit(model, datamodule=dm, ckpt_path=prepare_resume(cfg.get("ckpt_path"), out_dir))
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        logged = trainer.test(model, datamodule=dm, ckpt_path=best or None, verbose=False)
        metrics = collect_metrics(logged[0], model.test_results, dm.hparams.test_split)
        best_val = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
        timers = [c for c in trainer.callbacks if isinstance(c, EpochTimer)]
        epoch_s = timers[0].epoch_times_s if timers and timers[0].epoch_times_s else None
        metrics.update(
            best_checkpoint=best or None,
            best_val_ua=float(best_val) if best_val is not None else None,
            epochs=int(trainer.current_epoch),
            parameters=int(n_params),
            input_shape=input_shape,
            train_epoch_s=round(sum(epoch_s) / len(epoch_s), 2) if epoch_s else None,
            wall_time_s=round(time.perf_counter() - start, 1),
            model=cfg.model.name,
            run_dir=str(out_dir),
        )
        if hasattr(model.network, "member_weights"):  # report 000's jointly trained ensemble
            metrics["member_weights"] = model.network.member_weights()
            log.info("learned ensemble weights: %s", metrics["member_weights"])
        path = write_metrics(metrics, out_dir)
        log.info("test UA %.4f  WA %.4f  macro-F1 %.4f  (%s)", metrics["ua"], metrics["wa"], metrics["macro_f1"], path)
    finally:
        finish_wandb()
    name = cfg.get("optimized_metric")
    if name == "val/ua" and metrics["best_val_ua"] is not None:
        return metrics["best_val_ua"]
    value = trainer.callback_metrics.get(name) if name else None
    return float(value) if value is not None else None
