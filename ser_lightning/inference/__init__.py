"""Inference: loading trained or exported models and classifying audio (the Python API and ``predict.py``)."""
