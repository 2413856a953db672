"""Deprecated alias: the frozen-feature policy is in :mod:`ser_lightning.modules.frozen_features` and the
extraction loop in :mod:`ser_lightning.modules.extraction`."""

from ser_lightning.deprecation import moved
from ser_lightning.modules.frozen_features import (  # noqa: F401
    FEATURE_CACHE_MODES,
    encoder_identity,
    frozen_feature_path,
    speaker_norm_inputs,
    use_frozen_features,
)

moved(__name__, "ser_lightning.modules.frozen_features")
