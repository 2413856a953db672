"""``python -m ser_lightning <command> [key=value ...]``: the ``ser`` command (see :mod:`ser_lightning.cli.main`)."""

from ser_lightning.cli.main import main

if __name__ == "__main__":
    main()
