"""Model-zoo benchmark: every model on the same real-RAVDESS split with the same budget.

Runs ``train.py`` once per model (speaker-independent default split, fixed number of epochs, no
early stopping) and collects parameters, input geometry, mean CPU seconds per training epoch and
test UA/WA/macro-F1 into ``benchmarks/results/model_zoo.json`` and a markdown table.

    python -m benchmarks.model_zoo --models homebrew_cnn plain_cnn --epochs 20
    python -m benchmarks.model_zoo --smoke      # CI smoke mode: generated audio, 1 batch
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_model(name: str, epochs: int, run_dir: Path, extra: list[str]) -> dict:
    """Train + test one model; return its metrics.json plus the command."""
    cmd = [sys.executable, "train.py", f"model={name}", f"trainer.max_epochs={epochs}",
           "callbacks.early_stopping=null", "callbacks.progress_bar=null", f"hydra.run.dir={run_dir}", *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"model": name, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed",
                "command": " ".join(cmd[1:])}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics.update(command="python " + " ".join(cmd[1:]), total_s=round(time.perf_counter() - start, 1))
    return metrics


def markdown(rows: list[dict]) -> str:
    """The README table."""
    lines = ["| model | parameters | input (C×F×T) | s / epoch | test UA | test WA | macro-F1 |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | – | – | – | failed: {r['error'][:60]} | | |")
            continue
        shape = "×".join(map(str, r.get("input_shape") or []))
        lines.append(f"| {r['model']} | {r['parameters']:,} | {shape} | {r.get('train_epoch_s')} | "
                     f"{100 * r['ua']:.1f} | {100 * r['wa']:.1f} | {100 * r['macro_f1']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["homebrew_cnn"])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "model_zoo.json")
    ap.add_argument("--smoke", action="store_true", help="generated audio, fast_dev_run (CI)")
    ap.add_argument("--tag", default="", help="suffix of the run directories (benchmarks/runs/zoo_<model><tag>)")
    ap.add_argument("overrides", nargs="*", help="extra train.py overrides for every model")
    args = ap.parse_args(argv)
    extra = list(args.overrides)
    if args.smoke:
        import tempfile

        from tests.conftest import make_ravdess

        tmp = Path(tempfile.mkdtemp())
        make_ravdess(tmp, actors=range(1, 5), statements=(1,))
        extra += [f"data.root={tmp}", f"data.cache_dir={tmp / 'cache'}", "data.val_speakers=1",
                  "data.test_speakers=1", "data.duration_s=1.0", "debug=fast"]
        args.epochs = 1
    runs = REPO / "benchmarks" / "runs"
    rows = [run_model(m, args.epochs, runs / f"zoo_{m}{args.tag}", extra) for m in args.models]
    record = {"date": date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
              "epochs": args.epochs, "overrides": extra, "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not args.smoke:
        args.out.write_text(json.dumps(record, indent=2))
    print(markdown(rows))
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
