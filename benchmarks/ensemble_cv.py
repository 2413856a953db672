"""Six-fold cross-validation of a checkpoint ensemble, from the fold runs of ``benchmarks.encoder_cv``.

For each fold ``k`` the members are ``<run dir>/fold<k>/checkpoints/<refit|best>.ckpt`` of each
member's cross-validation (the same folds and split seed, so the same test actors), combined by
``eval.py model=ensemble`` (``mean`` of probabilities, or ``learned`` weights fitted on the
fold's validation speakers) and scored on the fold's test actors, which no member saw::

    OMP_NUM_THREADS=1 SER_DATA_DIR=/path/to/data python -m benchmarks.ensemble_cv --name whisper_byol_mean \\
        --folds contiguous --combine mean \\
        benchmarks/runs/cv_whisper_tiny_probe_refit_contiguous benchmarks/runs/cv_byol_s_frozen_refit_contiguous

Each member uses the checkpoint its own ``metrics.json`` reports (``checkpoint``: ``refit.ckpt``
after a refit, else the validation-selected ``best.ckpt``). With ``learned`` weights and refitted
members the validation speakers were part of the members' training, so their weights are fitted on
clips the members have seen: use ``mean`` for refitted members. Writes
``benchmarks/results/cv_<name>_<folds>.{json,md}`` like ``encoder_cv``.
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
from pathlib import Path

from benchmarks.encoder_cv import write_results
from benchmarks.pipeline import RESULTS, machine_info

REPO = Path(__file__).resolve().parents[1]


def member_checkpoint(run: Path) -> Path:
    """The checkpoint a fold run's ``metrics.json`` reports (``checkpoint``, else ``best_checkpoint``).

    Raises:
        FileNotFoundError: the run has no ``metrics.json`` or the checkpoint is missing.
    """
    m = json.loads((run / "metrics.json").read_text())
    path = Path(m.get("checkpoint") or m.get("best_checkpoint") or "")
    if not path.is_file():
        raise FileNotFoundError(f"{run}: checkpoint {path} is missing")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True, help="row name, used in the output file names")
    p.add_argument("--folds", default="contiguous", help="fold set label (as the members were run)")
    p.add_argument("--combine", choices=("mean", "learned"), default="mean")
    p.add_argument("--out-dir", default=str(RESULTS))
    p.add_argument("--runs", default=str(REPO / "benchmarks" / "runs"), help="where the eval run directories go")
    p.add_argument("members", nargs="+", help="cross-validation run directories (holding fold0 … fold5)")
    a = p.parse_args(argv)
    rows = []
    for k in range(6):
        ckpts = [member_checkpoint(Path(m) / f"fold{k}") for m in a.members]
        run_dir = Path(a.runs) / f"ens_{a.name}_{a.folds}" / f"fold{k}"
        cmd = [sys.executable, "eval.py", "model=ensemble", f"model.members=[{','.join(map(str, ckpts))}]",
               f"model.combine={a.combine}", "split=test", f"hydra.run.dir={run_dir}"]
        start = time.perf_counter()
        r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if r.returncode != 0:
            print(r.stderr[-3000:], file=sys.stderr)
            return 1
        m = json.loads((run_dir / "metrics.json").read_text())
        rows.append({"fold": k, "ua": m["ua"], "wa": m["wa"], "macro_f1": m["macro_f1"],
                     "member_weights": m.get("member_weights"), "members": [str(c) for c in ckpts],
                     "wall_s": round(time.perf_counter() - start, 1)})
        print(f"fold {k}: UA {m['ua']:.4f} WA {m['wa']:.4f} F1 {m['macro_f1']:.4f} weights {m.get('member_weights')}",
              flush=True)
    summary = {key: (statistics.mean(100 * r[key] for r in rows), statistics.stdev(100 * r[key] for r in rows))
               for key in ("ua", "wa", "macro_f1")}
    command = (f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python -m benchmarks.ensemble_cv --name {a.name} "
               f"--folds {a.folds} --combine {a.combine} {shlex.join(a.members)}")
    payload = {"name": a.name, "folds": a.folds, "combine": a.combine, "date": dt.date.today().isoformat(),
               "command": command, "machine": machine_info(), "per_fold": rows,
               "mean_sd": {k: [round(m, 2), round(s, 2)] for k, (m, s) in summary.items()}}
    print(write_results(Path(a.out_dir), payload, summary, len(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
