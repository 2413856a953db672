"""Classify audio files: ``python predict.py ckpt_path=MODEL input=FILE_OR_DIR [hop_s=...] [output=DIR]``."""

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="conf", config_name="predict", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Hydra entry point; see :func:`ser_lightning.cli.predict.predict`."""
    from ser_lightning.cli.common import run_cli
    from ser_lightning.cli.predict import predict

    run_cli(predict, cfg)


if __name__ == "__main__":
    main()
