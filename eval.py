"""Re-test a checkpoint: ``python eval.py ckpt_path=... [split=test|val|train]`` (= ``ser-eval``)."""

from ser_lightning.cli.main import evaluate as main

if __name__ == "__main__":
    main()
