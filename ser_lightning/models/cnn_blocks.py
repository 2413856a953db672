"""Deprecated alias: report 001's networks are in :mod:`ser_lightning.models.cnn` (``plain_cnn``, ``parallel_cnn``)
and :mod:`ser_lightning.models.sequence` (``cnn_transformer``)."""

from ser_lightning.deprecation import moved
from ser_lightning.models.cnn import _BATCHNORM, CNNBlock, ParallelCNN, PlainCNN, TimeBatchNorm  # noqa: F401
from ser_lightning.models.sequence import CNNTransformer  # noqa: F401

moved(__name__, "ser_lightning.models.cnn, ser_lightning.models.sequence")
