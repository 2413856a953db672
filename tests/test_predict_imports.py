"""Prediction starts fast (issue 24 item 1): the inference path imports no training stack, reads a checkpoint once,
and gives the numbers the Lightning path gives.

- In a fresh interpreter, ``import ser_lightning``, ``load_model("default")`` and one prediction import neither
  Lightning, timm, transformers, wandb, matplotlib, torchmetrics nor the data module (its timing is a benchmark:
  ``benchmarks/predict_speed.py``).
- :func:`~ser_lightning.inference.checkpoint.load_for_prediction` (no Lightning) and
  :func:`~ser_lightning.inference.checkpoint.load_classifier` (the ``SERClassifier``) give the same tensors and the
  same outputs, for the shipped head-only checkpoint and an old-format one.
- The plain-PyTorch Whisper encoder gives ``transformers``' ``WhisperEncoder``'s hidden states exactly.
- The registry's family table names the module of every registered model.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import REPO
from tests.speech_like import speech_like

HEAVY = ("lightning", "pytorch_lightning", "timm", "transformers", "wandb", "matplotlib", "torchmetrics", "sympy",
         "ser_lightning.data.datamodule", "ser_lightning.modules.classifier")
OLD_CKPT = REPO / "tests" / "data" / "old_format_report001_cnn.ckpt"
DEFAULT_CKPT = REPO / "ser_lightning" / "assets" / "default" / "model.ckpt"

_PROBE = r"""
import json, sys, torch
calls = []
_load = torch.load
def counting_load(*args, **kwargs):
    calls.append(str(args[0]))
    return _load(*args, **kwargs)
torch.load = counting_load
import ser_lightning as ser
model = ser.load_model("default")
result = model.predict(sys.argv[1])
heavy = sorted(m for m in HEAVY if m in sys.modules)
print(json.dumps({"label": result.label, "status": result.status, "heavy": heavy, "loads": calls}))
""".replace("HEAVY", repr(HEAVY))


def test_predicting_with_the_default_model_imports_no_training_stack(tmp_path):
    clip = tmp_path / "clip.wav"
    sf.write(clip, speech_like(3.0, 16000, seed=1), 16000)
    r = subprocess.run([sys.executable, "-c", _PROBE, str(clip)], cwd=REPO, capture_output=True, text=True,
                       env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["status"] == "ok" and out["label"], out  # the model ran on the clip
    assert out["heavy"] == [], f"the prediction path imported {out['heavy']}"
    assert len(out["loads"]) == 1 and out["loads"][0].endswith("model.ckpt"), out["loads"]  # the checkpoint, once


@pytest.mark.parametrize("path", [DEFAULT_CKPT, OLD_CKPT], ids=["default_head_only", "old_format"])
def test_the_light_loader_gives_the_lightning_classifier_numbers(path):
    from ser_lightning.inference.checkpoint import load_checkpoint, load_for_prediction

    light, audio_cfg, dm_hp = load_for_prediction(path)
    full, full_cfg = load_checkpoint(path)
    assert audio_cfg == full_cfg and light.class_names == list(full.class_names)
    ours = light.state_dict()
    theirs = {k: v for k, v in full.state_dict().items() if k.startswith(("frontend.", "network."))}
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    torch.manual_seed(0)
    wave = 0.1 * torch.randn(2, audio_cfg.num_samples)
    with torch.inference_mode():
        if audio_cfg.clip_length == "whole":
            lengths = torch.tensor([audio_cfg.num_samples, audio_cfg.num_samples // 2])
            a, b = light(wave, lengths), full(wave, lengths)
        else:
            a, b = light(wave), full(wave)
    assert torch.equal(a, b)


def test_the_plain_whisper_encoder_is_transformers_whisper_encoder():
    from transformers.models.whisper.modeling_whisper import WhisperEncoder as HFWhisperEncoder

    from ser_lightning.models.encoders.whisper import WhisperEncoderNetwork, _whisper_config
    from ser_lightning.models.encoders.whisper_torch import WhisperEncoder, WhisperEncoderConfig

    torch.manual_seed(0)
    hf = HFWhisperEncoder(_whisper_config(64, 2, 4, 128, 80, 1500)).eval()
    ours = WhisperEncoder(WhisperEncoderConfig(64, 2, 4, 128, 80, 1500)).eval()
    ours.load_state_dict(hf.state_dict(), strict=True)  # the same names and shapes, nothing more
    assert [n for n, p in ours.named_parameters() if not p.requires_grad] == ["embed_positions.weight"]
    wave = 0.1 * torch.randn(3, 16000)
    lengths = torch.tensor([16000, 9000, 4000])
    with torch.inference_mode():
        a = WhisperEncoderNetwork(ours).eval()(wave, lengths)
        b = WhisperEncoderNetwork(hf).eval()(wave, lengths)
    assert torch.equal(a.lengths, b.lengths) and len(a.hidden_states) == len(b.hidden_states) == 3
    for x, y in zip(a.hidden_states, b.hidden_states):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_the_registry_family_table_names_every_model():
    import ser_lightning.inference  # noqa: F401  (registers model=ensemble)
    from ser_lightning.models import list_models, model_info
    from ser_lightning.models.registry import FAMILIES

    for module, names in FAMILIES.items():
        for name in names:
            builder = model_info(name).builder
            assert getattr(builder, "__module__", module) in (module, "functools"), (name, module)
    listed = {n for names in FAMILIES.values() for n in names}
    assert set(list_models()) - listed == {"ensemble"}
