"""The one builder: ``model`` + ``features`` settings → feature frontend + network.

``SERClassifier``, config validation and (through ``SERClassifier``) the checkpoint ensemble
all build their frontend and network here, so the facts a network registered
(:class:`~ser_lightning.models.registry.ModelInfo`: input kind, input size) are applied in one
place.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ser_lightning.features.frontend import build_frontend
from ser_lightning.features.geometry import spectrogram_geometry
from ser_lightning.models.facts import derive_facts
from ser_lightning.models.registry import model_info

#: Keys of ``model`` settings that are not network arguments: ``name``; ``input`` (the input kind,
#: written by older configs and checkpoints; now a registered fact); ``backbone_lr_mult`` (an
#: optimiser setting, read by ``SERClassifier``); ``feature_cache`` (``auto``/``off``: whether a
#: frozen encoder model trains on cached frozen features, read by the training task); ``extract_batch_size``
#: (clips per batch of that cache's extraction); ``norm_stats`` (``fixed``/``per_corpus``: which
#: statistics standardise an encoder's log-mel, read by ``SERClassifier`` and the training task).
NON_NETWORK_KEYS = ("name", "input", "backbone_lr_mult", "feature_cache", "extract_batch_size", "norm_stats")


def fit_geometry(features: dict[str, Any], num_samples: int, input_size) -> dict[str, int]:
    """Frontend ``n_mels`` and ``hop_length`` giving an ``input_size = [H, W]`` spectrogram.

    Args:
        features: Frontend settings (``sample_rate`` Hz, ``n_fft`` samples).
        num_samples: Clip length in samples.
        input_size: ``[n_mels, frames]`` the network expects.

    Returns:
        ``{"n_mels": H, "hop_length": samples}`` (report 003 §3.4.2, eq. 1–3).
    """
    sr = int(features["sample_rate"])
    geo = spectrogram_geometry(sample_rate=sr, duration_s=num_samples / sr, n_fft=int(features.get("n_fft", 1024)),
                               target_frames=int(input_size[1]), target_bins=int(input_size[0]))
    return {"n_mels": int(geo["n_mels"]), "hop_length": int(geo["hop_length"])}


def frontend_settings(model: dict[str, Any], features: dict[str, Any], num_samples: int | None = None) -> dict[str, Any]:
    """The frontend settings a network gets: ``features`` as configured, ``raw`` for a waveform
    network, with the geometry fitted to the network's input size where it asks for that.

    Args:
        model: Network settings (``name`` + the network's own settings).
        features: Frontend settings (``name`` + the frontend's own settings).
        num_samples: Clip length in samples (needed to fit the geometry; ``None``: not fitted).

    Returns:
        Frontend settings including ``name``.

    Raises:
        ValueError: unknown ``model.name``, or a ``model.input`` that contradicts the registered input kind.
    """
    return _frontend_settings(model_info(model["name"]), model, features, num_samples)


def _frontend_settings(info, model: dict[str, Any], features: dict[str, Any], num_samples: int | None) -> dict[str, Any]:
    given = model.get("input")
    if given is not None and given not in ("features", "spectrogram", info.input_kind):
        raise ValueError(f"model.input={given!r} contradicts {info.name}'s registered input ({info.input_kind})")
    feat = dict(features)
    if info.input_kind == "waveform":  # Wav2Vec2, checkpoint ensembles
        return {"name": "raw", "sample_rate": feat.get("sample_rate", 16000)}
    input_size = model.get("input_size") or (info.default_input_size if info.fit_frontend else None)
    if input_size and num_samples:
        feat.update(fit_geometry(feat, num_samples, input_size))
    return feat


def build_network(model: dict[str, Any], features: dict[str, Any], num_classes: int,
                  num_samples: int | None = None) -> tuple[nn.Module, nn.Module]:
    """Build the feature frontend and the network from their settings.

    Args:
        model: Network settings: ``name`` (registered name or deprecated alias) + its settings
            (``input`` and ``backbone_lr_mult`` are accepted and not passed on).
        features: Frontend settings: ``name`` (``logmel``/``mfcc``) + its settings.
        num_classes: Output logits.
        num_samples: Clip length in samples, for networks whose frontend geometry is fitted to
            their input size (timm backbones).

    Returns:
        ``(frontend, network)``: waveforms ``(batch, time)`` → features ``(batch, channels,
        n_feats, frames)`` (or the waveform itself for a waveform network) → logits
        ``(batch, num_classes)``. The network carries its :class:`~ser_lightning.models.facts.NetworkFacts` as
        ``network.facts``.

    Raises:
        ValueError: unknown model or frontend name, or a bad setting (named in the message).
    """
    info = model_info(model["name"])
    feat = _frontend_settings(info, model, features, num_samples)
    frontend = build_frontend(feat.pop("name"), **feat)
    net = {k: v for k, v in model.items() if k not in NON_NETWORK_KEYS}
    network = info.builder(in_channels=frontend.out_channels, num_classes=num_classes, **net)
    facts = derive_facts(network, info.input_kind, info.sample_rate)
    if facts.whole_clips != info.whole_clips:
        raise ValueError(f"model {info.name}: its registry entry declares whole_clips={info.whole_clips}, but the "
                         f"built {type(network).__name__} {'reads' if facts.whole_clips else 'does not read'} whole clips")
    network.facts = facts  # what the rest of the platform asks (models/facts.py)
    return frontend, network
