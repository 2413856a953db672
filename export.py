"""Export a checkpoint to ONNX / TorchScript: ``python export.py ckpt_path=... [format=onnx|torchscript|both]``."""

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="conf", config_name="export", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Hydra entry point; see :func:`ser_lightning.cli.export.export`."""
    from ser_lightning.cli.common import run_cli
    from ser_lightning.cli.export import export

    run_cli(export, cfg)


if __name__ == "__main__":
    main()
