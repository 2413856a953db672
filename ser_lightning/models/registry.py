"""Name → network registry, with the facts each network carries (``model.name`` in config).

In the spirit of timm's ``register_model`` + ``PretrainedCfg`` (``timm/models/_registry.py``,
``timm/models/_pretrained.py``): a network is registered once, under a name that says what it
is, together with what the rest of the platform needs to know about it — the input it reads
(waveform or spectrogram), its default and minimum input size, where it comes from (paper or
report section) and where pretrained weights can come from. Old names stay usable as
deprecated aliases (timm's ``register_model_deprecations``): they build the same network and
warn.

The families are imported when a name is first asked for (timm's ``_module_to_models`` idea): asking for
``whisper_tiny`` imports :mod:`ser_lightning.models.encoders.zoo` only, not timm or transformers, which keeps the
prediction path light; :func:`list_models` imports every family. :data:`FAMILIES` says which module registers
which names (tests/test_registry.py checks it against the registrations).

Public: :func:`register_model`, :func:`register_model_deprecations`, :func:`list_models`,
:func:`is_model`, :func:`model_info`, :func:`build_model`.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from torch import nn

#: What a network reads: features from the frontend, or the waveform itself.
INPUT_KINDS = ("spectrogram", "waveform")


@dataclass(frozen=True)
class ModelInfo:
    """What a registered network is and needs.

    Attributes:
        name: Registered name (``model.name``).
        builder: Class or factory, called as ``builder(in_channels=..., num_classes=..., **settings)``.
        input_kind: ``"spectrogram"`` (features ``(batch, channels, n_feats, frames)`` from the
            ``features`` frontend) or ``"waveform"`` (``(batch, time)``; the frontend is ``raw``).
        default_input_size: ``(n_feats, frames)`` the network was designed for, or ``None`` (any).
        min_input_size: Smallest usable ``(n_feats, frames)``, or ``None`` (no limit known).
        fit_frontend: When true, the frontend's ``n_mels`` and ``hop_length`` are derived from the
            network's ``input_size`` setting (default :attr:`default_input_size`), so the
            spectrogram already has the network's input size (report 003 §3.4.2, eq. 1–3).
        source: Paper or report section the network follows.
        pretrained: Where pretrained weights can come from (values of ``model.pretrained``),
            empty when the network trains from scratch only.
        whole_clips: It reads whole clips with their valid lengths (``network(features, lengths)``); the
            builder checks the built network agrees (:class:`~ser_lightning.models.facts.NetworkFacts`).
        sample_rate: The rate (Hz) its pretrained weights need, or ``None`` (any).
    """

    name: str
    builder: Callable[..., nn.Module]
    input_kind: str = "spectrogram"
    default_input_size: tuple[int, int] | None = None
    min_input_size: tuple[int, int] | None = None
    fit_frontend: bool = False
    source: str = ""
    pretrained: tuple[str, ...] = ()
    whole_clips: bool = False
    sample_rate: int | None = None


_MODELS: dict[str, ModelInfo] = {}
_DEPRECATED: dict[str, str] = {}

#: Module → the names it registers, imported on first use of one of them (every module for :func:`list_models`).
#: ``ensemble`` (trained checkpoints combined) registers from :mod:`ser_lightning.inference.ensemble`, which
#: ``ser_lightning.inference`` imports.
FAMILIES: dict[str, tuple[str, ...]] = {
    "ser_lightning.models.attention_fcn": ("attention_fcn", "attention_fcn_2d"),
    "ser_lightning.models.cnn": ("homebrew_cnn", "mfcc_cnn", "parallel_cnn", "plain_cnn", "residual_cnn"),
    "ser_lightning.models.encoders.zoo": ("byol_s", "ssl", "whisper_base", "whisper_tiny"),
    "ser_lightning.models.ensembles": ("joint_ensemble",),
    "ser_lightning.models.sequence": ("attentive_bilstm", "cls_transformer", "cnn_transformer"),
    "ser_lightning.models.timm_backbones": ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2",
                                            "inception_v3", "mobilenetv3_large_100", "tf_efficientnetv2_b0",
                                            "tf_efficientnetv2_b1", "vgg16"),
    "ser_lightning.models.wav2vec2": ("wav2vec2",),
}


def _import_families(name: str | None = None) -> None:
    """Import the module that registers ``name`` (every family module when ``None`` or not listed)."""
    modules = [m for m, names in FAMILIES.items() if name in names] or list(FAMILIES)
    for module in modules:
        importlib.import_module(module)


def register_model(
    name: str,
    *,
    input_kind: str = "spectrogram",
    default_input_size: Sequence[int] | None = None,
    min_input_size: Sequence[int] | None = None,
    fit_frontend: bool = False,
    source: str = "",
    pretrained: Sequence[str] = (),
    whole_clips: bool = False,
    sample_rate: int | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a network class or factory under ``name`` with its facts (:class:`ModelInfo`).

    Raises:
        ValueError: the name is already taken, or ``input_kind`` is not one of :data:`INPUT_KINDS`.
    """
    if input_kind not in INPUT_KINDS:
        raise ValueError(f"register_model({name!r}): input_kind={input_kind!r} is not one of {list(INPUT_KINDS)}")

    def size(s: Sequence[int] | None) -> tuple[int, int] | None:
        return None if s is None else (int(s[0]), int(s[1]))

    def deco(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS or name in _DEPRECATED:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = ModelInfo(name, builder, input_kind, size(default_input_size), size(min_input_size),
                                  bool(fit_frontend), source, tuple(pretrained), bool(whole_clips),
                                  None if sample_rate is None else int(sample_rate))
        return builder

    return deco


def register_model_deprecations(mapping: Mapping[str, str]) -> None:
    """Keep old names usable: each ``old`` name builds ``new``'s network, with a ``FutureWarning``.

    Args:
        mapping: ``{old name: current name}``.

    Raises:
        ValueError: an old name that is also a current one, or registered twice.
    """
    for old, new in mapping.items():
        if old in _MODELS or old in _DEPRECATED:
            raise ValueError(f"model {old!r} is registered twice")
        _DEPRECATED[old] = new


def list_models(include_deprecated: bool = False) -> list[str]:
    """Sorted registered names (with ``include_deprecated``, the deprecated aliases too).

    >>> import ser_lightning.models
    >>> "homebrew_cnn" in list_models() and "report001_cnn" not in list_models()
    True
    """
    _import_families()
    return sorted([*_MODELS, *(_DEPRECATED if include_deprecated else ())])


def is_model(name: str) -> bool:
    """True for a registered name or deprecated alias."""
    if name not in _MODELS and name not in _DEPRECATED:
        _import_families(name)
    return name in _MODELS or name in _DEPRECATED


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of ``name``; a deprecated alias resolves to its current name with a warning.

    Raises:
        ValueError: an unknown name (the message lists the registered ones).
    """
    if name in _DEPRECATED:
        new = _DEPRECATED[name]
        warnings.warn(f"model.name={name} is deprecated: it is now model={new} (same network and weights)",
                      FutureWarning, stacklevel=2)
        name = new
    if name not in _MODELS:
        _import_families(name)
    if name not in _MODELS:
        raise ValueError(f"model.name={name!r} is not a registered model; choose one of {list_models()}")
    return _MODELS[name]


def build_model(name: str, in_channels: int, num_classes: int, **settings) -> nn.Module:
    """Build a registered network.

    Args:
        name: Registered name or deprecated alias (see :func:`list_models`).
        in_channels: Channels of the feature input ``(batch, in_channels, n_feats, frames)``.
        num_classes: Output logits.
        **settings: Network-specific settings from ``conf/model/<name>.yaml``.

    Raises:
        ValueError: unknown name (the message lists the registered ones) or a bad setting.
    """
    return model_info(name).builder(in_channels=in_channels, num_classes=num_classes, **settings)
