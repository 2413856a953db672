"""What a built network is able to do, as one record the rest of the platform asks (timm's ``PretrainedCfg`` idea).

A network's registry entry declares what never depends on its settings (the input it reads, whether it reads
whole clips with their lengths, the sample rate its weights need: :class:`~ser_lightning.models.registry.ModelInfo`);
:func:`~ser_lightning.models.build_network` adds what its settings decide (a cacheable frozen part, statistics it
reads) and attaches the record to the network as ``network.facts``. ``SERClassifier`` stores it in the checkpoint's
hyper-parameters (``network_facts``), so a reader without the registry (a model card, another tool) knows them too.
Training, prediction and export ask :func:`network_facts` instead of probing the network with ``hasattr``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from torch import nn


@dataclass(frozen=True)
class NetworkFacts:
    """The capabilities of a built network.

    Attributes:
        input_kind: ``"spectrogram"`` (features from the ``features`` frontend) or ``"waveform"``.
        whole_clips: It reads whole clips: ``network(features, lengths)`` with each clip's valid samples
            ``(batch,)``, its pooling ignoring the padding (the speech-encoder models, ``data.clip_length=whole``).
        pooled_split: It splits at pooled hidden states: ``pooled_states(features, lengths)`` →
            ``forward_pooled(pooled)`` (the frozen-feature cache, feature adaptation, per-speaker normalisation).
        cacheable: Its pooled states never change in training (frozen encoder, per-layer pooling, a pooling
            without parameters): they can be computed once per clip and cached.
        takes_norm_stats: Its input standardisation takes per-clip statistics (``model.norm_stats=per_corpus``).
        sample_rate: The rate (Hz) its pretrained weights were trained at, or ``None`` (any: the data's).
        parameter_groups: How its optimiser groups its parameters: ``"layerwise"`` (an encoder model's
            ``parameter_groups``: layer-wise learning-rate decay, ``model.layer_decay``), ``"backbone"`` (its
            ``backbone_parameters`` take ``model.backbone_lr_mult``) or ``"one"`` (one group).
    """

    input_kind: str = "spectrogram"
    whole_clips: bool = False
    pooled_split: bool = False
    cacheable: bool = False
    takes_norm_stats: bool = False
    sample_rate: int | None = None
    parameter_groups: str = "one"

    def as_dict(self) -> dict[str, Any]:
        """Plain values for the checkpoint's hyper-parameters."""
        return asdict(self)


def derive_facts(network: nn.Module, input_kind: str = "spectrogram", sample_rate: int | None = None) -> NetworkFacts:
    """The facts of ``network`` read from the interfaces it implements (the one place that looks).

    Used by :func:`~ser_lightning.models.build_network` (with the registry's declared ``input_kind`` and
    ``sample_rate``) and for networks built by hand, without the builder.
    """
    return NetworkFacts(
        input_kind=input_kind,
        whole_clips=getattr(network, "pool_states", None) is not None,
        pooled_split=all(hasattr(network, a) for a in ("pooled_states", "forward_pooled")),
        cacheable=bool(getattr(network, "cacheable", False)),
        takes_norm_stats=bool(getattr(network, "takes_norm_stats", False)),
        sample_rate=sample_rate,
        parameter_groups=("layerwise" if hasattr(network, "parameter_groups") and hasattr(network, "layer_decay")
                          else "backbone" if hasattr(network, "backbone_parameters") else "one"),
    )


def network_facts(network: nn.Module) -> NetworkFacts:
    """The facts of a network: those :func:`~ser_lightning.models.build_network` attached, else derived."""
    facts = network.__dict__.get("facts")
    return facts if isinstance(facts, NetworkFacts) else derive_facts(network)
