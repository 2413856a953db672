"""Deprecated alias: the registered encoder models are in :mod:`ser_lightning.models.encoders.zoo`."""

from ser_lightning.deprecation import moved
from ser_lightning.models.encoders.zoo import HEAD_SETTINGS, byol_s, ssl, whisper_base, whisper_tiny  # noqa: F401

moved(__name__, "ser_lightning.models.encoders.zoo")
