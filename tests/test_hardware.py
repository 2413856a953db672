"""The default trainer uses the hardware it finds: accelerator/precision resolution (GPU branch by
configuration), the CPU-processes note, and what a built trainer reports."""

from __future__ import annotations

import logging

import lightning.pytorch as pl
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ser_lightning.hardware import describe_trainer, resolve_hardware
from tests.conftest import REPO


def _trainer_cfg(*overrides: str) -> dict:
    """``trainer`` of ``conf/train.yaml`` with the homebrew CNN, whose model config sets no trainer keys."""
    with initialize_config_dir(config_dir=str(REPO / "ser_lightning" / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["model=homebrew_cnn", *overrides])
    return OmegaConf.to_container(cfg.trainer)


def test_default_trainer_is_auto():
    cfg = _trainer_cfg()
    assert (cfg["accelerator"], cfg["precision"], cfg["devices"]) == ("auto", "auto", 1)


@pytest.mark.parametrize(("detected", "expected"), [("gpu", ("gpu", "16-mixed")), ("cpu", ("cpu", "32")),
                                                     ("mps", ("mps", "32"))])
def test_auto_resolves_per_machine(detected, expected):
    out = resolve_hardware(_trainer_cfg(), detected=detected)
    assert (out["accelerator"], out["precision"]) == expected


def test_explicit_settings_are_kept():
    out = resolve_hardware(_trainer_cfg("trainer.precision=bf16-mixed"), detected="gpu")
    assert (out["accelerator"], out["precision"]) == ("gpu", "bf16-mixed")
    out = resolve_hardware(_trainer_cfg("trainer=cpu"), detected="gpu")
    assert (out["accelerator"], str(out["precision"])) == ("cpu", "32")
    out = resolve_hardware(_trainer_cfg("trainer=gpu"), detected="cpu")
    assert (out["accelerator"], out["precision"]) == ("gpu", "16-mixed")


def test_two_devices_on_a_cpu_machine_are_two_processes_with_a_note(caplog):
    with caplog.at_level(logging.INFO, logger="ser_lightning.hardware"):
        out = resolve_hardware(_trainer_cfg("trainer.devices=2"), detected="cpu")
    assert out["accelerator"] == "cpu" and out["devices"] == 2
    assert "runs 2 CPU processes (DDP over gloo)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ser_lightning.hardware"):
        out = resolve_hardware(_trainer_cfg("trainer.devices=2"), detected="gpu")
    assert out["accelerator"] == "gpu" and "CPU processes" not in caplog.text


def test_built_trainer_describes_itself():
    settings = resolve_hardware(_trainer_cfg("trainer.devices=2"), detected="cpu")
    settings.pop("_target_")
    settings.pop("collective_timeout_s")  # not a Trainer argument (trainer_from_config takes it out)
    settings.update(default_root_dir=None, logger=False, enable_checkpointing=False)
    trainer = pl.Trainer(**settings)
    assert describe_trainer(trainer) == {"accelerator": "cpu", "devices": 2, "num_nodes": 1, "world_size": 2,
                                         "strategy": "ddp", "precision": "32-true"}
    one = pl.Trainer(accelerator="cpu", devices=1, precision="bf16-mixed", logger=False, enable_checkpointing=False)
    assert describe_trainer(one)["strategy"] == "single_device" and describe_trainer(one)["precision"] == "bf16-mixed"


@pytest.mark.parametrize("group", ["default", "cpu", "gpu", "ddp", "ddp_sim"])
def test_sync_batchnorm_is_a_setting_of_every_trainer(group):
    assert _trainer_cfg(f"trainer={group}", "trainer.sync_batchnorm=true")["sync_batchnorm"] is True
