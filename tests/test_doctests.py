"""The shape statements in the docstrings of the frontend, augmentation and model registry run as doctests."""

from __future__ import annotations

import doctest

import pytest

import ser_lightning.features.augment
import ser_lightning.features.frontend
import ser_lightning.models.registry

MODULES = [ser_lightning.features.frontend, ser_lightning.features.augment, ser_lightning.models.registry]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{module.__name__} has no doctest"
    assert result.failed == 0
