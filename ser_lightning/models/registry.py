"""Name → network builder registry (``model.name`` in config; ``model=<name>`` on the CLI)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a network class or factory under ``name``.

    The builder is called as ``builder(in_channels=..., num_classes=..., **settings)``.

    Raises:
        ValueError: if the name is already taken.
    """

    def deco(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = builder
        return builder

    return deco


def available_models() -> list[str]:
    """Sorted names of all registered networks."""
    return sorted(_MODELS)


def build_model(name: str, in_channels: int, num_classes: int, **settings) -> nn.Module:
    """Build a registered network.

    Args:
        name: Registered name (see :func:`available_models`).
        in_channels: Channels of the feature input ``(batch, in_channels, n_feats, frames)``.
        num_classes: Output logits.
        **settings: Network-specific settings from ``conf/model/<name>.yaml``.

    Raises:
        ValueError: unknown name (the message lists the registered ones).
    """
    if name not in _MODELS:
        raise ValueError(f"model.name={name!r} is not a registered model; choose one of {available_models()}")
    return _MODELS[name](in_channels=in_channels, num_classes=num_classes, **settings)
