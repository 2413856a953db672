"""Evaluation maths and files: metrics, classification report, calibration, cross-corpus tables, unscorable
clips."""
