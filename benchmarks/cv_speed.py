"""Wall time of the default model's 6-fold cross-validation (``make cv``, ``make cv-emobox``), cold and warm.

Runs the two commands of the Makefile exactly (one ``train.py -m`` each: Hydra's basic launcher runs the six
folds one after another in that one process, after one frozen-feature extraction)::

    make cv        = python train.py -m data.split=kfold 'data.fold=range(0,6)'
    make cv-emobox = python train.py -m folds=emobox_ravdess 'data.fold=range(0,6)'

first from an empty cache (``SER_CACHE_DIR`` a new directory: the audio is decoded and the frozen Whisper
embeddings are extracted, then the folds fit), then warm (the same command again, on that cache). It records
each command's wall time and CPU time, each fold's test UA / WA / macro-F1 (full float precision), the
validation-selected model's test UA, the refit's epoch count, the sweep's ``summary.csv`` and the load
average before and after (the cores may be shared), and writes ``benchmarks/results/cv_speed_<name>.json``.

``--repo DIR`` times another checkout (e.g. the code before a change) with the same script, and
``--compare BEFORE.json AFTER.json`` prints the before/after table and checks that every fold's results are
the same to the last digit::

    SER_DATA_DIR=/path/to/data python -m benchmarks.cv_speed --name after
    SER_DATA_DIR=/path/to/data python -m benchmarks.cv_speed --name before --repo /path/to/old/checkout
    python -m benchmarks.cv_speed --compare benchmarks/results/cv_speed_before.json \\
        benchmarks/results/cv_speed_after.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
#: The Makefile's cross-validation commands (``make cv``, ``make cv-emobox``), after ``python train.py``.
FOLD_SETS = {
    "contiguous": ["-m", "data.split=kfold", "data.fold=range(0,6)"],
    "emobox": ["-m", "folds=emobox_ravdess", "data.fold=range(0,6)"],
}
#: Per-fold entries of ``metrics.json`` compared between runs (every one must be equal).
FOLD_KEYS = ("ua", "wa", "macro_f1", "best_val_ua", "epochs")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def fold_results(sweep: Path) -> list[dict[str, Any]]:
    """Each job's results of a finished ``train.py -m`` sweep directory (jobs in number order).

    Returns:
        ``[{"job", "ua", "wa", "macro_f1", "best_val_ua", "epochs", "selected_ua", "refit_epochs",
        "wall_time_s", "extract_s"}, ...]`` (``None`` where ``metrics.json`` lacks an entry).

    Raises:
        FileNotFoundError: a job directory without ``metrics.json``.
    """
    jobs = sorted((p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    out = []
    for job in jobs:
        m = json.loads((job / "metrics.json").read_text())
        out.append({"job": int(job.name), **{k: m.get(k) for k in FOLD_KEYS},
                    "selected_ua": (m.get("selected_model") or {}).get("ua"),
                    "refit_epochs": (m.get("refit") or {}).get("epochs"), "wall_time_s": m.get("wall_time_s"),
                    "extract_s": (m.get("frozen_features") or {}).get("extract_s")})
    return out


def run_cv(repo: Path, folds: str, cache_dir: Path, sweep: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run one cross-validation command of ``repo`` and time it.

    Returns:
        ``{"command", "wall_s", "cpu_s", "loadavg_before", "loadavg_after", "folds", "summary_csv"}``.

    Raises:
        RuntimeError: the command failed (its output's tail in the message).
    """
    cmd = [sys.executable, "train.py", *FOLD_SETS[folds], f"hydra.sweep.dir={sweep}"]
    run_env = {**env, "SER_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(repo), "PYTHONWARNINGS": "ignore"}
    load_before, cpu_before = os.getloadavg(), _children_cpu_s()
    start = time.perf_counter()
    r = subprocess.run(cmd, cwd=repo, env=run_env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {r.returncode}):\n{(r.stdout + r.stderr)[-3000:]}")
    summary = sweep / "summary.csv"
    return {"command": " ".join(["python", "train.py", *FOLD_SETS[folds]]), "wall_s": round(wall, 1),
            "cpu_s": round(_children_cpu_s() - cpu_before, 1),
            "loadavg_before": [round(v, 2) for v in load_before],
            "loadavg_after": [round(v, 2) for v in os.getloadavg()],
            "folds": fold_results(sweep),
            "summary_csv": list(csv.DictReader(summary.open(newline=""))) if summary.is_file() else None}


def compare(before: dict[str, Any], after: dict[str, Any]) -> tuple[str, list[str]]:
    """The before/after Markdown table and the differences between the two runs' per-fold results.

    Args:
        before, after: Two ``cv_speed`` JSON records.

    Returns:
        ``(markdown, differences)``; ``differences`` is empty when every fold of every run that both
        records hold has the same :data:`FOLD_KEYS`, selected-model UA and refit epochs.
    """
    lines = ["| fold set | cache | before: wall s (CPU s) | after: wall s (CPU s) | per-fold test UA (before = after?) |",
             "|---|---|---:|---:|---|"]
    diffs: list[str] = []
    for folds in FOLD_SETS:
        for stage in ("cold", "warm"):
            b_runs = [r[stage] for r in before.get("runs", {}).get(folds, []) if stage in r]
            a_runs = [r[stage] for r in after.get("runs", {}).get(folds, []) if stage in r]
            if not (b_runs and a_runs):
                continue
            reference = b_runs[0]["folds"]
            for run in b_runs[1:] + a_runs:
                for ref, got in zip(reference, run["folds"], strict=True):
                    for key in (*FOLD_KEYS, "selected_ua", "refit_epochs"):
                        if ref[key] != got[key]:
                            diffs.append(f"{folds} {stage} fold {ref['job']}: {key} {ref[key]!r} != {got[key]!r}")
            times = [", ".join(f"{r['wall_s']:.0f} ({r['cpu_s']:.0f})" for r in runs) for runs in (b_runs, a_runs)]
            uas = " / ".join(f"{100 * f['ua']:.2f}" for f in a_runs[0]["folds"])
            same = "yes" if not any(d.startswith(f"{folds} {stage}") for d in diffs) else "**no**"
            lines.append(f"| {folds} | {stage} | {times[0]} | {times[1]} | {uas} ({same}) |")
    return "\n".join(lines) + "\n", diffs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="after", help="row name: the output is cv_speed_<name>.json")
    p.add_argument("--repo", default=str(REPO), help="checkout whose train.py runs (default: this one)")
    p.add_argument("--folds", nargs="+", choices=list(FOLD_SETS), default=list(FOLD_SETS))
    p.add_argument("--repeat", type=int, default=1, help="cold + warm runs per fold set")
    p.add_argument("--work", help="cache and sweep directories (default: a new temporary directory, removed)")
    p.add_argument("--out-dir", default=str(RESULTS))
    p.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="compare two records and exit")
    a = p.parse_args(argv)
    if a.compare:
        before, after = (json.loads(Path(f).read_text()) for f in a.compare)
        table, diffs = compare(before, after)
        print(table)
        print("\n".join(diffs) if diffs else "every fold's results are the same before and after")
        return 1 if diffs else 0
    if not os.environ.get("SER_DATA_DIR"):
        p.error("set SER_DATA_DIR (the folder holding ravdess/)")
    repo = Path(a.repo).resolve()
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="cv_speed_"))
    env = dict(os.environ)
    record: dict[str, Any] = {
        "name": a.name, "repo": str(repo), "date": datetime.now().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    **{k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")}},
        "git": subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty"], capture_output=True,
                              text=True).stdout.strip() or None,
        "runs": {}}
    try:
        for i in range(a.repeat):
            for folds in a.folds:
                cache = work / f"cache_{folds}_{i}"
                run: dict[str, Any] = {}
                for stage in ("cold", "warm"):
                    run[stage] = run_cv(repo, folds, cache, work / f"sweep_{folds}_{i}_{stage}", env)
                    print(f"{a.name} {folds} {stage}: {run[stage]['wall_s']:.1f} s wall, {run[stage]['cpu_s']:.1f} s CPU, "
                          f"UA {[round(100 * f['ua'], 2) for f in run[stage]['folds']]}, load "
                          f"{run[stage]['loadavg_before'][0]} -> {run[stage]['loadavg_after'][0]}", flush=True)
                record["runs"].setdefault(folds, []).append(run)
                shutil.rmtree(cache, ignore_errors=True)
    finally:
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"cv_speed_{a.name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
