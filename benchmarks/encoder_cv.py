"""Six-fold speaker cross-validation of a training configuration on real RAVDESS, one ``train.py`` per fold.

Each fold is a separate ``python train.py data.split=kfold data.fold=k <overrides>`` process, timed
from start to end; the frozen-feature extraction of the first fold (the cache is reused by the
others) is reported separately (``frozen_features.extract_s`` of its ``metrics.json``) and taken
out of that fold's minutes. Folds: ``contiguous`` (actors 1–4, 5–8, …) or ``emobox`` (EmoBox's
RAVDESS test groups {1,11,20,21}, {4,10,12,14}, {8,9,19,23}, {3,5,7,24}, {2,15,16,18},
{6,13,17,22}, given as ``data.speaker_folds``). Validation speakers (4 of the 20 training actors,
drawn with the seed) select the checkpoint; the test actors are only scored.

    OMP_NUM_THREADS=2 SER_DATA_DIR=/path/to/data python -m benchmarks.encoder_cv --name whisper_tiny \\
        --folds contiguous -- model=whisper_tiny

``--jobs N`` runs N folds at the same time, each its own process (on a GPU machine they share the
device; their minutes per fold are then wall time under that sharing). A failed fold prints its
error; the others still run and the row averages those that finished (``failed_folds`` in the JSON).

Writes ``benchmarks/results/cv_<name>_<folds>.json`` and ``.md`` (mean ± sd of UA, WA, macro-F1,
minutes per fold, extraction seconds, date, machine, command).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.pipeline import RESULTS, machine_info

REPO = Path(__file__).resolve().parents[1]
EMOBOX_GROUPS = [[1, 11, 20, 21], [4, 10, 12, 14], [8, 9, 19, 23], [3, 5, 7, 24], [2, 15, 16, 18], [6, 13, 17, 22]]


def fold_overrides(folds: str) -> list[str]:
    """``train.py`` overrides selecting the fold set (``contiguous`` or ``emobox``)."""
    if folds == "contiguous":
        return ["data.split=kfold", "data.n_folds=6"]
    groups = ",".join("[" + ",".join(f"ravdess_{a:02d}" for a in g) + "]" for g in EMOBOX_GROUPS)
    return ["data.split=kfold", f"++data.speaker_folds=[{groups}]"]


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def run_fold(k: int, a: argparse.Namespace) -> dict | None:
    """Run one fold's ``train.py`` as a subprocess; its metrics row, or ``None`` (stderr tail printed) on failure."""
    run_dir = Path(a.runs) / f"cv_{a.name}_{a.folds}" / f"fold{k}"
    cmd = [sys.executable, "train.py", *fold_overrides(a.folds), f"data.fold={k}", *a.overrides,
           f"hydra.run.dir={run_dir}", "callbacks.progress_bar=null"]
    start = time.perf_counter()
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    wall = time.perf_counter() - start
    if r.returncode != 0:
        print(f"fold {k} failed (exit {r.returncode}):\n{r.stderr[-3000:]}", file=sys.stderr, flush=True)
        return None
    m = json.loads((run_dir / "metrics.json").read_text())
    extract = float((m.get("frozen_features") or {}).get("extract_s") or 0.0)
    val = "n/a" if m.get("best_val_ua") is None else f"{m['best_val_ua']:.4f}"  # no monitored checkpoint
    print(f"fold {k}: UA {m['ua']:.4f} WA {m['wa']:.4f} F1 {m['macro_f1']:.4f} val {val} "
          f"{wall:.0f} s (extraction {extract:.0f} s)", flush=True)
    return {"fold": k, "ua": m["ua"], "wa": m["wa"], "macro_f1": m["macro_f1"], "best_val_ua": m["best_val_ua"],
            "epochs": m["epochs"], "wall_s": round(wall, 1), "extract_s": extract,
            "train_min": round((wall - extract) / 60, 2), "training_input": m.get("training_input")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True, help="row name, used in the output file names")
    p.add_argument("--folds", choices=("contiguous", "emobox"), default="contiguous")
    p.add_argument("--only", type=int, nargs="*", help="run only these folds (0-5)")
    p.add_argument("--out-dir", default=str(RESULTS))
    p.add_argument("--runs", default=str(REPO / "benchmarks" / "runs"), help="where the run directories go")
    p.add_argument("--jobs", type=int, default=1,
                   help="folds run at the same time (separate processes; e.g. several on one GPU); 1: one after another")
    p.add_argument("overrides", nargs="*", help="train.py overrides (after --)")
    a = p.parse_args(argv)
    if a.jobs < 1:
        p.error(f"--jobs must be at least 1, got {a.jobs}")
    folds = list(a.only if a.only is not None else range(6))
    with ThreadPoolExecutor(max_workers=a.jobs) as pool:  # each fold is its own process; threads only wait
        results = list(pool.map(lambda k: run_fold(k, a), folds))
    rows = [row for row in results if row is not None]
    failed = [k for k, row in zip(folds, results) if row is None]
    if not rows:
        return 1
    summary = {key: mean_sd([100 * r[key] for r in rows]) for key in ("ua", "wa", "macro_f1")}
    command = (f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python -m benchmarks.encoder_cv "
               f"--name {a.name} --folds {a.folds}{f' --jobs {a.jobs}' if a.jobs > 1 else ''} -- {shlex.join(a.overrides)}")
    payload = {"name": a.name, "folds": a.folds, "date": dt.date.today().isoformat(), "command": command,
               "machine": machine_info(), "jobs": a.jobs, "per_fold": rows, "failed_folds": failed,
               "mean_sd": {k: [round(m, 2), round(s, 2)] for k, (m, s) in summary.items()},
               "train_min_per_fold": round(statistics.mean(r["train_min"] for r in rows), 2),
               "extract_s": max(r["extract_s"] for r in rows)}
    print(write_results(Path(a.out_dir), payload, summary, len(rows),
                        [f"{payload['train_min_per_fold']:.2f}", f"{payload['extract_s']:.0f}"],
                        "minutes per fold (wall, extraction excluded"
                        + (f"; {a.jobs} folds at a time" if a.jobs > 1 else "") + "), extraction s"))
    if failed:
        print(f"folds {failed} failed: the row above averages the {len(rows)} that ran", file=sys.stderr)
        return 1
    return 0


def write_results(out_dir: Path, payload: dict, summary: dict, n_folds: int, cells: list[str] = (),
                  columns: str = "") -> str:
    """Write ``cv_<name>_<folds>.json`` (``payload``) and ``.md`` (one table row) into ``out_dir``.

    Args:
        out_dir: Results folder (created).
        payload: The JSON record; its ``name``, ``folds``, ``date`` and ``command`` name the row.
        summary: ``ua``/``wa``/``macro_f1`` → ``(mean, sd)`` in %.
        n_folds: Folds behind the means.
        cells: Extra cells after the three metrics.
        columns: Description of the extra cells, for the line under the row.

    Returns:
        The Markdown written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"cv_{payload['name']}_{payload['folds']}"  # a name may hold dots (crops2.5s): no with_suffix
    (out_dir / f"{stem}.json").write_text(json.dumps(payload, indent=2) + "\n")
    row = [payload["name"], payload["folds"], *(f"{summary[k][0]:.1f} ± {summary[k][1]:.1f}"
                                               for k in ("ua", "wa", "macro_f1")), *cells]
    md = (f"| {' | '.join(row)} |\n\nColumns: UA, WA, macro-F1 (mean ± sd over {n_folds} folds, %)"
          f"{', ' + columns if columns else ''}. {payload['date']}; command: `{payload['command']}`\n")
    (out_dir / f"{stem}.md").write_text(md)
    return md


if __name__ == "__main__":
    raise SystemExit(main())
