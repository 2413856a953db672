"""Pieces shared by ``train.py`` and ``eval.py``: loggers, callbacks, trainer, warnings."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def quiet_known_warnings() -> None:
    """Silence warnings that do not apply to this project's design.

    Workers: the cache is a memory map sliced per item, so few workers are needed (issue #6
    measures this); CUDA init: the torch wheel is a CUDA build that also runs on CPU.
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


def build_loggers(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every logger under ``logger:``.

    A W&B logger with ``offline: null`` runs offline when no API key is configured, so runs
    never fail for lack of a login (sync later with ``wandb sync <run_dir>/wandb/offline-run-*``).
    """
    loggers: list[Any] = []
    for name, lcfg in (cfg or {}).items():
        if lcfg is None or "_target_" not in lcfg:
            continue
        lcfg = OmegaConf.to_container(lcfg, resolve=True)
        if "WandbLogger" in lcfg["_target_"]:
            if lcfg.get("offline") is None:
                lcfg["offline"] = not wandb_has_credentials()
                if lcfg["offline"]:
                    log.info("no W&B API key found: logging to W&B offline (use `wandb sync` later)")
            Path(lcfg.get("save_dir", ".")).mkdir(parents=True, exist_ok=True)
        loggers.append(instantiate(lcfg))
        log.info("logger %s: %s", name, lcfg["_target_"])
    return loggers


def build_callbacks(cfg: DictConfig | None) -> list[pl.Callback]:
    """Instantiate every callback under ``callbacks:`` (entries set to null are skipped)."""
    return [instantiate(c) for c in (cfg or {}).values() if c is not None and "_target_" in c]


def build_trainer(cfg: DictConfig, **overrides) -> pl.Trainer:
    """``lightning.pytorch.Trainer`` from ``cfg.trainer`` with ``cfg.callbacks`` and ``cfg.logger``."""
    return instantiate(cfg.trainer, callbacks=build_callbacks(cfg.get("callbacks")),
                       logger=build_loggers(cfg.get("logger")) or False, **overrides)


def finish_wandb() -> None:
    """Close the W&B run, if any, so Hydra multiruns don't merge runs."""
    try:
        import wandb

        if wandb.run is not None:
            wandb.finish()
    except ImportError:  # pragma: no cover - wandb is a dependency
        pass


USER_ERRORS = (ValueError, FileNotFoundError)


def run_cli(fn, cfg: DictConfig):
    """Run ``fn(cfg)``; a user error (bad setting, missing data) becomes one line on stderr and exit 1.

    Set ``HYDRA_FULL_ERROR=1`` to get the traceback instead.
    """
    import sys

    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return fn(cfg)
    try:
        return fn(cfg)
    except USER_ERRORS as err:
        msg = " ".join(str(err).split("\n"))
        print(f"error: {msg}", file=sys.stderr)
        raise SystemExit(1) from None
