"""Every registered model completes a ``fast_dev_run`` with ``trainer.precision=bf16-mixed`` on the CPU: the
stand-in for GPU mixed precision here (autocast dtype bugs show up under bfloat16 autocast too)."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from hydra import compose, initialize_config_dir

import ser_lightning.inference  # noqa: F401  (registers model=ensemble)
from ser_lightning.cli.train import build_datamodule, build_module
from ser_lightning.models import list_models
from tests.conftest import REPO

# Small inputs keep the big ImageNet networks to a few seconds each; the dtype paths are the same.
SMALL_INPUT = {"inception_v3": "[75,75]"}
# Smallest configuration of a network where the default one is large.
SMALL_SETTINGS = {"wav2vec2": ["model.config=tiny"]}


def _overrides(name: str, cfg_model) -> list[str]:
    out = [f"model={name}"]
    if "input_size" in cfg_model:
        out.append(f"model.input_size={SMALL_INPUT.get(name, '[64,64]')}")
    if cfg_model.get("pretrained") not in (None, False):
        out.append("model.pretrained=false")  # no hub here; offline weights do not change dtypes
    if cfg_model.get("trainable_blocks") is not None:
        out.append("model.trainable_blocks=null")
    return out + SMALL_SETTINGS.get(name, [])


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "ser_lightning" / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize("name", list_models())
def test_fast_dev_run_in_bf16_mixed_on_cpu(name, tiny_ravdess, tmp_path, request, one_thread):
    base = _compose(f"model={name}").model
    extra = _overrides(name, base)
    if name == "ensemble":
        members = request.getfixturevalue("trained_members")
        extra.append(f"model.members=[{','.join(str(m) for m in members)}]")
    if name == "ssl":  # a hub id needs the internet: a tiny random WavLM saved here instead
        from tests.test_encoder_models import _tiny_wavlm

        extra.append(f"model.encoder={_tiny_wavlm(tmp_path)}")
    cfg = _compose(*extra, f"data.root={tiny_ravdess}", f"data.cache_dir={tmp_path.parent / 'bf16_cache'}",
                   "data.val_speakers=2", "data.test_speakers=2", "data.duration_s=1.0", "data.batch_size=4",
                   f"paths.output_dir={tmp_path}")
    dm = build_datamodule(cfg, None)
    dm.prepare_data()
    dm.setup("fit")
    model = build_module(cfg, dm)
    dm.set_frontend(model.frontend)
    trainer = pl.Trainer(accelerator="cpu", devices=1, precision="bf16-mixed", fast_dev_run=True, logger=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path))
    if name == "ensemble":  # a checkpoint ensemble is not trained: it is evaluated (eval.py)
        trainer.test(model, datamodule=dm, verbose=False)
    else:
        # Trainable parameters only: BatchNorm running statistics change in any forward pass, step or not.
        before = {n: p.detach().clone() for n, p in model.network.named_parameters() if p.requires_grad}
        trainer.fit(model, datamodule=dm)
        after = dict(model.network.named_parameters())
        assert any(not torch.equal(before[n], after[n]) for n in before), "no trainable weight changed in the bf16 step"
        assert all(torch.isfinite(v).all() for v in model.network.state_dict().values() if v.is_floating_point())
        trainer.test(model, datamodule=dm, verbose=False)
    assert trainer.precision == "bf16-mixed"
    ua = trainer.callback_metrics.get("test/ua")
    assert ua is not None and torch.isfinite(ua)
