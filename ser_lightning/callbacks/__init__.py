"""Callbacks: Lightning callbacks (epoch timer, RNG state for exact resumes, W&B dashboard) and
the Hydra callback that summarises a multirun."""
