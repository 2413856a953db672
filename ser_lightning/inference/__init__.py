"""Inference: checkpoint loading, the windowed predictor and the Python API, export and parity, model cards,
ONNX Runtime, and ensembles of trained checkpoints."""

from ser_lightning.inference import ensemble  # noqa: E402,F401  (registers model=ensemble)
