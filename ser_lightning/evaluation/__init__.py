"""Evaluation maths and files: metrics, classification report, calibration."""
