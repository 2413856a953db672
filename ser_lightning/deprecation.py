"""Old import paths kept working: a module that moved leaves an alias behind that warns once when imported.

A renamed network keeps its old name through :func:`~ser_lightning.models.registry.register_model_deprecations`
(checkpoints store names, not import paths); a moved *module* keeps its old path as a small alias module that
re-exports the names from their new home and calls :func:`moved`.
"""

from __future__ import annotations

import warnings


def moved(old: str, new: str) -> None:
    """Warn that module ``old`` is a deprecated alias of ``new`` (a ``FutureWarning``, shown to users).

    Args:
        old: The alias module's name (its ``__name__``).
        new: Where its names live now (one or more module names, for the message).
    """
    warnings.warn(f"{old} is deprecated: its names moved to {new}; import them from there", FutureWarning,
                  stacklevel=3)
