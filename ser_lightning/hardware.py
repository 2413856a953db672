"""Accelerator and precision resolution for the trainer (``conf/trainer/default.yaml``).

The default trainer says ``accelerator: auto`` and ``precision: auto``: CUDA GPUs when present
(``16-mixed``, the platform's design; ``trainer.precision=bf16-mixed`` is one setting away), else the CPU
(``32``). ``trainer.devices=N`` means DDP over N GPUs on a GPU machine and N CPU processes (DDP over gloo) on
a CPU-only one, with a logged note saying so. What was resolved is logged and written to ``metrics.json``
(:func:`describe_trainer`).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import torch

log = logging.getLogger(__name__)

#: ``trainer.precision`` chosen by ``precision: auto`` per resolved accelerator.
AUTO_PRECISION = {"gpu": "16-mixed", "cpu": "32", "mps": "32"}
#: The one ``trainer:`` key that is not a Lightning ``Trainer`` argument: the process group's collective
#: timeout in seconds (:mod:`ser_lightning.distributed`), taken out before the trainer is built.
COLLECTIVE_TIMEOUT_KEY = "collective_timeout_s"


def detect_accelerator() -> str:
    """``"gpu"`` when CUDA GPUs are visible, else ``"mps"`` on Apple silicon, else ``"cpu"``."""
    if torch.cuda.is_available():
        return "gpu"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def resolve_hardware(settings: dict[str, Any], detected: str | None = None) -> dict[str, Any]:
    """Replace ``accelerator: auto`` and ``precision: auto`` in trainer settings by concrete values.

    Args:
        settings: ``cfg.trainer`` as a plain dict (Lightning ``Trainer`` arguments, ``_target_`` included).
        detected: The machine's accelerator (``"gpu"``, ``"mps"``, ``"cpu"``); ``None`` detects it
            (:func:`detect_accelerator`). Tests pass it to exercise the GPU branch on a CPU machine.

    Returns:
        A copy of ``settings`` with ``accelerator`` and ``precision`` resolved. Other values (an explicit
        ``accelerator: cpu``, ``precision: bf16-mixed``) are kept as given.

    Example:
        >>> resolve_hardware({"accelerator": "auto", "precision": "auto", "devices": 1}, detected="gpu")
        {'accelerator': 'gpu', 'precision': '16-mixed', 'devices': 1}
        >>> resolve_hardware({"accelerator": "auto", "precision": "auto", "devices": 1}, detected="cpu")
        {'accelerator': 'cpu', 'precision': '32', 'devices': 1}
    """
    out = dict(settings)
    accelerator = str(out.get("accelerator", "auto")).lower()
    if accelerator == "auto":
        accelerator = detected or detect_accelerator()
        out["accelerator"] = accelerator
    if str(out.get("precision", "auto")).lower() == "auto":
        kind = "gpu" if accelerator in ("gpu", "cuda") else accelerator
        out["precision"] = AUTO_PRECISION.get(kind, "32")
    devices = out.get("devices", 1)
    if accelerator == "cpu" and isinstance(devices, int) and not isinstance(devices, bool) and devices > 1:
        log.info("no GPU in use: trainer.devices=%d runs %d CPU processes (DDP over gloo), not %d GPUs",
                 devices, devices, devices)
    return out


def trainer_from_config(trainer_cfg, **overrides):
    """Instantiate ``lightning.pytorch.Trainer`` from a ``conf/trainer`` node after :func:`resolve_hardware`.

    Args:
        trainer_cfg: ``cfg.trainer`` (a ``DictConfig`` or plain dict with ``_target_``).
        **overrides: Trainer arguments that replace the config's (callbacks, logger, devices, ...).

    ``trainer.collective_timeout_s`` (not a Trainer argument) becomes the timeout of the process group of a
    multi-process strategy (:func:`ser_lightning.distributed.set_collective_timeout`).

    Returns:
        The trainer; its resolved accelerator, devices, strategy and precision are logged.

    Raises:
        ValueError, MisconfigurationException: settings Lightning refuses (e.g. ``16-mixed`` on a CPU), or a
            ``trainer.collective_timeout_s`` that is not a positive number.
    """
    from hydra.utils import instantiate
    from omegaconf import Container, OmegaConf

    from ser_lightning.distributed import collective_timeout_setting, set_collective_timeout

    settings = {}
    for key in trainer_cfg:
        if key in overrides:
            continue  # replaced: never resolved (e.g. a ${hydra:...} path outside a Hydra run)
        value = trainer_cfg[key]
        settings[key] = OmegaConf.to_container(value, resolve=True) if isinstance(value, Container) else value
    timeout_s = collective_timeout_setting(settings.pop(COLLECTIVE_TIMEOUT_KEY, None))
    trainer = instantiate(resolve_hardware(settings), **overrides)
    described = describe_trainer(trainer)
    if set_collective_timeout(trainer, timeout_s):
        described["collective_timeout_s"] = timeout_s
    log.info("trainer: %s", ", ".join(f"{k}={v}" for k, v in described.items()))
    return trainer


def describe_trainer(trainer) -> dict[str, Any]:
    """What a built ``lightning.pytorch.Trainer`` runs on, for the log and ``metrics.json``.

    Returns:
        ``{"accelerator": "cpu" | "gpu" | ..., "devices": int (per node), "num_nodes": int,
        "world_size": int, "strategy": str (e.g. "ddp", "single_device"), "precision": str (e.g.
        "32-true", "16-mixed")}``.
    """
    acc = type(trainer.accelerator).__name__.replace("Accelerator", "").lower()
    name = type(trainer.strategy).__name__.removesuffix("Strategy")
    strategy = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower()  # DDP -> ddp, SingleDevice -> single_device
    start = getattr(trainer.strategy, "_start_method", "popen")
    if strategy == "ddp" and start != "popen":
        strategy = f"ddp_{start}"  # ddp_spawn, ddp_fork
    return {
        "accelerator": {"cuda": "gpu"}.get(acc, acc),
        "devices": int(trainer.num_devices),
        "num_nodes": int(trainer.num_nodes),
        "world_size": int(trainer.world_size),
        "strategy": str(strategy),
        "precision": str(trainer.precision),
    }
