"""Train and test an emotion classifier: ``python train.py [group=option] [key=value]``."""

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; see :func:`ser_lightning.cli.train.train`."""
    from ser_lightning.cli.common import run_cli
    from ser_lightning.cli.train import train

    return run_cli(train, cfg)


if __name__ == "__main__":
    main()
