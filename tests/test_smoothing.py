"""Checkpoint selection on a smoothed validation metric (ser_lightning/callbacks/smoothing.py)."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from hydra import compose, initialize_config_dir
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from ser_lightning.callbacks.smoothing import SmoothedMetric
from tests.conftest import REPO

VAL_UA = [0.1, 0.9, 0.2, 0.5, 0.6, 0.7]  # raw best: epoch 1; trailing mean of 3: .1 .5 .4 .53 .43 .6 -> epoch 5


class _Scripted(pl.LightningModule):
    """Logs a scripted ``val/ua`` per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).sum()

    def validation_step(self, batch, batch_idx):
        self.log("val/ua", VAL_UA[self.current_epoch], on_epoch=True, batch_size=1)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _loader():
    return DataLoader(TensorDataset(torch.zeros(2, 2)), batch_size=2)


def _fit(tmp_path: Path, callbacks) -> ModelCheckpoint:
    ckpt = next(c for c in callbacks if isinstance(c, ModelCheckpoint))
    trainer = pl.Trainer(max_epochs=len(VAL_UA), callbacks=callbacks, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=1, default_root_dir=tmp_path,
                         accelerator="cpu")
    trainer.fit(_Scripted(), _loader(), _loader())
    return ckpt


def test_checkpoint_follows_the_trailing_mean_not_the_single_best_epoch(tmp_path):
    smooth = SmoothedMetric("val/ua", window=3, name="val/ua_smooth")
    ckpt = _fit(tmp_path / "s", [smooth, ModelCheckpoint(dirpath=tmp_path / "s", monitor="val/ua_smooth", mode="max",
                                                         filename="{epoch}")])
    assert Path(ckpt.best_model_path).name == "epoch=5.ckpt"
    assert float(ckpt.best_model_score) == pytest.approx((0.5 + 0.6 + 0.7) / 3)
    assert smooth.history == pytest.approx(VAL_UA)  # the sanity check added nothing
    raw = _fit(tmp_path / "r", [ModelCheckpoint(dirpath=tmp_path / "r", monitor="val/ua", mode="max", filename="{epoch}")])
    assert Path(raw.best_model_path).name == "epoch=1.ckpt"
    one = SmoothedMetric("val/ua", window=1)  # window 1 is the metric itself
    assert one.name == "val/ua_smooth1"


def test_bad_window_and_missing_metric_get_one_line():
    with pytest.raises(ValueError, match="callbacks.smoothed_selection.window"):
        SmoothedMetric(window=0)
    cb = SmoothedMetric("val/nope")
    trainer = type("T", (), {"sanity_checking": False, "callback_metrics": {"val/ua": torch.tensor(0.5)}})()
    with pytest.raises(KeyError, match="val/nope"):
        cb.on_validation_end(trainer, None)


def test_config_group_selects_on_the_smoothed_metric():
    with initialize_config_dir(config_dir=str(REPO / "ser_lightning" / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["callbacks=smoothed_selection"])
    assert cfg.callbacks.model_checkpoint.monitor == cfg.callbacks.smoothed_selection.name == "val/ua_smooth"
    assert cfg.callbacks.early_stopping.monitor == "val/ua"
