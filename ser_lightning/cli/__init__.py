"""The commands' task code (``train``, ``eval``, ``predict``, ``export``, ``cross_corpus``) and their entry points
(:mod:`ser_lightning.cli.main`). Importing it registers the config resolvers (``${ser_or:a,b}``)."""

from __future__ import annotations

import os
from typing import Any


def _or_default(value: Any, default: Any) -> str:
    """``${ser_or:a,b}``: ``a`` unless it is null or empty, else ``b`` (a leading ``~`` expanded)."""
    chosen = default if value is None or str(value) == "" else value
    return os.path.expanduser(str(chosen))


def register_resolvers() -> None:
    """Register the package's config resolvers (``ser_or``: see :func:`_or_default`) once."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("ser_or"):
        OmegaConf.register_new_resolver("ser_or", _or_default)


register_resolvers()
