"""Deprecated alias: :class:`EncoderClassifier` is in :mod:`ser_lightning.models.encoders.encoder_classifier`
(``modules/classifier.py`` is the LightningModule, ``SERClassifier``)."""

from ser_lightning.deprecation import moved
from ser_lightning.models.encoders.encoder_classifier import (  # noqa: F401
    ENCODERS,
    FREEZE_MODES,
    LAYER_COMBINES,
    EncoderClassifier,
    build_encoder,
    build_encoder_classifier,
)

moved(__name__, "ser_lightning.models.encoders.encoder_classifier")
