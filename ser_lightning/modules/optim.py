"""Optimiser and learning-rate schedule from plain config values (``optim:`` in ``conf/train.yaml``).

Optimisers (``optim.name``): ``adam`` and ``adamw`` (torch defaults otherwise, β = 0.9 / 0.999), and
``lbfgs`` (:class:`~torch.optim.LBFGS`, full-batch quasi-Newton: the solver of scikit-learn's logistic
regression, for a linear probe on cached frozen features, ``conf/optim/lbfgs.yaml``). L-BFGS has one
parameter group and no weight decay of its own: ``weight_decay`` then becomes an L2 penalty
``weight_decay / 2 · Σ‖W‖²`` on the trainable weight matrices, added to the loss by the classifier
(:func:`l2_penalty`), and each optimiser step runs up to ``max_iter`` iterations with a
``line_search`` (``strong_wolfe`` or ``none``). It needs the whole training set in one batch
(``train.py`` builds the ``SERDataModule`` with ``full_batch_training=True`` for it, whatever ``data.batch_size``) and full
precision (Lightning refuses L-BFGS under mixed precision).

Schedules (``optim.scheduler``), all torch schedulers:

* ``onecycle`` – :class:`~torch.optim.lr_scheduler.OneCycleLR`, stepped per optimiser step over the
  whole run: from ``lr / div_factor`` up to ``lr`` during the first ``pct_start`` of the steps, then
  down to ``lr / (div_factor · final_div_factor)`` (report 003 §4.2; Adam β1 is cycled 0.95 → 0.85
  → 0.95 as torch does). Report 003's fine-tuning pair, "Adam 1e-4 with one-cycle, max 1e-3", is
  ``lr: 1e-3, div_factor: 10`` (torch's OneCycleLR ignores the optimiser's own lr and starts at
  ``max_lr / div_factor``).
* ``onecycle_half`` – report 003 §4.2's "Half Cycle Learning Rate": one-cycle with its warm-up
  skipped, i.e. the learning rate starts at ``lr`` on the first step and anneals (``anneal_strategy``:
  ``linear`` as in the report, or ``cos``) to ``min_lr`` at the last step, stepped per optimiser
  step; β1 is not cycled. Torch's ``OneCycleLR`` accepts ``pct_start=0`` but then never uses the peak
  (its first step is already at ``lr · (1 − 1/steps)``), so this is built from
  :class:`~torch.optim.lr_scheduler.LinearLR` / :class:`~torch.optim.lr_scheduler.CosineAnnealingLR`.
* ``cosine`` – :class:`~torch.optim.lr_scheduler.CosineAnnealingLR` per epoch from ``lr`` down to
  ``min_lr`` over ``trainer.max_epochs``.
* ``cosine_warm_restarts`` – :class:`~torch.optim.lr_scheduler.CosineAnnealingWarmRestarts` per
  epoch (report 000 §3.4): cosine from ``lr`` towards ``min_lr`` over ``t0_epochs`` epochs, then back
  to ``lr``; each later period is ``t_mult`` times longer. Stepped at epoch ends, so the learning rate
  is constant within an epoch and restarts exactly at epochs ``t0_epochs``, ``t0_epochs·(1 + t_mult)``, …
* ``none`` – constant learning rate.

Every schedule applies to all parameter groups alike (a pretrained backbone's group keeps its
``backbone_lr_mult`` ratio, see :func:`param_groups`).

Related training settings live elsewhere (``conf/trainer/*.yaml``, ``conf/callbacks/default.yaml``)
and are plain Lightning arguments:

* early stopping: ``callbacks.early_stopping.patience`` (epochs without a better
  ``callbacks.early_stopping.monitor``, default ``val/ua``); ``callbacks.early_stopping=null`` turns it off;
* gradient clipping: ``trainer.gradient_clip_val`` (null = off) and ``trainer.gradient_clip_algorithm``
  (``norm``: total L2 norm of all gradients, Lightning's default; ``value``: each element clamped; the
  trainer configs have no such key, so on the command line it is ``++trainer.gradient_clip_algorithm=value``);
* seeds: ``seed`` (``train.py`` calls ``lightning.pytorch.seed_everything(seed, workers=True)``);
* determinism: ``trainer.deterministic=true`` makes Lightning call
  ``torch.use_deterministic_algorithms(True)`` (on GPU also needs ``CUBLAS_WORKSPACE_CONFIG=:4096:8``).
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch

from ser_lightning.models.facts import network_facts

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "lbfgs": torch.optim.LBFGS}
LINE_SEARCHES = ("strong_wolfe", "none")
SCHEDULERS = ("onecycle", "onecycle_half", "cosine", "cosine_warm_restarts", "none")
ANNEAL_STRATEGIES = ("cos", "linear")
#: Every key ``optim:`` may hold, with its default.
DEFAULTS: dict[str, Any] = {
    "name": "adamw",
    "lr": 1e-3,
    "weight_decay": 0.0,
    "scheduler": "onecycle",
    "pct_start": 0.3,
    "div_factor": 25.0,
    "final_div_factor": 1e4,
    "anneal_strategy": "cos",
    "t0_epochs": 10,
    "t_mult": 1,
    "min_lr": 0.0,
    "max_iter": 20,
    "history_size": 10,
    "line_search": "strong_wolfe",
}


def param_groups(module: torch.nn.Module, lr: float, backbone_lr_mult: float = 1.0,
                 weight_decay: float = 0.0) -> list[dict]:
    """Parameter groups: a pretrained backbone at ``lr * backbone_lr_mult``, everything else at ``lr``.

    As the network's facts say (``NetworkFacts.parameter_groups``): a network with a pretrained backbone
    (``"backbone"``: ``backbone_parameters()``, e.g. the timm backbones) gets two groups; an encoder model
    (``"layerwise"``: ``parameter_groups`` + ``layer_decay``) gets its own groups with layer-wise
    learning-rate decay, ``backbone_lr_mult`` scaling every encoder group and no weight decay on
    biases, norms and layer weights; frozen parameters (``requires_grad=False``) are left out.

    Args:
        module: A ``SERClassifier`` (its ``network`` is grouped, with the rest of its trainable parameters) or
            a network.
        lr: Head learning rate.
        backbone_lr_mult: Backbone learning-rate multiplier (report 003 fine-tunes backbones gently).
        weight_decay: Weight decay of the encoder models' weight matrices (the other networks'
            groups take the optimiser's).

    Returns:
        A list of ``{"params", "lr"}`` dicts for a torch optimiser.
    """
    net = module.network if isinstance(module, pl.LightningModule) else module
    grouping = network_facts(net).parameter_groups
    if grouping == "layerwise":  # encoder models: layer-wise lr decay
        groups = net.parameter_groups(lr, layer_decay=net.layer_decay, weight_decay=weight_decay,
                                      encoder_lr_scale=backbone_lr_mult)
        inside = {id(p) for g in groups for p in g["params"]}
        rest = [p for p in module.parameters() if p.requires_grad and id(p) not in inside and
                all(p is not q for q in net.parameters())]
        return groups + ([{"params": rest, "lr": lr}] if rest else [])
    backbone = {id(p) for p in net.backbone_parameters()} if grouping == "backbone" else set()
    trainable = [p for p in module.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trainable if id(p) in backbone], "lr": lr * backbone_lr_mult},
        {"params": [p for p in trainable if id(p) not in backbone], "lr": lr},
    ]
    return [g for g in groups if g["params"]]


def check_optim_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Validate ``optim:`` settings and fill in defaults.

    Args:
        cfg: The ``optim:`` mapping; missing keys take :data:`DEFAULTS`.

    Returns:
        A complete settings dict (numbers converted to float/int).

    Raises:
        ValueError: naming the ``optim.<key>`` setting: an unknown key, optimiser, scheduler or
            anneal strategy; a non-positive ``lr``; a negative ``weight_decay``; ``pct_start`` outside
            ``[0, 1)``; ``div_factor`` or ``final_div_factor`` not positive; ``t0_epochs`` not a positive
            integer; ``t_mult`` not an integer ≥ 1; ``min_lr`` negative or not below ``lr``.
    """
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"optim.{unknown[0]} is not a known setting; optim keys are {sorted(DEFAULTS)}")
    c = {**DEFAULTS, **{k: v for k, v in cfg.items() if v is not None}}
    if c["name"] not in OPTIMIZERS:
        raise ValueError(f"optim.name={c['name']!r} is not one of {sorted(OPTIMIZERS)}")
    if c["scheduler"] not in SCHEDULERS:
        raise ValueError(f"optim.scheduler={c['scheduler']!r} is not one of {list(SCHEDULERS)}")
    if c["line_search"] not in LINE_SEARCHES:
        raise ValueError(f"optim.line_search={c['line_search']!r} is not one of {list(LINE_SEARCHES)}")
    if c["anneal_strategy"] not in ANNEAL_STRATEGIES:
        raise ValueError(f"optim.anneal_strategy={c['anneal_strategy']!r} is not one of {list(ANNEAL_STRATEGIES)}")
    for key in ("lr", "weight_decay", "pct_start", "div_factor", "final_div_factor", "min_lr"):
        c[key] = float(c[key])
        if not math.isfinite(c[key]):
            raise ValueError(f"optim.{key}={c[key]} must be a finite number")
    if c["lr"] <= 0:
        raise ValueError(f"optim.lr={c['lr']} must be positive")
    if c["weight_decay"] < 0:
        raise ValueError(f"optim.weight_decay={c['weight_decay']} must be >= 0")
    if not 0.0 <= c["pct_start"] < 1.0:
        raise ValueError(f"optim.pct_start={c['pct_start']} is the one-cycle warm-up fraction and must be in [0, 1)")
    for key in ("div_factor", "final_div_factor"):
        if c[key] <= 0:
            raise ValueError(f"optim.{key}={c[key]} must be positive")
    for key, low in (("t0_epochs", 1), ("t_mult", 1), ("max_iter", 1), ("history_size", 1)):
        value = c[key]
        if isinstance(value, bool) or int(value) != value or value < low:
            raise ValueError(f"optim.{key}={value} must be an integer >= {low}")
        c[key] = int(value)
    if not 0.0 <= c["min_lr"] < c["lr"]:
        raise ValueError(f"optim.min_lr={c['min_lr']} must be >= 0 and below optim.lr={c['lr']}")
    if c["name"] == "lbfgs" and c["scheduler"] != "none":
        raise ValueError(f"optim.name=lbfgs takes no learning-rate schedule (optim.scheduler={c['scheduler']}); "
                         "use optim=lbfgs or optim.scheduler=none")
    return c


def l2_penalty(module: torch.nn.Module, cfg: dict[str, Any]) -> torch.Tensor | None:
    """The explicit L2 penalty of ``optim.name=lbfgs``: ``weight_decay / 2 · Σ‖W‖²`` over trainable matrices.

    L-BFGS has no weight decay of its own; with this term the objective is scikit-learn's
    ``LogisticRegression`` one (``C = 1 / (weight_decay · n_train)``). Biases and normalisation
    parameters (tensors of fewer than 2 dimensions) are not penalised, as in the encoder models'
    parameter groups.

    Args:
        module: The module whose trainable parameters are penalised.
        cfg: The ``optim:`` settings.

    Returns:
        A scalar tensor, or ``None`` for other optimisers or ``weight_decay`` 0.
    """
    if (cfg or {}).get("name") != "lbfgs" or not float(cfg.get("weight_decay") or 0.0):
        return None
    matrices = [p for p in module.parameters() if p.requires_grad and p.ndim >= 2]
    return 0.5 * float(cfg["weight_decay"]) * sum(p.pow(2).sum() for p in matrices)


def same_objective_on_every_process(loss: torch.Tensor, strategy) -> torch.Tensor:
    """The loss a full-batch optimiser (L-BFGS) of a multi-process run sees: the same number in every process.

    L-BFGS decides from the loss values (the line search's sufficient-decrease test, the tolerance stops)
    how often it re-evaluates the objective, and every evaluation is a backward pass with its gradient
    all-reduce; processes that see different values (their own data, or rounding that differs between
    devices) take different numbers of evaluations and wait for each other for ever. The returned tensor's
    value is the mean of ``loss`` over the processes (all-reduced), its gradient that of ``loss`` (which
    DDP all-reduces in the backward pass), so every process's optimiser takes the same decisions.

    Args:
        loss: This process's scalar objective.
        strategy: The trainer's strategy (its ``reduce`` all-reduces over the processes).

    Returns:
        A scalar tensor equal to the processes' mean loss, with ``loss``'s gradient.
    """
    mean = strategy.reduce(loss.detach(), reduce_op="mean")
    return mean + (loss - loss.detach())


def _total_steps(module: pl.LightningModule, scheduler: str) -> int:
    """Optimiser steps of the whole run (``trainer.estimated_stepping_batches``).

    Raises:
        ValueError: when the run has no finite length (``max_epochs=-1`` and no ``max_steps``).
    """
    steps = module.trainer.estimated_stepping_batches
    if not math.isfinite(steps):
        raise ValueError(
            f"optim.scheduler={scheduler} needs a finite run: set trainer.max_epochs or trainer.max_steps"
        )
    return max(1, int(steps))


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: dict[str, Any], total_steps: int | None = None, max_epochs: int | None = None
) -> dict[str, Any] | None:
    """The learning-rate scheduler of ``cfg`` as a Lightning ``lr_scheduler`` dict.

    The optimiser's parameter groups must already hold their peak learning rates (``cfg["lr"]``,
    times the backbone multiplier where there is one).

    Args:
        optimizer: The optimiser to schedule.
        cfg: Settings as returned by :func:`check_optim_config`.
        total_steps: Optimiser steps of the whole run (``onecycle``, ``onecycle_half``).
        max_epochs: Epochs of the whole run (``cosine``; 100 when ``None`` or not positive).

    Returns:
        ``{"scheduler", "interval"}`` (``"step"`` for the one-cycle schedules, ``"epoch"`` for the
        cosine ones), or ``None`` for ``scheduler: none``.

    Raises:
        ValueError: ``total_steps`` missing for a per-step schedule.
    """
    sched = cfg["scheduler"]
    sch = torch.optim.lr_scheduler
    if sched == "none":
        return None
    if sched in ("onecycle", "onecycle_half"):
        if not total_steps or total_steps < 1:
            raise ValueError(f"optim.scheduler={sched} needs the run's number of optimiser steps")
        peaks = [g["lr"] for g in optimizer.param_groups]
        if sched == "onecycle":
            scheduler = sch.OneCycleLR(
                optimizer, max_lr=peaks, total_steps=total_steps, pct_start=cfg["pct_start"],
                anneal_strategy=cfg["anneal_strategy"], div_factor=cfg["div_factor"],
                final_div_factor=cfg["final_div_factor"],
            )
        else:
            # step k = 0 … total_steps − 1 runs at lr(k); lr(0) = peak, lr(total_steps − 1) = min_lr.
            anneal_steps = max(1, total_steps - 1)
            if cfg["anneal_strategy"] == "linear":
                scheduler = sch.LinearLR(optimizer, start_factor=1.0, end_factor=cfg["min_lr"] / cfg["lr"],
                                         total_iters=anneal_steps)
            else:
                scheduler = sch.CosineAnnealingLR(optimizer, T_max=anneal_steps, eta_min=cfg["min_lr"])
        return {"scheduler": scheduler, "interval": "step"}
    if sched == "cosine":
        epochs = max_epochs if max_epochs and max_epochs > 0 else 100
        scheduler = sch.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=cfg["min_lr"])
    else:  # cosine_warm_restarts
        scheduler = sch.CosineAnnealingWarmRestarts(optimizer, T_0=cfg["t0_epochs"], T_mult=cfg["t_mult"],
                                                    eta_min=cfg["min_lr"])
    return {"scheduler": scheduler, "interval": "epoch"}


def build_optimizers(module: pl.LightningModule, cfg: dict[str, Any], backbone_lr_mult: float = 1.0):
    """Build what ``LightningModule.configure_optimizers`` returns.

    Args:
        module: The module (its trainer gives the step and epoch budget).
        cfg: The ``optim:`` settings (see the module docstring and :data:`DEFAULTS`): ``name``
            (adam/adamw/lbfgs), ``lr`` (peak / starting learning rate; L-BFGS's step size), ``weight_decay``, ``scheduler``
            (onecycle/onecycle_half/cosine/cosine_warm_restarts/none), ``pct_start``,
            ``div_factor``, ``final_div_factor``, ``anneal_strategy`` (one-cycle schedules),
            ``t0_epochs``, ``t_mult`` (warm restarts), ``min_lr`` (floor of the cosine schedules and
            of ``onecycle_half``), ``max_iter``, ``history_size``, ``line_search`` (L-BFGS).
        backbone_lr_mult: Learning-rate multiplier of a pretrained backbone (see :func:`param_groups`).

    Returns:
        An optimiser, or ``{"optimizer", "lr_scheduler"}``.

    Raises:
        ValueError: a bad setting (see :func:`check_optim_config`), or a per-step schedule in a run
            of unbounded length.
    """
    c = check_optim_config(dict(cfg))
    if c["name"] == "lbfgs":  # one parameter group; the weight decay is the loss's L2 term (l2_penalty)
        return torch.optim.LBFGS([p for p in module.parameters() if p.requires_grad], lr=c["lr"],
                                 max_iter=c["max_iter"], history_size=c["history_size"],
                                 line_search_fn=None if c["line_search"] == "none" else c["line_search"])
    groups = param_groups(module, c["lr"], backbone_lr_mult, c["weight_decay"])
    opt = OPTIMIZERS[c["name"]](groups, lr=c["lr"], weight_decay=c["weight_decay"])
    sched = c["scheduler"]
    total = _total_steps(module, sched) if sched in ("onecycle", "onecycle_half") else None
    lr_scheduler = build_scheduler(opt, c, total_steps=total, max_epochs=module.trainer.max_epochs)
    return opt if lr_scheduler is None else {"optimizer": opt, "lr_scheduler": lr_scheduler}
