"""Train and test an emotion classifier: ``python train.py [group=option] [key=value]``."""

import os

# Idle OpenMP threads sleep instead of spinning (read once, when torch loads OpenMP, so set before any import
# that loads torch). The default model's L-BFGS fits are thousands of small tensor operations; with spinning
# threads on shared cores each operation can wait for a descheduled partner, which made the fits 5-10 times
# slower when another job used the cores. The results do not change (the thread count decides the arithmetic,
# not how idle threads wait). Set OMP_WAIT_POLICY=ACTIVE to spin.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; see :func:`ser_lightning.cli.train.train`."""
    from ser_lightning.cli.common import run_cli
    from ser_lightning.cli.train import train

    return run_cli(train, cfg)


if __name__ == "__main__":
    main()
