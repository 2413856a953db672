"""Optimiser and learning-rate schedule from plain config values (``optim:`` in ``conf/train.yaml``).

Schedules:

* ``onecycle`` – ``OneCycleLR`` stepped per batch over the whole run (report 003 §4.2 uses Adam with
  one-cycle; ``pct_start`` 0 gives its "half-cycle" variant without warm-up).
* ``cosine`` – ``CosineAnnealingLR`` per epoch down to ``min_lr``.
* ``none`` – constant learning rate.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
SCHEDULERS = ("onecycle", "cosine", "none")


def param_groups(module: torch.nn.Module, lr: float, backbone_lr_mult: float = 1.0) -> list[dict]:
    """Parameter groups: a pretrained backbone at ``lr * backbone_lr_mult``, everything else at ``lr``.

    A network exposing ``backbone_parameters()`` (e.g. the timm backbones) gets two groups;
    frozen parameters (``requires_grad=False``) are left out.

    Args:
        module: Module whose trainable parameters are grouped (the network may be ``module.network``).
        lr: Head learning rate.
        backbone_lr_mult: Backbone learning-rate multiplier (report 003 fine-tunes backbones gently).

    Returns:
        A list of ``{"params", "lr"}`` dicts for a torch optimiser.
    """
    net = getattr(module, "network", module)
    backbone = {id(p) for p in net.backbone_parameters()} if hasattr(net, "backbone_parameters") else set()
    trainable = [p for p in module.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trainable if id(p) in backbone], "lr": lr * backbone_lr_mult},
        {"params": [p for p in trainable if id(p) not in backbone], "lr": lr},
    ]
    return [g for g in groups if g["params"]]


def build_optimizers(module: pl.LightningModule, cfg: dict[str, Any], backbone_lr_mult: float = 1.0):
    """Build what ``LightningModule.configure_optimizers`` returns.

    Args:
        module: The module (its trainer gives the step and epoch budget).
        backbone_lr_mult: Learning-rate multiplier of a pretrained backbone (see :func:`param_groups`).
        cfg: ``name`` (adam/adamw), ``lr``, ``weight_decay``, ``scheduler``
            (onecycle/cosine/none), ``pct_start`` (one-cycle warm-up fraction), ``min_lr``.

    Returns:
        An optimiser, or ``{"optimizer", "lr_scheduler"}``.

    Raises:
        ValueError: unknown optimiser or scheduler, or a non-positive learning rate.
    """
    name = cfg.get("name", "adamw")
    sched = cfg.get("scheduler", "onecycle")
    lr = float(cfg.get("lr", 1e-3))
    if name not in OPTIMIZERS:
        raise ValueError(f"optim.name={name!r} is not one of {sorted(OPTIMIZERS)}")
    if sched not in SCHEDULERS:
        raise ValueError(f"optim.scheduler={sched!r} is not one of {list(SCHEDULERS)}")
    if lr <= 0:
        raise ValueError(f"optim.lr={lr} must be positive")
    groups = param_groups(module, lr, backbone_lr_mult)
    opt = OPTIMIZERS[name](groups, lr=lr, weight_decay=float(cfg.get("weight_decay", 0.0)))
    if sched == "none":
        return opt
    if sched == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=[g["lr"] for g in groups],
            total_steps=max(1, int(module.trainer.estimated_stepping_batches)),
            pct_start=float(cfg.get("pct_start", 0.3)),
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
    epochs = module.trainer.max_epochs if module.trainer.max_epochs and module.trainer.max_epochs > 0 else 100
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=float(cfg.get("min_lr", 0.0)))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
