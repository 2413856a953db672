"""Cross-corpus evaluation: ``python cross_corpus.py cross.train=[ravdess]`` or ``cross.mode=loco``."""

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="conf", config_name="cross_corpus", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Hydra entry point; see :func:`ser_lightning.cli.cross_corpus.run_cross_corpus`."""
    from ser_lightning.cli.common import run_cli
    from ser_lightning.cli.cross_corpus import run_cross_corpus

    run_cli(run_cross_corpus, cfg)


if __name__ == "__main__":
    main()
