"""Pieces shared by ``train.py`` and ``eval.py``: loggers, callbacks, trainer, warnings."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ser_lightning.hardware import trainer_from_config

if TYPE_CHECKING:  # Lightning is imported by what trains, not by predict.py (tests/test_predict_imports.py)
    import lightning.pytorch as pl

log = logging.getLogger(__name__)


def to_plain(node: Any, default: Any = None) -> Any:
    """A config node as plain Python containers (resolved); ``default`` for ``None``; other values unchanged.

    >>> to_plain(OmegaConf.create({"a": "${b}", "b": 1}))
    {'a': 1, 'b': 1}
    >>> to_plain(None, {})
    {}
    """
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    return default if node is None else node


def plain_settings(node: Any) -> dict:
    """A config group's settings as a plain dict (resolved); ``{}`` for a missing group (``None``).

    >>> plain_settings(None)
    {}
    """
    return to_plain(node, {})


def quiet_known_warnings() -> None:
    """Silence warnings that do not apply to this project's design.

    Workers: the cache is a memory map sliced per item, so few workers are needed
    (``benchmarks/pipeline.py`` measures this); CUDA init: the torch wheel is a CUDA build that also runs on CPU.
    """
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*CUDA initialization.*")
    warnings.filterwarnings("ignore", message=".*Found no NVIDIA driver.*")
    warnings.filterwarnings("ignore", message=".*is an invalid version and will not be supported.*")


def wandb_has_credentials() -> bool:
    """True when a W&B API key is configured (environment or ~/.netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def _is_wandb(lcfg: Any) -> bool:
    """True for a logger config whose ``_target_`` is Lightning's ``WandbLogger``."""
    return lcfg is not None and "WandbLogger" in str(lcfg.get("_target_", ""))


def _wandb_log_model(name: str, lcfg: Any) -> bool:
    """``logger.<name>.log_model`` of a W&B logger config.

    Raises:
        ValueError: if it is not a boolean.
    """
    value = lcfg.get("log_model", False)
    if not isinstance(value, bool):
        raise ValueError(f"logger.{name}.log_model={value!r} must be true (log the best checkpoint as a W&B "
                         "artifact) or false")
    return value


def build_loggers(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every logger under ``logger:``.

    A W&B logger with ``offline: null`` runs offline when no API key is configured, so runs
    never fail for lack of a login (sync later with ``wandb sync <run_dir>/wandb/offline-run-*``).
    Its ``log_model`` is handed to ``WandbDashboard`` (see :func:`build_callbacks`), which logs
    the best checkpoint online and offline alike; Lightning's own ``log_model`` stays off.

    Raises:
        ValueError: if a W&B logger's ``log_model`` is not a boolean.
    """
    loggers: list[Any] = []
    for name, lcfg in (cfg or {}).items():
        if lcfg is None or "_target_" not in lcfg:
            continue
        lcfg = OmegaConf.to_container(lcfg, resolve=True)
        if _is_wandb(lcfg):
            _wandb_log_model(name, lcfg)
            lcfg["log_model"] = False
            if lcfg.get("offline") is None:
                lcfg["offline"] = not wandb_has_credentials()
                if lcfg["offline"]:
                    log.info("no W&B API key found: logging to W&B offline (use `wandb sync` later)")
            Path(lcfg.get("save_dir", ".")).mkdir(parents=True, exist_ok=True)
        loggers.append(instantiate(lcfg))
        log.info("logger %s: %s", name, lcfg["_target_"])
    return loggers


def _instantiate_callback(node) -> pl.Callback:
    """``instantiate`` one callback config; a bad setting the callback refuses with a ``ValueError`` comes out as
    that ``ValueError`` (one line through :func:`ser_lightning.cli.main.user_errors_as_one_line`) instead of Hydra's multi-line ``InstantiationException``."""
    from hydra.errors import InstantiationException

    try:
        return instantiate(node)
    except InstantiationException as err:
        if isinstance(err.__cause__, ValueError):
            raise err.__cause__ from None
        raise


def build_callbacks(cfg: DictConfig | None, run_config: DictConfig | None = None) -> list[pl.Callback]:
    """Instantiate every callback under ``callbacks:`` (entries set to null are skipped).

    When ``run_config`` (the whole composed config) configures a W&B logger under ``logger:``,
    a :class:`~ser_lightning.callbacks.wandb_dashboard.WandbDashboard` is added too (unless one is
    configured already). It logs ``run_config``, resolved, plus Hydra's command-line overrides
    (``hydra_overrides``) as the W&B run config, and the best checkpoint when the logger's
    ``log_model`` is true.

    Args:
        cfg: The ``callbacks:`` node.
        run_config: The whole composed config, or ``None`` (no W&B dashboard).

    Raises:
        ValueError: if a W&B logger's ``log_model`` is not a boolean, or a callback refuses its settings
            (e.g. ``callbacks.ema.decay`` out of range).
    """
    from ser_lightning.callbacks.wandb_dashboard import WandbDashboard

    callbacks = [_instantiate_callback(c) for c in (cfg or {}).values() if c is not None and "_target_" in c]
    wandb_cfgs = {n: c for n, c in ((run_config or {}).get("logger") or {}).items() if _is_wandb(c)}
    if wandb_cfgs and not any(isinstance(c, WandbDashboard) for c in callbacks):
        config = OmegaConf.to_container(run_config, resolve=True)
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            config["hydra_overrides"] = list(HydraConfig.get().overrides.task)
        log_model = any(_wandb_log_model(n, c) for n, c in wandb_cfgs.items())
        callbacks.append(WandbDashboard(run_config=config, log_best_checkpoint=log_model))
        log.info("callback WandbDashboard (W&B logger configured; log best checkpoint: %s)", log_model)
    return callbacks


def build_trainer(cfg: DictConfig, **overrides) -> pl.Trainer:
    """``lightning.pytorch.Trainer`` from ``cfg.trainer`` with ``cfg.callbacks`` and ``cfg.logger``.

    ``accelerator: auto`` and ``precision: auto`` are resolved first
    (:func:`ser_lightning.hardware.resolve_hardware`: GPU + 16-mixed when CUDA is visible, else CPU + 32);
    the resolved accelerator, devices, strategy and precision are logged.

    Args:
        cfg: The composed config.
        **overrides: Trainer arguments that replace ``cfg.trainer``'s; ``callbacks`` or ``logger``
            given here are used instead of building them from ``cfg``.
    """
    if "callbacks" not in overrides:
        overrides["callbacks"] = build_callbacks(cfg.get("callbacks"), run_config=cfg)
    if "logger" not in overrides:
        overrides["logger"] = build_loggers(cfg.get("logger")) or False
    return trainer_from_config(cfg.trainer, **overrides)


def single_device_overrides(trainer: pl.Trainer) -> dict[str, Any]:
    """Trainer arguments that run on one device: the first device of ``trainer``.

    Used to test (``train.py``) and evaluate (``eval.py``) on one device when the configured
    trainer has several processes: Lightning's ``DistributedSampler`` pads the last batches by
    repeating samples, so multi-process test metrics could count a clip twice.

    Args:
        trainer: A trainer, possibly multi-process (DDP); its rank-0 device is used.

    Returns:
        ``{"devices", "num_nodes": 1, "strategy": "auto", "sync_batchnorm": False}``; ``devices``
        is ``[index]`` of rank 0's GPU, else ``1``.
    """
    device = trainer.strategy.root_device
    devices = [device.index] if device.type == "cuda" and device.index is not None else 1
    return {"devices": devices, "num_nodes": 1, "strategy": "auto", "sync_batchnorm": False}


def finish_wandb(exit_code: int | None = None) -> None:
    """Close the W&B run, if any, so Hydra multiruns don't merge runs.

    Call it from a ``finally:`` block: while an exception is propagating, the run is marked
    failed (exit code 1) instead of finished.

    Args:
        exit_code: Exit code recorded for the run; ``None``: 1 while an exception propagates
            (other than ``SystemExit(0)``), else 0.
    """
    if exit_code is None:
        err = sys.exc_info()[1]
        failed = err is not None and not (isinstance(err, SystemExit) and err.code in (0, None))
        exit_code = 1 if failed else 0
    try:
        import wandb

        if wandb.run is not None:
            wandb.finish(exit_code=exit_code)
    except ImportError:  # pragma: no cover - wandb is a dependency
        pass


def checkpoint_setting(cfg: DictConfig, what: str = "a train.py checkpoint", default: str | None = None) -> str:
    """The model file of a task: ``ckpt_path=`` (the one name in every task), or its alias ``ckpt=``.

    ``default`` (the name of the shipped model, see :mod:`ser_lightning.inference.default_model`) is
    passed through as given: the loaders resolve it.

    Args:
        cfg: A composed task config (``conf/predict.yaml``, ``conf/export.yaml``, ...).
        what: What the file may be, named in the error.
        default: Returned when neither is set (``predict.py``: ``"default"``); ``None`` = required.

    Returns:
        The path as given.

    Raises:
        ValueError: neither is set (and no ``default``), or both are set to different files.
    """
    path, alias = cfg.get("ckpt_path"), cfg.get("ckpt")
    if path and alias and str(path) != str(alias):
        raise ValueError(f"ckpt_path={path} and its alias ckpt={alias} name different files; give ckpt_path only")
    if not (path or alias):
        if default is not None:
            return default
        raise ValueError(f"ckpt_path=PATH ({what}, or `default` for the shipped model) is required")
    return str(path or alias)


def build_classifier(cfg: DictConfig, class_names: list[str], num_samples: int,
                     class_counts: list[int] | None = None,
                     corpus_class_counts: dict[str, list[int]] | None = None,
                     corpus_stats: dict[str, dict[str, float]] | None = None,
                     built: tuple | None = None):
    """``SERClassifier`` from ``cfg.model``, ``cfg.features``, ``cfg.optim`` and ``cfg.loss``.

    Args:
        cfg: The composed ``conf/train.yaml``.
        class_names: The label set's classes, in label order.
        num_samples: Clip length in samples (``sample_rate`` Hz × ``duration_s``), for backbones
            that fit the spectrogram geometry to it.
        class_counts: Training clips per class (for ``loss.class_weights=balanced``), or ``None``.
        corpus_class_counts: Training corpus → clips per class (stored with ``data.corpus_weights``), or ``None``.
        corpus_stats: The training corpora's log-mel statistics (``model.norm_stats=per_corpus``), or ``None``.
        built: ``(frontend, network)`` already built from ``cfg.model``/``cfg.features``, or ``None`` (built here).

    Returns:
        The untrained classifier (frontend + network + loss and metrics).

    Raises:
        ValueError: bad model, feature or loss settings, naming the setting.
    """
    from ser_lightning.modules.classifier import SERClassifier

    plain = plain_settings
    loss = plain(cfg.get("loss"))
    return SERClassifier(
        model=plain(cfg.model),
        features=plain(cfg.get("features")),
        class_names=class_names,
        optim=plain(cfg.get("optim")),
        label_smoothing=float(loss.get("label_smoothing", 0.0)),
        mixup_alpha=loss.get("mixup_alpha", 0.0),
        class_weights=loss.get("class_weights"),
        class_counts=class_counts,
        num_samples=num_samples,
        corpus_stats=corpus_stats,
        corpus_class_counts=corpus_class_counts,
        built=built,
    )
