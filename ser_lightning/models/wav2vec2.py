"""Wav2Vec2 fine-tuning on raw 16 kHz audio with a classification head (report 001 §6).

Built on torchaudio's ``Wav2Vec2Model`` (Baevski et al. 2020, "wav2vec 2.0"). Weights:

* ``pretrained: hub`` – torchaudio's ``WAV2VEC2_BASE`` bundle (LibriSpeech 960 h, self-supervised),
  downloaded on first use; needs internet.
* ``pretrained: /path/to/state_dict.pt`` – a local torchaudio-format state dict of the same
  configuration (e.g. saved once with
  ``torch.save(torchaudio.pipelines.WAV2VEC2_BASE.get_model().state_dict(), path)``).
* ``pretrained: null`` – random initialisation.

No weights are reachable on the development machine: the tests use ``config: tiny`` with random
weights.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ser_lightning.models.registry import register_model
from ser_lightning.models.weights_source import loading_from_checkpoint

#: torchaudio ``wav2vec2_model`` arguments per configuration name.
CONFIGS: dict[str, dict] = {
    "base": dict(
        extractor_mode="group_norm",
        extractor_conv_layer_config=[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2,
        extractor_conv_bias=False, encoder_embed_dim=768, encoder_projection_dropout=0.1,
        encoder_pos_conv_kernel=128, encoder_pos_conv_groups=16, encoder_num_layers=12,
        encoder_num_heads=12, encoder_attention_dropout=0.1, encoder_ff_interm_features=3072,
        encoder_ff_interm_dropout=0.0, encoder_dropout=0.1, encoder_layer_norm_first=False,
        encoder_layer_drop=0.05, aux_num_out=None,
    ),
    "tiny": dict(
        extractor_mode="group_norm",
        extractor_conv_layer_config=[(32, 10, 5), (32, 3, 2), (32, 2, 2)],
        extractor_conv_bias=False, encoder_embed_dim=32, encoder_projection_dropout=0.0,
        encoder_pos_conv_kernel=16, encoder_pos_conv_groups=4, encoder_num_layers=2,
        encoder_num_heads=2, encoder_attention_dropout=0.0, encoder_ff_interm_features=64,
        encoder_ff_interm_dropout=0.0, encoder_dropout=0.0, encoder_layer_norm_first=False,
        encoder_layer_drop=0.0, aux_num_out=None,
    ),
}


class _CheckpointedLayer(nn.Module):
    """Runs a transformer layer under activation checkpointing while training."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x, attention_mask=None, position_bias=None, key_padding_mask=None):
        if self.training and torch.is_grad_enabled():
            return checkpoint(self.layer, x, attention_mask, position_bias, key_padding_mask, use_reentrant=False)
        return self.layer(x, attention_mask, position_bias, key_padding_mask)


@register_model("wav2vec2", input_kind="waveform", source="report 001 §6; Baevski et al. 2020",
                pretrained=("hub", "state-dict file"))
class Wav2Vec2Classifier(nn.Module):
    """Wav2Vec2 encoder + mean pooling over time + linear head (report 001 §6).

    The network reads the waveform itself: ``input: waveform`` in its config makes
    ``SERClassifier`` use the raw frontend whatever ``features=`` says.

    Args:
        in_channels: Must be 1 (mono waveform).
        num_classes: Number of emotion classes.
        config: ``base`` (95 M parameters, report 001) or ``tiny`` (tests).
        pretrained: ``null``, ``hub`` or a local state-dict path (module docstring).
        freeze_feature_extractor: Keep the convolutional feature encoder frozen (common practice
            when fine-tuning wav2vec 2.0).
        gradient_checkpointing: Recompute transformer activations in the backward pass.
        dropout: Dropout before the head.

    Shapes:
        waveform ``(batch, time)`` at 16 kHz → logits ``(batch, num_classes)``.

    Raises:
        ValueError: unknown config, ``in_channels != 1``, or a state dict that does not fit.
        RuntimeError: ``pretrained: hub`` without internet (the message names the local-path option).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 8,
        config: str = "base",
        pretrained: str | None = None,
        freeze_feature_extractor: bool = True,
        gradient_checkpointing: bool = False,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        import torchaudio

        if config not in CONFIGS:
            raise ValueError(f"model.config={config!r} is not one of {sorted(CONFIGS)}")
        if in_channels != 1:
            raise ValueError(f"wav2vec2 reads a mono waveform; got in_channels={in_channels}")
        self.encoder = torchaudio.models.wav2vec2_model(**CONFIGS[config])
        self.weights_source = "random initialisation"
        if pretrained and loading_from_checkpoint():
            self.weights_source = "checkpoint"  # its state dict replaces the encoder's weights
        elif pretrained == "hub":
            if config != "base":
                raise ValueError("model.pretrained=hub needs model.config=base")
            try:
                self.encoder = torchaudio.pipelines.WAV2VEC2_BASE.get_model()
            except Exception as err:
                raise RuntimeError(
                    f"model.pretrained=hub: could not download torchaudio's WAV2VEC2_BASE weights ({err}); "
                    "save them once where you have internet and set model.pretrained=/path/to/state_dict.pt"
                ) from None
            self.weights_source = "hub: torchaudio WAV2VEC2_BASE"
        elif pretrained:
            state = torch.load(pretrained, map_location="cpu", weights_only=True)
            missing, unexpected = self.encoder.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise ValueError(f"model.pretrained={pretrained}: state dict does not fit config {config!r} "
                                 f"(missing {missing[:3]}..., unexpected {unexpected[:3]}...)")
            self.weights_source = f"file: {pretrained}"
        self.encoder.aux = None
        if freeze_feature_extractor:
            for p in self.encoder.feature_extractor.parameters():
                p.requires_grad = False
        if gradient_checkpointing:
            layers = self.encoder.encoder.transformer.layers
            for i, layer in enumerate(layers):
                layers[i] = _CheckpointedLayer(layer)
        dim = CONFIGS[config]["encoder_embed_dim"]
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(dim, num_classes)

    def backbone_parameters(self):
        """Parameters of the pretrained encoder (for a separate, lower learning rate)."""
        return self.encoder.parameters()

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_classes)`` from waveforms ``(batch, time)``."""
        if wave.dim() == 3:
            wave = wave[:, 0]
        hidden, _ = self.encoder(wave)  # (batch, frames, dim)
        return self.head(self.dropout(hidden.mean(dim=1)))
