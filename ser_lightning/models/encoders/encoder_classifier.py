"""Pretrained encoder + learned layer weighting + padding-aware pooling + MLP head.

:class:`EncoderClassifier` is the network of the encoder model family: it reads variable-length
16 kHz waveforms ``(batch, time)`` with their lengths ``(batch,)``. Three freezing modes:

* ``frozen`` — the encoder is fixed and kept in ``eval`` mode (no dropout, batch-norm statistics
  untouched) and run without gradients; only the layer weights, pooling and head train. Its
  hidden states can then be computed once and cached (:meth:`EncoderClassifier.encode` →
  :meth:`EncoderClassifier.forward_hidden`).
* ``top_k`` — the top ``trainable_layers`` layer groups of the encoder train
  (:meth:`~ser_lightning.models.encoders.base.SpeechEncoder.layer_group`); the groups below stay
  fixed and in ``eval`` mode.
* ``full`` — everything trains.

:meth:`EncoderClassifier.parameter_groups` builds optimiser groups with layer-wise learning-rate
decay (Clark et al., "ELECTRA", ICLR 2020, App. A; Bao et al., "BEiT", ICLR 2022, §2.4): the head
at the base rate, encoder group ``g`` (of ``G``) at ``lr · decay^(G − g)``.

Two orders of pooling and layer combination:

* frames first (default): a weighted sum of the hidden states' frames, then pooling;
* ``pool_each_layer=True``: every hidden state is pooled on its own (mean or mean + std over its
  valid frames), the pooled vectors are standardised (``pooled_norm``: batch normalisation
  without affine parameters, i.e. training-set statistics) and combined (``layer_combine``:
  learned softmax weights, concatenation or the last one). With a frozen encoder and a pooling
  without parameters, the pooled vectors ``(hidden_states, pooled_dim)`` of a clip never change,
  so they can be computed once and cached (:attr:`EncoderClassifier.cacheable`,
  :meth:`EncoderClassifier.pooled_states` → :meth:`EncoderClassifier.forward_pooled`); the
  probes that motivated this concatenated the mean + std of several layers.
"""

from __future__ import annotations

import torch
from torch import nn

from ser_lightning.models.encoders.base import EncoderOutput, SpeechEncoder
from ser_lightning.models.encoders.heads import LayerWeightedSumOrLast, MLPHead, build_pooling

FREEZE_MODES = ("frozen", "top_k", "full")
LAYER_COMBINES = ("weighted", "concat", "last")
#: Names understood by :func:`build_encoder` besides hub ids and local directories.
ENCODERS = ("byol_s", "whisper_tiny", "whisper_base")


class EncoderClassifier(nn.Module):
    """Speech encoder → weighted sum of hidden states → pooling over valid frames → MLP head.

    Args:
        encoder: A :class:`~ser_lightning.models.encoders.base.SpeechEncoder`.
        num_classes: Number of emotion classes.
        pooling: ``mean``, ``mean_std`` or ``attentive`` (attentive statistics pooling).
        layer_weighting: Learn a softmax-weighted sum of all hidden states; otherwise use the last.
            Ignored (last state) for encoders with a single hidden state.
        layer_norm: Layer-normalise each hidden state before the weighted sum.
        head_hidden: Width of the head's hidden layers.
        head_layers: Number of hidden layers of the head (0: linear).
        dropout: Dropout in the head.
        freeze: ``frozen``, ``top_k`` or ``full`` (module docstring).
        trainable_layers: With ``top_k``: how many layer groups, counted from the top, train.
        attention_dim: Hidden width of attentive pooling.
        pool_each_layer: Pool every hidden state separately, then combine the pooled vectors
            (module docstring); otherwise combine the frames, then pool.
        layer_combine: With ``pool_each_layer``: ``weighted`` (learned softmax weights),
            ``concat`` or ``last``.
        pooled_norm: With ``pool_each_layer``: standardise each pooled feature with batch
            statistics (``BatchNorm1d`` without affine parameters) before combining.
        layer_decay: Layer-wise learning-rate decay factor in ``(0, 1]`` (read by
            :meth:`parameter_groups` when the optimiser is built).
        layers: Which hidden states the head reads, as indices into the encoder's hidden states
            (0 = the stem's output, negative from the top; e.g. ``[1, 2, 3, 4]`` for Whisper tiny's four
            transformer layers without its convolutional stem); ``None``: all. The frozen-feature
            cache keeps every hidden state, so changing this reuses it.

    Shapes:
        wave ``(batch, time)`` at the encoder's sample rate + lengths ``(batch,)`` (+ optional
        per-clip standardisation statistics ``norm`` ``(batch, 2)`` for an encoder that
        :attr:`takes_norm_stats`) → logits ``(batch, num_classes)``.

    Raises:
        ValueError: an unknown ``freeze`` mode, or ``trainable_layers`` outside
            ``1 … encoder.num_layer_groups`` with ``top_k``, an unknown ``layer_combine``, a
            ``layer_decay`` outside ``(0, 1]``, or ``layers`` empty, repeated or out of range.
    """

    def __init__(
        self,
        encoder: SpeechEncoder,
        num_classes: int = 8,
        pooling: str = "mean_std",
        layer_weighting: bool = True,
        layer_norm: bool = False,
        head_hidden: int = 256,
        head_layers: int = 1,
        dropout: float = 0.2,
        freeze: str = "frozen",
        trainable_layers: int = 2,
        attention_dim: int = 128,
        pool_each_layer: bool = False,
        layer_combine: str = "weighted",
        pooled_norm: bool = True,
        layer_decay: float = 1.0,
        layers: list[int] | None = None,
    ) -> None:
        super().__init__()
        if layer_combine not in LAYER_COMBINES:
            raise ValueError(f"model.layer_combine={layer_combine!r} is not one of {LAYER_COMBINES}")
        if not 0.0 < float(layer_decay) <= 1.0:
            raise ValueError(f"model.layer_decay={layer_decay} must lie in (0, 1]")
        if freeze not in FREEZE_MODES:
            raise ValueError(f"model.freeze={freeze!r} is not one of {FREEZE_MODES}")
        groups = encoder.num_layer_groups
        if freeze == "top_k" and not 1 <= trainable_layers <= groups:
            raise ValueError(f"model.trainable_layers={trainable_layers} must lie in 1..{groups} "
                             f"(layer groups of {type(encoder).__name__})")
        self.encoder = encoder
        self.freeze = freeze
        self.trainable_from = {"frozen": groups, "top_k": groups - trainable_layers, "full": 0}[freeze]
        self.pool_each_layer, self.layer_combine = bool(pool_each_layer), layer_combine
        self.layer_decay = float(layer_decay)
        n_all, dim = encoder.num_hidden_states, encoder.hidden_size
        self.layer_index = self._layer_index(layers, n_all)
        n_states = len(self.layer_index)
        self.pooling = build_pooling(pooling, dim, attention_dim)
        pooled = self.pooling.output_dim(dim)
        if self.pool_each_layer:
            weighted = layer_combine == "weighted" and n_states > 1
            self.layer_weights = LayerWeightedSumOrLast(n_states, weighted, False)
            self.pooled_norm = nn.BatchNorm1d(n_states * pooled, affine=False) if pooled_norm else None
            head_in = n_states * pooled if layer_combine == "concat" else pooled
        else:
            self.layer_weights = LayerWeightedSumOrLast(n_states, layer_weighting, layer_norm)
            self.pooled_norm = None
            head_in = pooled
        self.pooled_shape = (n_all, pooled)  # what the cache stores: every hidden state
        self.head = MLPHead(head_in, num_classes, head_hidden, head_layers, dropout)
        for name, p in self.encoder.named_parameters():
            p.requires_grad_(self.encoder.layer_group(name) >= self.trainable_from)
        self._set_frozen_modes()

    @staticmethod
    def _layer_index(layers: list[int] | None, n_states: int) -> list[int]:
        """``model.layers`` as sorted non-negative indices (see the class docstring)."""
        if layers is None:
            return list(range(n_states))
        if isinstance(layers, (int, str)) or not len(layers):
            raise ValueError(f"model.layers={layers!r} must be null (all) or a non-empty list of hidden-state indices")
        index = [int(i) + n_states if int(i) < 0 else int(i) for i in layers]
        if any(not 0 <= i < n_states for i in index) or len(set(index)) != len(index):
            raise ValueError(f"model.layers={list(layers)} must name distinct hidden states in 0..{n_states - 1} "
                             f"(or -{n_states}..-1); the encoder has {n_states}")
        return sorted(index)

    def _select(self, hidden_states):
        """The hidden states of :attr:`layer_index` (a tuple of tensors, or dim 1 of one tensor)."""
        if len(self.layer_index) == self.encoder.num_hidden_states:
            return hidden_states
        if torch.is_tensor(hidden_states):
            return hidden_states[:, self.layer_index]
        return tuple(hidden_states[i] for i in self.layer_index)

    @property
    def cacheable(self) -> bool:
        """True when a clip's :meth:`pooled_states` never change during training: a frozen encoder,
        per-layer pooling and a pooling without parameters (mean, mean + std)."""
        return self.encoder_frozen and self.pool_each_layer and not any(True for _ in self.pooling.parameters())

    @property
    def takes_norm_stats(self) -> bool:
        """True when the encoder standardises its log-mel with statistics that can be given per clip
        (``norm`` of :meth:`forward`; ``model.norm_stats=per_corpus``)."""
        return bool(self.encoder.takes_norm_stats)

    @property
    def encoder_frozen(self) -> bool:
        """True when no encoder parameter trains (its hidden states are cacheable)."""
        return self.trainable_from >= self.encoder.num_layer_groups

    def _set_frozen_modes(self) -> None:
        """Put every module of a frozen layer group in eval mode (dropout off, batch-norm stats fixed).

        Each module's own ``training`` flag is set from its own group, not recursively, so a
        container spanning several groups (e.g. the encoder itself) does not switch its trainable
        children off; its own computations (e.g. dropout after the stem) follow its group.
        """
        for name, module in self.encoder.named_modules():
            if self.encoder.layer_group(name + "." if name else "") < self.trainable_from:
                module.training = False

    def train(self, mode: bool = True) -> EncoderClassifier:
        """Set train/eval mode; the frozen part of the encoder always stays in eval mode."""
        super().train(mode)
        if mode:
            self._set_frozen_modes()
        return self

    def encode(self, wave: torch.Tensor, lengths: torch.Tensor | None = None,
               norm: torch.Tensor | None = None) -> EncoderOutput:
        """Encoder hidden states (no gradients when the encoder is frozen).

        Args:
            wave: ``(batch, time)``. lengths: ``(batch,)`` valid samples.
            norm: ``(batch, 2)`` per-clip mean and sd for the encoder's log-mel (``None``: its
                fixed statistics).

        Raises:
            ValueError: ``norm`` given to an encoder that does not take it.
        """
        args = (wave, lengths)
        if norm is not None:
            if not self.takes_norm_stats:
                raise ValueError(f"{type(self.encoder).__name__} takes no per-clip standardisation statistics")
            args = (wave, lengths, norm)
        if self.encoder_frozen:
            with torch.no_grad():
                return self.encoder(*args)
        return self.encoder(*args)

    def forward_hidden(self, hidden_states, lengths: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_classes)`` from hidden states (e.g. cached ones).

        Args:
            hidden_states: ``num_hidden_states`` tensors ``(batch, frames, dim)`` or one tensor
                ``(batch, num_hidden_states, frames, dim)``.
            lengths: Valid frames per clip ``(batch,)``.
        """
        return self.head(self.embed_hidden(hidden_states, lengths))

    def embed_hidden(self, hidden_states, lengths: torch.Tensor) -> torch.Tensor:
        """Pooled clip vectors ``(batch, pooled_dim)`` from hidden states (see :meth:`forward_hidden`)."""
        return self.pooling(self.layer_weights(self._select(hidden_states)), lengths)

    def pool_states(self, hidden_states, lengths: torch.Tensor) -> torch.Tensor:
        """Every hidden state pooled on its own over its valid frames.

        Args:
            hidden_states: ``num_hidden_states`` tensors ``(batch, frames, dim)`` or one tensor
                ``(batch, num_hidden_states, frames, dim)``.
            lengths: Valid frames per clip ``(batch,)``.

        Returns:
            ``(batch, num_hidden_states, pooled_dim)``.
        """
        x = hidden_states if torch.is_tensor(hidden_states) else torch.stack(tuple(hidden_states), dim=1)
        b, n, f, d = x.shape
        return self.pooling(x.reshape(b * n, f, d), lengths.repeat_interleave(n)).reshape(b, n, -1)

    def pooled_states(self, wave: torch.Tensor, lengths: torch.Tensor | None = None,
                      norm: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled hidden states ``(batch, num_hidden_states, pooled_dim)`` of waveforms ``(batch, time)``
        (what the frozen-feature cache stores; needs ``pool_each_layer``); ``norm`` as in :meth:`encode`."""
        out = self.encode(wave, lengths, norm)
        return self.pool_states(out.hidden_states, out.lengths)

    def forward_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_classes)`` from pooled hidden states ``(batch, num_hidden_states, pooled_dim)``.

        Raises:
            ValueError: the model pools frames after combining them (``pool_each_layer=False``) or
                the input does not have the shape :attr:`pooled_shape`.
        """
        if not self.pool_each_layer:
            raise ValueError("forward_pooled needs model.pool_each_layer=true")
        if tuple(pooled.shape[1:]) != self.pooled_shape:
            raise ValueError(f"pooled states have shape {tuple(pooled.shape[1:])}, the head expects {self.pooled_shape}")
        x = self._select(pooled.float())
        if self.pooled_norm is not None:
            # flatten(1), not reshape(len(x), -1): a traced batch size would be frozen into exported models
            x = self.pooled_norm(x.flatten(1)).reshape(x.shape)
        x = x.flatten(1) if self.layer_combine == "concat" else self.layer_weights(x[..., None, :])[:, 0]
        return self.head(x)

    def _input_standardisation(self) -> nn.BatchNorm1d:
        """The module that standardises the head's input (today ``pooled_norm``).

        Raises:
            ValueError: the model has none (``model.pool_each_layer=false`` or ``model.pooled_norm=false``).
        """
        if not self.pool_each_layer or self.pooled_norm is None:
            raise ValueError("this model has no input standardisation to adapt: feature statistics need "
                             "model.pool_each_layer=true and model.pooled_norm=true")
        return self.pooled_norm

    def feature_statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The statistics the head standardises its input with (evaluation mode): ``(mean, sd)``.

        Both have :attr:`pooled_shape` ``(num_hidden_states, pooled_dim)``: the raw pooled hidden
        states that :meth:`forward_pooled` takes (what the frozen-feature cache stores), and the head
        computes ``(x - mean) / sd`` on them. A freshly trained model holds its training statistics.
        Hidden states the head does not read (``model.layers``) are reported as mean 0, sd 1.

        Returns:
            ``(mean, sd)`` float32 tensors on the model's device (copies).

        Raises:
            ValueError: the model has no input standardisation (``model.pooled_norm=false`` or
                ``model.pool_each_layer=false``).
        """
        norm = self._input_standardisation()
        n_all, dim = self.pooled_shape
        mean = torch.zeros(n_all, dim, device=norm.running_mean.device)
        sd = torch.ones(n_all, dim, device=norm.running_mean.device)
        mean[self.layer_index] = norm.running_mean.detach().float().reshape(len(self.layer_index), dim)
        sd[self.layer_index] = (norm.running_var.detach().float() + norm.eps).sqrt().reshape(len(self.layer_index), dim)
        return mean, sd

    def set_feature_statistics(self, mean, sd) -> None:
        """Standardise the head's input with these statistics from now on (evaluation mode).

        The one place where test-time feature adaptation (:mod:`ser_lightning.inference.adaptation`:
        AdaBN, Li et al., "Revisiting batch normalization for practical domain adaptation", 2016)
        reaches the network; today it sets the running statistics of ``pooled_norm`` so that it
        computes ``(x - mean) / sd`` (its variance is ``sd² - eps``; an ``sd`` below ``sqrt(eps)``
        ≈ 0.0032 acts as ``sqrt(eps)``). The values are buffers: a checkpoint saved afterwards keeps them.

        Args:
            mean: ``(num_hidden_states, pooled_dim)`` (:attr:`pooled_shape`; array or tensor).
            sd: Same shape, positive.

        Raises:
            ValueError: no input standardisation (see :meth:`feature_statistics`), a shape other than
                :attr:`pooled_shape`, non-finite values or an sd that is not positive.
        """
        norm = self._input_standardisation()
        dev = norm.running_mean.device
        mean = torch.as_tensor(mean, dtype=torch.float32).to(dev)
        sd = torch.as_tensor(sd, dtype=torch.float32).to(dev)
        for name, t in (("mean", mean), ("sd", sd)):
            if tuple(t.shape) != tuple(self.pooled_shape):
                raise ValueError(f"feature statistics: {name} has shape {tuple(t.shape)}, the model's pooled states "
                                 f"have {tuple(self.pooled_shape)}")
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"feature statistics: {name} holds NaN or infinite values")
        if not bool((sd > 0).all()):
            raise ValueError("feature statistics: every sd must be positive")
        with torch.no_grad():
            norm.running_mean.copy_(mean[self.layer_index].reshape(-1))
            norm.running_var.copy_((sd[self.layer_index].reshape(-1) ** 2 - norm.eps).clamp_min(0.0))

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None,
                norm: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(batch, num_classes)`` from waveforms ``(batch, time)`` and lengths ``(batch,)``;
        ``norm`` ``(batch, 2)``: per-clip standardisation statistics (see :meth:`encode`)."""
        if self.pool_each_layer:
            return self.forward_pooled(self.pooled_states(wave, lengths, norm))
        out = self.encode(wave, lengths, norm)
        return self.forward_hidden(out.hidden_states, out.lengths)

    def parameter_groups(self, lr: float, layer_decay: float = 1.0, weight_decay: float = 0.0,
                         encoder_lr_scale: float = 1.0) -> list[dict]:
        """Optimiser parameter groups with layer-wise learning-rate decay.

        Args:
            lr: Learning rate of the head (layer weights, pooling, classifier).
            layer_decay: Factor per layer group going down the encoder (1: no decay).
            weight_decay: Weight decay of matrices; biases, norms and the layer weights get none.
            encoder_lr_scale: Extra factor on every encoder group.

        Returns:
            ``torch.optim`` parameter groups (dicts with ``params``, ``lr``, ``weight_decay`` and a
            ``name``), trainable parameters only; empty groups are left out.

        Raises:
            ValueError: ``layer_decay`` outside ``(0, 1]``.
        """
        if not 0.0 < layer_decay <= 1.0:
            raise ValueError(f"optim.layer_decay={layer_decay} must lie in (0, 1]")
        top = self.encoder.num_layer_groups
        buckets: dict[tuple[str, bool], list[nn.Parameter]] = {}
        rates: dict[str, float] = {}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            if name.startswith("encoder."):
                g = self.encoder.layer_group(name[len("encoder."):])
                key, rate = f"encoder_group_{g}", lr * encoder_lr_scale * layer_decay ** (top - g)
            else:
                key, rate = "head", lr
            rates[key] = rate
            buckets.setdefault((key, p.ndim >= 2), []).append(p)
        return [
            {"params": params, "lr": rates[key], "weight_decay": weight_decay if decayed else 0.0,
             "name": f"{key}{'' if decayed else '_no_decay'}"}
            for (key, decayed), params in sorted(buckets.items())
        ]


def build_encoder(encoder: str = "whisper_tiny", pretrained: str | None = "offline", pad_to_30s: bool = False) -> SpeechEncoder:
    """An encoder by name from plain settings.

    Args:
        encoder: ``byol_s``, ``whisper_tiny`` (English tiny.en), ``whisper_base`` (multilingual base),
            or a ``transformers`` hub id / local directory (wav2vec2, HuBERT, WavLM, data2vec-audio, Whisper).
        pretrained: For ``byol_s`` / ``whisper_tiny`` / ``whisper_base``: ``offline`` (the weights shipped
            with the installed packages; Whisper base's are joined from its two parts and SHA-256-checked),
            a local weights path (BYOL-S state dict, CTranslate2 Whisper directory) or ``None`` (random).
            Ignored for hub ids.
        pad_to_30s: Whisper: encode the native 30 s window instead of each clip's own length.

    Raises:
        ImportError / FileNotFoundError: offline weights missing (the message says how to get them).
        ValueError: an unsupported hub model type, or offline weights whose SHA-256 is not the recorded one.
    """
    from ser_lightning.models.encoders.byol_s import build_byol_s
    from ser_lightning.models.encoders.hf import build_hf_encoder
    from ser_lightning.models.encoders.whisper import build_whisper_base, build_whisper_tiny

    if encoder == "byol_s":
        return build_byol_s(pretrained="packaged" if pretrained == "offline" else pretrained)
    if encoder == "whisper_tiny":
        return build_whisper_tiny(pretrained="tiny.en" if pretrained == "offline" else pretrained,
                                  pad_to_30s=pad_to_30s)
    if encoder == "whisper_base":
        return build_whisper_base(pretrained="base" if pretrained == "offline" else pretrained,
                                  pad_to_30s=pad_to_30s)
    return build_hf_encoder(encoder, pad_to_30s=pad_to_30s)


def build_encoder_classifier(
    encoder: str = "whisper_tiny",
    num_classes: int = 8,
    pretrained: str | None = "offline",
    pad_to_30s: bool = False,
    **settings,
) -> EncoderClassifier:
    """:class:`EncoderClassifier` from plain scalar settings.

    Args:
        encoder, pretrained, pad_to_30s: The encoder (see :func:`build_encoder`).
        num_classes: Output logits.
        **settings: :class:`EncoderClassifier`'s own settings (``pooling``, ``layer_weighting``, ``freeze``,
            ``head_hidden``, ...; its defaults apply to those not given).

    Raises:
        ValueError: a bad setting value (see :class:`EncoderClassifier`).
        TypeError: a setting :class:`EncoderClassifier` does not have.
    """
    return EncoderClassifier(build_encoder(encoder, pretrained, pad_to_30s), num_classes=num_classes, **settings)
