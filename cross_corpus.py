"""Cross-corpus evaluation: ``python cross_corpus.py cross.train=[ravdess]`` or ``cross.mode=loco``
(= ``ser-cross-corpus``)."""

from ser_lightning.cli.main import cross_corpus as main

if __name__ == "__main__":
    main()
