"""Deprecated alias: report 002's MFCC CNN is in :mod:`ser_lightning.models.cnn`."""

from ser_lightning.deprecation import moved
from ser_lightning.models.cnn import MFCCCNN  # noqa: F401

moved(__name__, "ser_lightning.models.cnn")
