"""Deprecated alias: report 003's homebrew CNN is in :mod:`ser_lightning.models.cnn`."""

from ser_lightning.deprecation import moved
from ser_lightning.models.cnn import HomebrewCNN  # noqa: F401

moved(__name__, "ser_lightning.models.cnn")
