"""Wav2Vec2 classifier with a tiny random configuration (no weights are reachable here)."""

from __future__ import annotations

import json

import pytest
import torch

from ser_lightning.models.wav2vec2 import Wav2Vec2Classifier
from tests.conftest import run_script


def test_tiny_wav2vec2_forward_backward_with_gradient_checkpointing():
    net = Wav2Vec2Classifier(num_classes=4, config="tiny", gradient_checkpointing=True).train()
    wave = torch.randn(2, 8000)
    out = net(wave)
    assert out.shape == (2, 4)
    out.sum().backward()
    assert all(p.grad is None for p in net.encoder.feature_extractor.parameters())  # frozen
    assert net.head.weight.grad is not None
    layer = net.encoder.encoder.transformer.layers[0]
    assert any(p.grad is not None for p in layer.parameters())
    net.eval()
    with torch.no_grad():
        plain = Wav2Vec2Classifier(num_classes=4, config="tiny")
        plain.load_state_dict({k.replace(".layer.", "."): v for k, v in net.state_dict().items()})
        assert torch.allclose(plain.eval()(wave), net(wave), atol=1e-5)


def test_local_state_dict_loading_and_errors(tmp_path):
    src = Wav2Vec2Classifier(config="tiny")
    path = tmp_path / "w2v.pt"
    torch.save(src.encoder.state_dict(), path)
    net = Wav2Vec2Classifier(config="tiny", pretrained=str(path))
    assert torch.equal(net.encoder.encoder.feature_projection.projection.weight, src.encoder.encoder.feature_projection.projection.weight)
    with pytest.raises(ValueError, match="model.config='huge'"):
        Wav2Vec2Classifier(config="huge")
    with pytest.raises(ValueError, match="mono waveform"):
        Wav2Vec2Classifier(in_channels=3, config="tiny")


def test_wav2vec2_trains_through_train_py(tiny_ravdess, tmp_path):
    run = tmp_path / "run"
    r = run_script("train.py", "debug=fast", "model=wav2vec2", "model.config=tiny", f"data.root={tiny_ravdess}",
                   f"data.cache_dir={tmp_path / 'cache'}", "data.val_speakers=2", "data.test_speakers=2",
                   "data.duration_s=1.0", cwd=run)
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(json.loads((run / "metrics.json").read_text())["labels"]) == 8
