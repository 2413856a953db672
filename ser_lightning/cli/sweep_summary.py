"""``python -m ser_lightning.cli.sweep_summary SWEEP_DIR``: (re)write a sweep's ``summary.csv`` / ``summary.md`` / ``per_fold.png``
(also ``python -m ser_lightning.cli.results summary SWEEP_DIR``; across runs: ``... results compare``)
(see :mod:`ser_lightning.callbacks.sweep_summary`)."""

from ser_lightning.callbacks.sweep_summary import main

if __name__ == "__main__":
    main()
