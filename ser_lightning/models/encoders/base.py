"""The interface every pretrained speech encoder of this package follows.

An encoder reads a zero-padded batch of 16 kHz waveforms ``(batch, time)`` with the valid sample
counts ``lengths`` ``(batch,)`` and returns *all* its hidden states (so a head can learn a
weighted sum of layers) plus the valid frame count of each clip (so pooling can ignore padding).
It also numbers its parameters by layer group, bottom (input side) to top, which is what freezing
"all but the top k layers" and layer-wise learning-rate decay need.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn


def weights_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of a set of named tensors (an encoder's ``state_dict()``): each name and its raw bytes, by name.

    Two encoders with equal digests compute the same function, so a head trained on one fits the other.
    The frozen-feature cache keys on it and head-only checkpoints record it.

    Args:
        state: Tensor name → tensor (any device; read as contiguous CPU bytes).

    Returns:
        The hex digest (64 characters).
    """
    h = hashlib.sha256()
    for name, t in sorted(state.items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@dataclass
class EncoderOutput:
    """What an encoder returns.

    Attributes:
        hidden_states: One tensor ``(batch, frames, hidden_size)`` per hidden state, bottom to top
            (for transformers: the embedding output, then each layer's output; the last one is the
            encoder's final output).
        lengths: Valid frames per clip ``(batch,)``; frames at or beyond it are padding.
    """

    hidden_states: tuple[torch.Tensor, ...]
    lengths: torch.Tensor

    @property
    def last_hidden_state(self) -> torch.Tensor:
        """The final hidden state ``(batch, frames, hidden_size)``."""
        return self.hidden_states[-1]

    def padding_mask(self) -> torch.Tensor:
        """Boolean ``(batch, frames)``: True on valid frames, False on padding."""
        frames = self.hidden_states[-1].shape[1]
        return torch.arange(frames, device=self.lengths.device)[None, :] < self.lengths[:, None]


class SpeechEncoder(nn.Module):
    """Base class: a waveform encoder with hidden states, frame lengths and layer groups.

    Subclasses set ``hidden_size``, ``num_hidden_states`` and ``num_layer_groups`` and implement
    :meth:`forward` and :meth:`layer_group`.
    """

    #: Width of every hidden state.
    hidden_size: int
    #: How many hidden states :meth:`forward` returns.
    num_hidden_states: int
    #: Sample rate in Hz the encoder expects.
    sample_rate: int = 16000
    #: Whether :meth:`forward` takes ``norm`` ``(batch, 2)``: per-clip mean and sd that standardise
    #: its log-mel input (corpus statistics, ``model.norm_stats=per_corpus``); the encoder then has a
    #: ``frontend`` with ``frame_moments`` and fixed ``norm_mean`` / ``norm_std``.
    takes_norm_stats: bool = False

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> EncoderOutput:
        """Hidden states of waveforms ``(batch, time)`` with valid sample counts ``(batch,)``."""
        raise NotImplementedError

    #: How many layer groups :meth:`layer_group` numbers (``0`` … ``num_layer_groups - 1``).
    num_layer_groups: int

    def layer_group(self, name: str) -> int:
        """Group of a parameter or module, by its name inside this encoder, bottom (0) to top.

        The groups stack the encoder from the input side (0: frontend / convolutional stem) to the
        output (``num_layer_groups - 1``: the top layer and any final norm). The top ``k`` groups are
        what "top-k layers trainable" unfreezes; layer-wise learning-rate decay scales the rate of
        group ``g`` by ``decay ** (num_layer_groups - 1 - g)``.

        Args:
            name: A ``named_parameters()`` / ``named_modules()`` name of this encoder.
        """
        raise NotImplementedError
