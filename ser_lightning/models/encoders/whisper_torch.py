"""Whisper's audio encoder as plain PyTorch modules, with ``transformers``' ``WhisperEncoder`` parameter names.

The encoder of Radford et al. 2022 (§2.2, Figure 1): two 1-d convolutions (the second with stride 2) with GELU, fixed
position embeddings, pre-norm transformer layers (self-attention, GELU MLP), a final layer norm. The modules and
their parameter names are those of ``transformers.models.whisper.modeling_whisper.WhisperEncoder`` (5.x), and every
operation is the same PyTorch call in the same order (``scaled_dot_product_attention`` as its default ``sdpa``
attention, queries scaled by ``head_dim ** -0.5`` before it and ``scale=1``), so a state dict moves between the two
unchanged and the hidden states are the same numbers (tests/test_predict_imports.py compares them). It exists
so that loading the packaged encoders (:func:`~ser_lightning.models.encoders.whisper.build_whisper_tiny`, ``_base``)
does not import ``transformers`` (about 3 s and 300 MB before the first prediction); hub checkpoints
(``model=ssl``) still use ``transformers`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class WhisperEncoderConfig:
    """The sizes of a Whisper encoder (the ``WhisperConfig`` fields :class:`WhisperEncoderNetwork` reads).

    Attributes:
        d_model: Width of the hidden states.
        encoder_layers: Transformer layers.
        encoder_attention_heads: Attention heads per layer.
        encoder_ffn_dim: Hidden width of each layer's MLP.
        num_mel_bins: Log-mel channels of the input.
        max_source_positions: Position embeddings (1500: 30 s of 20 ms frames).
    """

    d_model: int
    encoder_layers: int
    encoder_attention_heads: int
    encoder_ffn_dim: int
    num_mel_bins: int = 80
    max_source_positions: int = 1500


class WhisperSelfAttention(nn.Module):
    """Multi-head self-attention (``WhisperAttention`` of an encoder layer: no bias on the key projection).

    Shapes:
        ``(batch, frames, d_model)`` and an additive mask ``(batch, 1, 1, frames)`` (or ``None``) →
        ``(batch, frames, d_model)``.
    """

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"Whisper encoder: d_model {embed_dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.scaling = self.head_dim ** -0.5
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=False)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attention output ``(batch, frames, d_model)``."""
        shape = (x.shape[0], -1, self.num_heads, self.head_dim)
        q = (self.q_proj(x) * self.scaling).view(shape).transpose(1, 2).contiguous()
        k = self.k_proj(x).view(shape).transpose(1, 2).contiguous()
        v = self.v_proj(x).view(shape).transpose(1, 2).contiguous()
        out = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, scale=1.0,
                                                         is_causal=False)
        out = out.transpose(1, 2).contiguous().reshape(*x.shape[:-1], -1).contiguous()
        return self.out_proj(out)


class WhisperEncoderLayer(nn.Module):
    """One pre-norm transformer layer of the encoder (``WhisperEncoderLayer``, inference: no dropout).

    Shapes:
        ``(batch, frames, d_model)`` (+ additive mask ``(batch, 1, 1, frames)``) → ``(batch, frames, d_model)``.
    """

    def __init__(self, config: WhisperEncoderConfig) -> None:
        super().__init__()
        self.self_attn = WhisperSelfAttention(config.d_model, config.encoder_attention_heads)
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model)
        self.fc1 = nn.Linear(config.d_model, config.encoder_ffn_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_dim, config.d_model)
        self.final_layer_norm = nn.LayerNorm(config.d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The layer's output ``(batch, frames, d_model)``."""
        x = x + self.self_attn(self.self_attn_layer_norm(x), mask)
        h = self.fc2(nn.functional.gelu(self.fc1(self.final_layer_norm(x))))
        x = x + h
        if x.dtype == torch.float16:
            limit = torch.finfo(x.dtype).max - 1000
            x = torch.clamp(x, min=-limit, max=limit)
        return x


class WhisperEncoder(nn.Module):
    """Whisper's encoder modules (``conv1``, ``conv2``, ``embed_positions``, ``layers``, ``layer_norm``).

    The forward pass over a clip's own frames is
    :meth:`~ser_lightning.models.encoders.whisper.WhisperEncoderNetwork.forward_features`, which reads these
    modules (as it reads ``transformers``' ``WhisperEncoder``).

    Args:
        config: The encoder's sizes.
    """

    #: Dropout of the embedding output (0: Whisper's encoders are used without it here).
    dropout = 0.0

    def __init__(self, config: WhisperEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.conv1 = nn.Conv1d(config.num_mel_bins, config.d_model, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(config.d_model, config.d_model, kernel_size=3, stride=2, padding=1)
        # fixed positions, always loaded from weights: created uninitialised (on the meta device, initialising them
        # would import torch._dynamo)
        self.embed_positions = nn.Embedding(config.max_source_positions, config.d_model,
                                            _weight=torch.zeros(config.max_source_positions, config.d_model))
        self.embed_positions.requires_grad_(False)
        self.layers = nn.ModuleList([WhisperEncoderLayer(config) for _ in range(config.encoder_layers)])
        self.layer_norm = nn.LayerNorm(config.d_model)
