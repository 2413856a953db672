"""Deprecated alias: report 000's networks are in :mod:`ser_lightning.models.cnn` (``residual_cnn``),
:mod:`ser_lightning.models.sequence` (``attentive_bilstm``, ``cls_transformer``) and
:mod:`ser_lightning.models.ensembles` (``joint_ensemble``)."""

from ser_lightning.deprecation import moved
from ser_lightning.models.cnn import ResidualCNN, _ResidualBlock  # noqa: F401
from ser_lightning.models.ensembles import COMBINE_MODES, MEMBERS, JointEnsemble  # noqa: F401
from ser_lightning.models.sequence import (  # noqa: F401
    AttentiveBiLSTM,
    CLSTransformer,
    _BatchNorm1dAnyBatch,
    _frame_sequence,
    sinusoidal_positions,
)

moved(__name__, "ser_lightning.models.cnn, ser_lightning.models.sequence, ser_lightning.models.ensembles")
