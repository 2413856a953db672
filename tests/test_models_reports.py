"""Networks reproduced from reports 001 (§4.3–4.5) and 002 (CNN on MFCC + Δ + ΔΔ)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from ser_lightning.models import build_model, list_models

CONF = Path(__file__).resolve().parents[1] / "ser_lightning" / "conf" / "model"
R001 = ["plain_cnn", "parallel_cnn", "cnn_transformer"]
# Report 001's Keras tables at input 1×128×94, 7 classes: (trainable, total incl. BN moving stats).
R001_COUNTS = {
    "plain_cnn": (27_191, 27_495),
    "parallel_cnn": (54_375, 54_983),
    "cnn_transformer": (848_359, 848_967),
}


pytestmark = pytest.mark.usefixtures("one_thread")


def counts(net: torch.nn.Module) -> tuple[int, int]:
    """(parameters, parameters + BatchNorm running mean/var) — Keras' (trainable, total)."""
    params = sum(p.numel() for p in net.parameters())
    stats = sum(b.numel() for n, b in net.named_buffers() if n.endswith(("running_mean", "running_var")))
    return params, params + stats


def test_registered():
    assert set(R001 + ["mfcc_cnn"]) <= set(list_models())


#: PyTorch parameters / + BatchNorm running statistics with the default per-channel BatchNorm
#: (module docstring of ser_lightning/models/cnn_blocks.py), 1 x 128 x 94 input, 7 classes.
R001_CHANNEL_BN_COUNTS = {
    "plain_cnn": (27_111, 27_335),
    "parallel_cnn": (54_215, 54_663),
    "cnn_transformer": (848_199, 848_647),
}


@pytest.mark.parametrize("name", R001)
def test_report001_counts_are_exact(name):
    assert counts(build_model(name, in_channels=1, num_classes=7)) == R001_CHANNEL_BN_COUNTS[name]


@pytest.mark.parametrize("name", R001)
def test_report001_keras_batchnorm_reproduces_exact_counts(name):
    net = build_model(name, in_channels=1, num_classes=7, batchnorm="time", frames=94)
    assert counts(net) == R001_COUNTS[name]
    assert net(torch.randn(2, 1, 128, 94)).shape == (2, 7)
    with pytest.raises(ValueError, match="model.frames=94"):
        net(torch.randn(2, 1, 128, 90))


def test_report001_layer_shapes():
    net = build_model("plain_cnn", in_channels=1, num_classes=7)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 64] and all(c.kernel_size == (3, 3) for c in convs)
    pools = [m.kernel_size for m in net.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert pools == [2, 4, 4]
    assert net.classifier.in_features == 512
    x = torch.randn(1, 1, 128, 94)
    assert net.block.layers[:-2](x).shape == (1, 64, 4, 2)  # the report's last max-pool output
    both = build_model("cnn_transformer", in_channels=1, num_classes=7)
    assert both.classifier.in_features == 128 + 512 + 512
    assert len(both.transformer.layers) == 4 and both.transformer.layers[0].self_attn.num_heads == 4


def test_report002_count_and_shapes():
    net = build_model("mfcc_cnn", in_channels=3, num_classes=8)
    # The report's printed module: conv 1→32, 32→64, Linear 13248→256→128→8.
    assert counts(net)[0] == 320 + 18_496 + 3_391_744 + 32_896 + 1_032 == 3_444_488
    assert net.classifier[0].in_features == 13_248
    unstacked = build_model("mfcc_cnn", in_channels=3, num_classes=8, stack_channels=False)
    assert counts(unstacked)[0] == 3_444_488 + 2 * 288
    # At the report's geometry (3 × 13 MFCCs stacked = 39 rows, 94 frames) the adaptive pool is the identity.
    x = torch.randn(1, 1, 39, 94)
    assert net.features[:7](x).shape == (1, 64, 9, 23)


CASES = [
    ("plain_cnn", 1, (128, 94)),
    ("plain_cnn", 3, (40, 63)),
    ("parallel_cnn", 1, (128, 94)),
    ("parallel_cnn", 1, (40, 63)),
    ("cnn_transformer", 1, (128, 94)),
    ("cnn_transformer", 3, (40, 63)),
    ("mfcc_cnn", 3, (13, 94)),
    ("mfcc_cnn", 3, (40, 63)),
    ("mfcc_cnn", 1, (64, 94)),
]


@pytest.mark.parametrize("name, channels, size", CASES)
def test_forward_backward(name, channels, size):
    torch.manual_seed(0)
    net = build_model(name, in_channels=channels, num_classes=5)
    x = torch.randn(2, channels, *size, requires_grad=True)
    out = net(x)
    assert out.shape == (2, 5)
    out.sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("name", R001 + ["mfcc_cnn"])
def test_dropout_train_vs_eval(name):
    torch.manual_seed(0)
    net = build_model(name, in_channels=3, num_classes=4)
    x = torch.randn(2, 3, 40, 63)
    net.train()
    assert not torch.allclose(net(x), net(x))
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), net(x))


@pytest.mark.parametrize(
    "name, kw, message",
    [
        ("plain_cnn", {"pools": [2, 4]}, "model.pools"),
        ("plain_cnn", {"widths": []}, "model.widths"),
        ("plain_cnn", {"dropout": 1.0}, "model.dropout"),
        ("plain_cnn", {"batchnorm": "layer"}, "model.batchnorm"),
        ("plain_cnn", {"pool_grid": [4]}, "model.pool_grid"),
        ("parallel_cnn", {"batchnorm": "time", "frames": 20}, "model.frames"),
        ("cnn_transformer", {"d_model": 130}, "model.d_model=130 must be divisible by model.nhead"),
        ("cnn_transformer", {"transformer_dropout": -0.1}, "model.transformer_dropout"),
        ("mfcc_cnn", {"hidden": []}, "model.hidden"),
        ("mfcc_cnn", {"pool_grid": [9, 0]}, "model.pool_grid"),
        ("mfcc_cnn", {"dropout": 2}, "model.dropout"),
    ],
)
def test_bad_settings(name, kw, message):
    with pytest.raises(ValueError, match=message):
        build_model(name, in_channels=1, num_classes=3, **kw)


def test_too_small_input_is_a_clear_error():
    with pytest.raises(ValueError, match="≥ 32"):
        build_model("plain_cnn", in_channels=1, num_classes=3)(torch.randn(1, 1, 20, 94))
    with pytest.raises(ValueError, match="≥ 4"):
        build_model("mfcc_cnn", in_channels=1, num_classes=3)(torch.randn(1, 1, 40, 3))


@pytest.mark.parametrize("name", R001 + ["mfcc_cnn"])
def test_config_file_builds(name):
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    settings = dict(cfg)
    assert settings.pop("name") == name
    net = build_model(name, in_channels=1, num_classes=7, **settings)
    if name in R001_COUNTS:
        assert abs(counts(net)[0] - R001_COUNTS[name][0]) / R001_COUNTS[name][0] < 0.02
    assert net(torch.randn(2, 1, 64, 94)).shape == (2, 7)
