"""Re-test a checkpoint: ``python eval.py ckpt_path=... [split=test|val|train]``."""

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="conf", config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Hydra entry point; see :func:`ser_lightning.cli.eval.evaluate`."""
    from ser_lightning.cli.common import run_cli
    from ser_lightning.cli.eval import evaluate

    run_cli(evaluate, cfg)


if __name__ == "__main__":
    main()
