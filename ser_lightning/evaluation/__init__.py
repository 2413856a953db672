"""Evaluation beyond one split: cross-corpus tables, unscorable clips."""
