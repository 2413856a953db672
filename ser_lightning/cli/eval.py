"""``eval.py``: re-test a checkpoint (or an ensemble of checkpoints) on a chosen split and write
the same ``metrics.json`` as training.

The datamodule is rebuilt from the settings stored in the (first) checkpoint (label set, corpora,
preprocessing, split seed and fold), so the split is exactly the training run's; ``data.*``
overrides (``data.root``, ``data.cache_dir``, ...) are applied on top.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from ser_lightning.cli.common import build_trainer, quiet_known_warnings, single_device_overrides
from ser_lightning.cli.report import collect_metrics, write_metrics
from ser_lightning.data.datamodule import SERDataModule
from ser_lightning.modules.classifier import SERClassifier

log = logging.getLogger(__name__)

AUDIO_KEYS = ("sample_rate", "duration_s", "normalize", "trim_silence", "pad_mode", "crop")


def _stored_datamodule(ckpt: Path) -> dict:
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt}: no such checkpoint file")
    stored = torch.load(ckpt, map_location="cpu", weights_only=False)
    hp = dict(stored.get("datamodule_hyper_parameters") or {})
    if not hp:
        raise ValueError(f"{ckpt}: checkpoint holds no datamodule settings (was it written by train.py?)")
    return hp


def _fit_ensemble_weights(model: SERClassifier, dm: SERDataModule) -> list[float]:
    """Fit learned ensemble weights on the validation split."""
    probs, targets = [], []
    for wave, target in dm.val_dataloader():
        probs.append(model.network.member_probs(wave))
        targets.append(target)
    weights = model.network.fit_weights(torch.cat(probs, dim=1), torch.cat(targets))
    log.info("ensemble weights fitted on validation: %s", [round(w, 3) for w in weights])
    return weights


def evaluate(cfg: DictConfig) -> dict:
    """Evaluate ``cfg.ckpt_path`` (or ``model=ensemble`` with ``model.members``) on ``cfg.split``.

    A multi-process trainer (``trainer=ddp``, ``trainer=ddp_sim``) is replaced by one on its first
    device, so that no clip is counted twice.

    Args:
        cfg: The composed ``conf/eval.yaml`` (``ckpt_path``, ``split``, ``data`` overrides,
            optional ``model`` = the ensemble settings).

    Returns:
        The metrics written to ``metrics.json``.

    Raises:
        FileNotFoundError: a checkpoint does not exist.
        ValueError: no checkpoint given, a checkpoint without datamodule settings, labels that
            differ from the data's, or ensemble members trained on different audio settings.
    """
    quiet_known_warnings()
    out_dir = Path(cfg.paths.output_dir)
    overrides = OmegaConf.to_container(cfg.get("data") or {}, resolve=True)
    ensemble = cfg.get("model") is not None and cfg.model.get("name") == "ensemble"
    if ensemble:
        members = [Path(m).expanduser() for m in cfg.model.members]
        if not members:
            raise ValueError("model=ensemble needs model.members=[ckpt1,ckpt2,...]")
        stored = [_stored_datamodule(m) for m in members]
        for m, hp in zip(members[1:], stored[1:]):
            diff = [k for k in AUDIO_KEYS if hp.get(k) != stored[0].get(k)]
            if diff:
                raise ValueError(f"model.members: {m} was trained with other audio settings ({diff}) than {members[0]}")
        dm_hp, source = stored[0], members[0]
    else:
        if not cfg.get("ckpt_path"):
            raise ValueError("ckpt_path is required (or model=ensemble model.members=[...])")
        source = Path(cfg.ckpt_path).expanduser()
        dm_hp = _stored_datamodule(source)
    dm = SERDataModule(**{**dm_hp, **overrides, "test_split": cfg.split, "run_dir": str(out_dir)})
    if ensemble:
        model = SERClassifier(model=OmegaConf.to_container(cfg.model, resolve=True),
                              features={"name": "raw", "sample_rate": dm.audio_cfg.sample_rate},
                              class_names=dm.class_names)
    else:
        model = SERClassifier.load_from_checkpoint(source, map_location="cpu")
    if list(model.class_names) != dm.class_names:
        raise ValueError(f"{source}: model labels {model.class_names} differ from data labels {dm.class_names} "
                         f"(data.label_set={dm.label_set.name})")
    dm.setup("test")
    extra: dict = {}
    if ensemble:
        if cfg.model.combine == "learned":
            _fit_ensemble_weights(model, dm)
        extra = {"members": [str(m.resolve()) for m in members], "member_weights": model.network.member_weights(),
                 "combine": cfg.model.combine}
    trainer = build_trainer(cfg)
    if trainer.world_size > 1:
        # DistributedSampler would pad the split by repeating clips; one device counts each once.
        log.info("eval.py runs on one device, not the %d processes of trainer.strategy=%s: every clip counts once",
                 trainer.world_size, cfg.trainer.get("strategy", "auto"))
        trainer = build_trainer(cfg, **single_device_overrides(trainer))
    logged = trainer.test(model, datamodule=dm, verbose=False)
    metrics = collect_metrics(logged[0], model.test_results, cfg.split)
    metrics.update(checkpoint=str(source.resolve()), run_dir=str(out_dir), **extra)
    write_metrics(metrics, out_dir)
    log.info("%s UA %.4f  WA %.4f  macro-F1 %.4f", cfg.split, metrics["ua"], metrics["wa"], metrics["macro_f1"])
    return metrics
