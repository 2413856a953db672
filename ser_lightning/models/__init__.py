"""Networks (plain ``nn.Module``s, no Lightning) and their name registry."""

from ser_lightning.models import homebrew_cnn  # noqa: F401  (registers "homebrew_cnn")
from ser_lightning.models.registry import available_models, build_model, register_model

__all__ = ["available_models", "build_model", "register_model"]
