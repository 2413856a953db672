"""``python -m ser_lightning.cli.results {compare,summary,curves}``: look at finished runs.

* ``compare DIR [DIR ...] [--csv FILE]`` — one table across run directories and sweep
  directories (mean ± sd over a sweep's jobs), e.g. a model on the contiguous folds beside the
  same model on EmoBox's folds.
* ``summary SWEEP_DIR`` — (re)write a sweep's ``summary.csv``, ``summary.md`` and ``per_fold.png``.
* ``curves RUN_DIR`` — (re)draw a run's ``curves.png`` from its ``csv/metrics.csv``.

The work is done by :mod:`ser_lightning.evaluation.results`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ser_lightning.evaluation.results import (
    compare,
    format_table,
    plot_curves,
    write_compare_csv,
    write_summary,
)


def main(argv: list[str] | None = None) -> int:
    """Parse the sub-command and run it; returns the exit status (2 on a bad directory)."""
    p = argparse.ArgumentParser(prog="python -m ser_lightning.cli.results", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare", help="one table across run and sweep directories")
    c.add_argument("dirs", nargs="+", help="run directories, sweep directories, or folders of them")
    c.add_argument("--csv", help="also write the table as CSV here")
    s = sub.add_parser("summary", help="(re)write a sweep's summary.csv / summary.md / per_fold.png")
    s.add_argument("sweep_dir")
    k = sub.add_parser("curves", help="(re)draw a run's curves.png from its CSV log")
    k.add_argument("run_dir")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "compare":
            rows = compare(args.dirs)
            print(format_table(rows))
            if args.csv:
                write_compare_csv(rows, args.csv)
        elif args.command == "summary":
            out = write_summary(args.sweep_dir)
            if out:
                print(out[1].read_text())
        else:
            run = Path(args.run_dir)
            png = plot_curves(run / "csv" / "metrics.csv", run / "curves.png", title=run.name)
            print(png or "no per-epoch metrics to draw")
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
