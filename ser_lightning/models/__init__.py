"""Networks (plain ``nn.Module``s, no Lightning) and their name registry.

Importing a network module registers its names (``model=<name>`` on the command line).
"""

from ser_lightning.models import (  # noqa: F401  (imported to register the networks)
    attention_fcn,
    ensemble,
    homebrew_cnn,
    report000,
    report001,
    report002,
    timm_backbones,
    wav2vec2,
)
from ser_lightning.models.registry import available_models, build_model, register_model

__all__ = ["available_models", "build_model", "register_model"]
