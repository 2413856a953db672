"""Registered networks and the LightningModule."""

from __future__ import annotations

import pytest
import torch

from ser_lightning.models import build_model, list_models, model_info
from ser_lightning.models.cnn import HomebrewCNN
from ser_lightning.modules.classifier import SERClassifier

#: Settings that make a model small enough for a CPU unit test.
SMALL = {
    "wav2vec2": {"config": "tiny"},
    "vgg16": {"input_size": [32, 32]},
    "inception_v3": {"input_size": [75, 75]},
    "whisper_base": {"pretrained": "none"},  # a random base-sized encoder; its packaged weights: tests/test_whisper_base.py
    **{name: {"input_size": [64, 64]} for name in (
        "mobilenetv3_large_100", "tf_efficientnetv2_b0", "tf_efficientnetv2_b1",
        "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")},
}
#: Built from trained checkpoints: tested in tests/test_ensemble.py.
NEEDS_CHECKPOINTS = {"ensemble"}


@pytest.mark.parametrize("name", [m for m in list_models() if m not in NEEDS_CHECKPOINTS])
def test_every_registered_model_runs_forward_and_backward(name, tmp_path):
    settings = dict(SMALL.get(name, {}))
    if name == "ssl":  # a hub id needs the internet: a tiny random WavLM saved here instead
        from tests.test_encoder_models import _tiny_wavlm

        settings["encoder"] = str(_tiny_wavlm(tmp_path))
    net = build_model(name, in_channels=1, num_classes=8, **settings)
    waveform = model_info(name).input_kind == "waveform"  # the fact the registry carries
    shape = (2, 8000) if waveform else (2, 1, 64, 94)
    x = torch.randn(*shape, requires_grad=True)
    out = net(x)
    assert out.shape == (2, 8)
    out.sum().backward()
    frozen = [n for n, p in net.named_parameters() if not p.requires_grad]
    # A frozen pretrained encoder runs without autograd; everything else passes gradients to its input.
    assert x.grad is not None or (frozen and settings.get("freeze", "frozen") == "frozen")
    # Every trainable parameter takes part (wav2vec2's mask embedding is only used when masking).
    unused = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None and not n.endswith("mask_embedding")]
    assert unused == []


def test_homebrew_cnn_matches_report_003():
    net = HomebrewCNN(in_channels=1, num_classes=6)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 64]
    # conv -> ReLU -> BatchNorm order
    kinds = [type(m).__name__ for m in net.features]
    assert kinds[:3] == ["Conv2d", "ReLU", "BatchNorm2d"]
    assert net.classifier.in_features == 64 and net.classifier.out_features == 6
    wide = HomebrewCNN(widths=(16, 32, 64, 128))
    assert wide.classifier.in_features == 128


def test_unknown_model_lists_choices():
    with pytest.raises(ValueError, match="homebrew_cnn"):
        build_model("resnet9000", in_channels=1, num_classes=2)


def _module(**kw):
    return SERClassifier(
        model={"name": "homebrew_cnn"},
        features={"name": "logmel", "sample_rate": 16000, "n_mels": 64},
        class_names=["a", "b", "c"],
        **kw,
    )


def test_classifier_forward_from_waveform_and_balanced_weights():
    m = _module(class_weights="balanced", class_counts=[10, 20, 40], label_smoothing=0.1)
    logits = m(torch.randn(2, 16000))
    assert logits.shape == (2, 3)
    w = m.class_weight
    assert torch.allclose(w * torch.tensor([10.0, 20.0, 40.0]), torch.full((3,), 70 / 3))
    feats = m.extract_features(torch.randn(2, 16000))
    assert feats.shape[:3] == (2, 1, 64) and not feats.requires_grad


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"label_smoothing": 1.0}, "loss.label_smoothing"),
        ({"class_weights": "balanced"}, "loss.class_weights=balanced"),
        ({"class_weights": [1.0, 2.0]}, "loss.class_weights"),
    ],
)
def test_bad_loss_settings(kw, message):
    with pytest.raises(ValueError, match=message):
        _module(**kw)
