"""One table for a Hydra multirun: per-job test metrics and their mean ± standard deviation.

Hydra calls :class:`SweepSummary` when a multirun ends (``conf/hydra/default.yaml`` registers it),
so ``python train.py -m data.split=kfold 'data.fold=range(6)'`` leaves ``summary.csv`` and
``summary.md`` in the sweep directory. It works for any sweep (grid, Optuna, k-fold): each job
directory that holds a ``metrics.json`` becomes one row, labelled by its overrides. Re-run it by
hand on a finished or partly finished sweep::

    python -m ser_lightning.callbacks.sweep_summary multirun/train/2026-11-21_10-00-00
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

#: Metrics summarised, as (metrics.json key, column name).
METRICS = (("ua", "UA"), ("wa", "WA"), ("macro_f1", "macro-F1"), ("best_val_ua", "val UA"))


def _overrides(job_dir: Path) -> str:
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return ""
    items = OmegaConf.to_container(OmegaConf.load(path)) or []
    return " ".join(str(x) for x in items)


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n − 1; 0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def collect_jobs(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Read every ``<sweep_dir>/<job>/metrics.json``, jobs in numeric order.

    Args:
        sweep_dir: A Hydra sweep directory (``hydra.sweep.dir``).

    Returns:
        One dict per finished job: ``job``, ``overrides`` and the keys of :data:`METRICS` plus
        ``epochs``; jobs without ``metrics.json`` (failed or still running) are left out and
        logged.

    Raises:
        FileNotFoundError: if ``sweep_dir`` is not a directory.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep directory {sweep_dir} does not exist")
    jobs = [d for d in sweep_dir.iterdir() if d.is_dir() and (d / ".hydra").is_dir()]
    jobs.sort(key=lambda d: (0, int(d.name)) if d.name.isdigit() else (1, d.name))
    rows = []
    for d in jobs:
        path = d / "metrics.json"
        if not path.is_file():
            log.warning("sweep job %s has no metrics.json (failed or unfinished): left out of the summary", d)
            continue
        m = json.loads(path.read_text())
        row = {"job": d.name, "overrides": _overrides(d)}
        for key, _ in METRICS:
            row[key] = m.get(key)
        row["epochs"] = m.get("epochs")
        rows.append(row)
    return rows


def write_summary(sweep_dir: str | Path) -> tuple[Path, Path] | None:
    """Write ``summary.csv`` (one row per job plus ``mean`` and ``std`` rows) and ``summary.md``.

    Args:
        sweep_dir: A Hydra sweep directory.

    Returns:
        ``(csv_path, md_path)``, or ``None`` when no job finished.
    """
    sweep_dir = Path(sweep_dir)
    rows = collect_jobs(sweep_dir)
    if not rows:
        log.warning("no finished jobs in %s: no summary written", sweep_dir)
        return None
    stats = {}
    for key, _ in METRICS:
        vals = [float(r[key]) for r in rows if r[key] is not None]
        stats[key] = _mean_std(vals) if vals else (None, None)

    # Show only the overrides that differ between jobs; the shared ones go under the table.
    split = [r["overrides"].split() for r in rows]
    common = [o for o in split[0] if all(o in s for s in split[1:])] if len(rows) > 1 else []
    for r, s in zip(rows, split):
        r["overrides"] = " ".join(o for o in s if o not in common)

    fields = ["job", "overrides", *(k for k, _ in METRICS), "epochs"]
    csv_path = sweep_dir / "summary.csv"
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
        for i, label in enumerate(("mean", "std")):
            w.writerow({"job": label, "overrides": "", "epochs": "",
                        **{k: (None if stats[k][i] is None else round(stats[k][i], 6)) for k, _ in METRICS}})

    def pct(v):
        return "–" if v is None else f"{100 * float(v):.1f}"

    lines = [
        f"# Sweep summary: {sweep_dir}",
        "",
        "| job | overrides | " + " | ".join(name for _, name in METRICS) + " | epochs |",
        "|---|---|" + "---:|" * (len(METRICS) + 1),
    ]
    for r in rows:
        lines.append(f"| {r['job']} | `{r['overrides']}` | "
                     + " | ".join(pct(r[k]) for k, _ in METRICS) + f" | {r['epochs']} |")
    lines.append("| **mean ± std** | " + f"{len(rows)} jobs | "
                 + " | ".join("–" if stats[k][0] is None else f"{pct(stats[k][0])} ± {pct(stats[k][1])}"
                              for k, _ in METRICS) + " | |")
    lines += ["", "Test-split metrics in %, std = sample standard deviation (n − 1) over jobs."]
    if common:
        lines += ["", "Overrides shared by every job: `" + " ".join(common) + "`"]
    md_path = sweep_dir / "summary.md"
    md_path.write_text("\n".join(lines) + "\n")
    log.info("sweep summary: %s", md_path)
    return csv_path, md_path


class SweepSummary(Callback):
    """Hydra callback: at the end of a multirun, write :func:`write_summary` into the sweep dir."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Write ``summary.csv`` / ``summary.md`` into ``config.hydra.sweep.dir``."""
        write_summary(config.hydra.sweep.dir)


def main(argv: list[str] | None = None) -> None:
    """``python -m ser_lightning.callbacks.sweep_summary SWEEP_DIR``: (re)write a sweep's summary."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep_dir")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = write_summary(args.sweep_dir)
    if out:
        print(out[1].read_text())


if __name__ == "__main__":
    main()
