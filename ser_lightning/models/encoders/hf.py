"""Hugging Face ``transformers`` speech encoders by hub id or local directory (for users online).

Supported families (``AutoModel``): wav2vec 2.0 (Baevski et al. 2020), HuBERT (Hsu et al. 2021),
WavLM (Chen et al. 2022), data2vec-audio (Baevski et al. 2022) and their wav2vec2-style relatives
(UniSpeech, UniSpeech-SAT, wav2vec2-conformer), which read the raw waveform; and Whisper
(Radford et al. 2022), whose encoder is wrapped in
:class:`~ser_lightning.models.encoders.whisper.WhisperEncoderNetwork` (own-length log-mel input).

Nothing is downloaded unless a hub id is given and the hub is reachable; a local directory
written by ``save_pretrained`` works offline.

Input conventions come from the checkpoint's ``preprocessor_config.json`` when present
(``do_normalize``: per-clip zero mean / unit variance over the clip's own samples;
``return_attention_mask``: whether the model is given a padding mask). Without that file, the
defaults of ``transformers``' ``Wav2Vec2FeatureExtractor`` are used with a warning: normalise, and
pass a mask when the convolutional stem uses layer norm (``feat_extract_norm="layer"``; the
group-norm "base" models were trained without masks and are given zero padding instead, as
``transformers`` documents, so their frames depend slightly on a batch's padding).
"""

from __future__ import annotations

import re
import warnings

import torch
from torch import nn

from ser_lightning.features.encoder_frontends import _check_batch, frame_mask
from ser_lightning.models.encoders.base import EncoderOutput, SpeechEncoder
from ser_lightning.models.encoders.whisper import WhisperEncoderNetwork

#: ``config.model_type`` values read as raw-waveform (wav2vec2-style) encoders.
WAVEFORM_MODEL_TYPES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio", "unispeech", "unispeech-sat",
                        "wav2vec2-conformer")
_LAYER = re.compile(r"(?:^|\.)encoder\.layers\.(\d+)(\.|$)")


class HFWaveformEncoder(SpeechEncoder):
    """A wav2vec2-style ``transformers`` model returning all hidden states and frame lengths.

    Args:
        model: The ``transformers`` base model (e.g. ``WavLMModel``).
        normalize: Standardise each clip over its own samples before the model.
        use_attention_mask: Give the model a padding mask.

    The model's LayerDrop is switched off (``config.layerdrop = 0``) so that every forward pass
    returns all hidden states.

    Shapes:
        wave ``(batch, time)`` at 16 kHz + lengths ``(batch,)`` → ``layers + 1`` hidden states
        ``(batch, frames, hidden_size)`` (``transformers``' ``output_hidden_states``: the
        transformer's input, then each layer's output) and valid frames ``(batch,)``.
    """

    def __init__(self, model: nn.Module, normalize: bool, use_attention_mask: bool) -> None:
        super().__init__()
        # LayerDrop would skip layers at random in training, changing the number of hidden states
        # a learned layer weighting sees; it is switched off.
        if getattr(model.config, "layerdrop", 0.0):
            model.config.layerdrop = 0.0
        self.model = model
        self.normalize, self.use_attention_mask = bool(normalize), bool(use_attention_mask)
        cfg = model.config
        self.hidden_size = int(cfg.hidden_size)
        self.num_hidden_states = int(cfg.num_hidden_layers) + 1
        self.num_layer_groups = int(cfg.num_hidden_layers) + 1
        self._final_norm_on_top = bool(getattr(cfg, "do_stable_layer_norm", False))

    def layer_group(self, name: str) -> int:
        """Groups: convolutional stem, projection and positional convolution (0), layer ``i`` (``i + 1``).

        The encoder's own layer norm sits at the bottom for post-norm models (applied before the
        layers) and at the top for pre-norm ("stable layer norm", large) models.
        """
        if m := _LAYER.search(name):
            return int(m.group(1)) + 1
        if self._final_norm_on_top and re.search(r"(?:^|\.)encoder\.layer_norm(\.|$)", name):
            return self.num_layer_groups - 1
        return 0

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> EncoderOutput:
        """Hidden states of waveforms ``(batch, time)`` (see the class docstring)."""
        wave, lengths = _check_batch(wave, lengths, type(self.model).__name__)
        valid = frame_mask(lengths, wave.shape[1])
        if self.normalize:  # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm, per clip, valid samples only
            n = lengths[:, None].float()
            mean = wave.sum(1, keepdim=True) / n
            var = (((wave - mean) * valid) ** 2).sum(1, keepdim=True) / n
            wave = (wave - mean) / torch.sqrt(var + 1e-7) * valid
        mask = valid.long() if self.use_attention_mask else None
        out = self.model(input_values=wave, attention_mask=mask, output_hidden_states=True)
        frames = self.model._get_feat_extract_output_lengths(lengths).long()
        return EncoderOutput(hidden_states=tuple(out.hidden_states), lengths=frames)


def _preprocessing(name_or_path: str, config) -> tuple[bool, bool]:
    """``(do_normalize, return_attention_mask)`` from the checkpoint's feature extractor, else defaults."""
    from transformers import AutoFeatureExtractor

    try:
        fe = AutoFeatureExtractor.from_pretrained(name_or_path)
        return bool(getattr(fe, "do_normalize", True)), bool(getattr(fe, "return_attention_mask", False))
    except (OSError, ValueError):
        use_mask = getattr(config, "feat_extract_norm", "layer") == "layer"
        warnings.warn(f"{name_or_path}: no preprocessor_config.json; assuming do_normalize=True and "
                      f"return_attention_mask={use_mask} (transformers' Wav2Vec2FeatureExtractor defaults)",
                      stacklevel=3)
        return True, use_mask


def build_hf_encoder(name_or_path: str, pad_to_30s: bool = False, normalize: bool | None = None,
                     attention_mask: bool | None = None) -> SpeechEncoder:
    """A pretrained ``transformers`` speech encoder from a hub id or a local directory.

    Args:
        name_or_path: Hub id (e.g. ``microsoft/wavlm-base-plus``, ``openai/whisper-small``) or a
            directory written by ``save_pretrained``.
        pad_to_30s: Whisper only: encode the native 30 s window instead of each clip's own length.
        normalize: Override the checkpoint's ``do_normalize`` (waveform models).
        attention_mask: Override the checkpoint's ``return_attention_mask`` (waveform models).

    Returns:
        :class:`HFWaveformEncoder` or, for Whisper checkpoints, :class:`WhisperEncoderNetwork`.

    Raises:
        ValueError: a ``model_type`` that is neither Whisper nor a wav2vec2-style model.
        OSError: ``transformers`` cannot find the checkpoint (offline with a hub id, or a wrong path).
    """
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(name_or_path)
    if config.model_type == "whisper":
        # AutoModel maps both WhisperModel and WhisperForConditionalGeneration checkpoints onto
        # WhisperModel; only its encoder is kept.
        encoder = AutoModel.from_pretrained(name_or_path).get_encoder()
        return WhisperEncoderNetwork(encoder, pad_to_30s=pad_to_30s)
    if config.model_type not in WAVEFORM_MODEL_TYPES:
        raise ValueError(f"model.encoder={name_or_path}: model_type {config.model_type!r} is not a supported "
                         f"speech encoder (whisper or one of {WAVEFORM_MODEL_TYPES})")
    model = AutoModel.from_pretrained(name_or_path)
    default_norm, default_mask = _preprocessing(name_or_path, config)
    return HFWaveformEncoder(model, normalize=default_norm if normalize is None else normalize,
                             use_attention_mask=default_mask if attention_mask is None else attention_mask)
