"""Wav2Vec2 classifier with a tiny random configuration (no weights are reachable here)."""

from __future__ import annotations

import json

import pytest
import torch

from ser_lightning.models.wav2vec2 import Wav2Vec2Classifier
from tests.conftest import run_script
from tests.metric_checks import RAVDESS8, assert_test_metrics_match_split, split_rows


def test_tiny_wav2vec2_forward_backward_with_gradient_checkpointing():
    net = Wav2Vec2Classifier(num_classes=4, config="tiny", gradient_checkpointing=True).train()
    plain = Wav2Vec2Classifier(num_classes=4, config="tiny").train()
    plain.load_state_dict({k.replace(".layer.", "."): v for k, v in net.state_dict().items()})
    wave = torch.randn(2, 8000, generator=torch.Generator().manual_seed(0))
    for model in (net, plain):
        torch.manual_seed(1)  # the same head-dropout mask in both
        out = model(wave)
        assert out.shape == (2, 4)
        out.sum().backward()
    # Only the convolutional feature encoder is frozen; every other parameter, in every checkpointed
    # layer and before them, gets the gradient the plain network gets.
    frozen = {n for n, p in net.named_parameters() if not p.requires_grad}
    assert frozen == {f"encoder.feature_extractor.{n}" for n, _ in net.encoder.feature_extractor.named_parameters()}
    assert all(p.grad is None for n, p in net.named_parameters() if n in frozen)
    want = {n.replace(".layer.", "."): p.grad for n, p in plain.named_parameters()}
    got = {n.replace(".layer.", "."): p.grad for n, p in net.named_parameters() if n not in frozen}
    assert len(got) == len(want) - len(frozen) and all(g is not None for g in got.values())
    for n, g in got.items():
        assert torch.allclose(g, want[n], atol=1e-6), n
    net.eval()
    with torch.no_grad():
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
    metrics = json.loads((run / "metrics.json").read_text())
    # debug=fast tests one batch of 32 (data.batch_size): all 32 test clips (2 actors × 16).
    assert_test_metrics_match_split(metrics, split_rows(run), RAVDESS8, first=32)
    assert metrics["model"] == "wav2vec2" and metrics["input_shape"] == [16000]  # 1.0 s of 16 kHz waveform
