"""The Hydra configs of every command (``train.yaml``, ``eval.yaml``, ``predict.yaml``, ``export.yaml``,
``cross_corpus.yaml`` and their groups), found through Hydra's search path ``pkg://ser_lightning.conf``."""
