"""Old import paths kept working: a module that moved leaves an alias behind that warns once when imported.

A renamed network keeps its old name through :func:`~ser_lightning.models.registry.register_model_deprecations`
(checkpoints store names, not import paths); a moved *module* keeps its old path as a small alias module that
re-exports the names from their new home and calls :func:`moved`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any


def moved(old: str, new: str) -> None:
    """Warn that module ``old`` is a deprecated alias of ``new`` (a ``FutureWarning``, shown to users).

    Args:
        old: The alias module's name (its ``__name__``).
        new: Where its names live now (one or more module names, for the message).
    """
    warnings.warn(f"{old} is deprecated: its names moved to {new}; import them from there", FutureWarning,
                  stacklevel=3)


def renamed(module: str, names: dict[str, str], namespace: dict) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` (PEP 562) that still answers to old names, with a ``FutureWarning``.

    Args:
        module: The module's ``__name__`` (for the message).
        names: Old name → new name, both in ``namespace``.
        namespace: The module's ``globals()``.

    Returns:
        The function to assign to the module's ``__getattr__``.

    Raises:
        AttributeError: (from the returned function) a name that is neither defined nor an old name.
    """

    def __getattr__(name: str) -> Any:
        if name in names:
            warnings.warn(f"{module}.{name} is deprecated: it is now {names[name]}", FutureWarning, stacklevel=2)
            return namespace[names[name]]
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
