"""``eval.py``: re-test a checkpoint on a chosen split and write the same ``metrics.json``.

The datamodule is rebuilt from the settings stored in the checkpoint (label set, corpora,
preprocessing, split seed and fold), so the split is exactly the training run's; ``data.*``
overrides (``data.root``, ``data.cache_dir``, ...) are applied on top.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from ser_lightning.cli.common import build_trainer, quiet_known_warnings
from ser_lightning.cli.report import collect_metrics, write_metrics
from ser_lightning.data.datamodule import SERDataModule
from ser_lightning.modules.classifier import SERClassifier

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict:
    """Evaluate ``cfg.ckpt_path`` on ``cfg.split``.

    Args:
        cfg: The composed ``conf/eval.yaml`` (``ckpt_path``, ``split``, ``data`` overrides).

    Returns:
        The metrics written to ``metrics.json``.

    Raises:
        FileNotFoundError: the checkpoint does not exist.
        ValueError: the checkpoint holds no datamodule settings, or its labels differ from the data's.
    """
    quiet_known_warnings()
    ckpt = Path(cfg.ckpt_path).expanduser()
    if not ckpt.is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt}: no such checkpoint file")
    out_dir = Path(cfg.paths.output_dir)
    stored = torch.load(ckpt, map_location="cpu", weights_only=False)
    dm_hp = dict(stored.get("datamodule_hyper_parameters") or {})
    if not dm_hp:
        raise ValueError(f"{ckpt}: checkpoint holds no datamodule settings (was it written by train.py?)")
    overrides = OmegaConf.to_container(cfg.get("data") or {}, resolve=True)
    dm = SERDataModule(**{**dm_hp, **overrides, "test_split": cfg.split, "run_dir": str(out_dir)})
    model = SERClassifier.load_from_checkpoint(ckpt, map_location="cpu")
    if list(model.class_names) != dm.class_names:
        raise ValueError(f"{ckpt}: model labels {model.class_names} differ from data labels {dm.class_names} "
                         f"(data.label_set={dm.label_set.name})")
    dm.setup("test")
    trainer = build_trainer(cfg)
    logged = trainer.test(model, datamodule=dm, verbose=False)
    metrics = collect_metrics(logged[0], model.test_results, cfg.split)
    metrics.update(checkpoint=str(ckpt.resolve()), run_dir=str(out_dir))
    write_metrics(metrics, out_dir)
    log.info("%s UA %.4f  WA %.4f  macro-F1 %.4f", cfg.split, metrics["ua"], metrics["wa"], metrics["macro_f1"])
    return metrics
