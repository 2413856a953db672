"""How fast prediction starts (issue 24 item 1): import, ``load_model("default")``, the first clip, clips per
second on a folder, ``predict.py input=one.wav`` wall time, and peak memory, each in a fresh interpreter.

Targets (issue 24): ≤ 1.5 s from after the import to the first answer, ≤ 3 s for ``predict.py input=one.wav``,
≤ 600 MB peak resident memory. Every measurement runs in its own subprocess (a cold interpreter, the
operating system's file cache warm after the first repeat), ``--repeats`` times; the median is reported.
``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` are set to ``--threads`` (2: the development machine's cores).
The modules a prediction imported are listed too (``lightning``, ``timm``, ``transformers``, ``wandb``,
``matplotlib``: whether each was loaded).

    python -m benchmarks.predict_speed                                   # -> benchmarks/results/predict_speed.json
    python -m benchmarks.predict_speed --repo /path/to/other/checkout --out /tmp/before.json   # another checkout
    python -m benchmarks.predict_speed --folder /path/to/wavs --clips 40  # clips/s on real recordings

The clips are generated (a 3 s speech-like harmonic tone with a syllable envelope at 16 kHz, written as WAV into
a temporary folder) unless ``--folder`` is given. Timings on a shared machine are only as good as its quietness:
the 1-minute load average before and after is stored with the results.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("lightning", "timm", "transformers", "wandb", "matplotlib", "torchmetrics")

#: Runs in a fresh interpreter: times the import, the load and the first clip, then clips/s over a folder.
_API_PROBE = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import ser_lightning as ser
t_import = time.perf_counter() - t0
t1 = time.perf_counter()
model = ser.load_model("default")
t_load = time.perf_counter() - t1
first = model.predict(sys.argv[1])
t_first = time.perf_counter() - t1
files = sys.argv[2:]
t2 = time.perf_counter()
out = model.predict(files)
t_folder = time.perf_counter() - t2
heavy = {m: any(k == m or k.startswith(m + ".") for k in sys.modules) for m in HEAVY_MODULES}
print(json.dumps({"import_s": t_import, "load_s": t_load, "first_answer_s": t_first, "first_label": first.label,
                  "folder_clips": len(files), "clips_per_s": len(files) / t_folder,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "imported": heavy}))
""".replace("HEAVY_MODULES", repr(HEAVY))


def _clips(folder: Path, n: int) -> list[Path]:
    import numpy as np
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sr, t = 16000, np.arange(3 * 16000) / 16000
    out = []
    for i in range(n):
        f0 = 120 + 80 * rng.random()
        wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
        wave *= 0.5 * (1 + np.sin(2 * np.pi * 4 * t)) * 0.2
        path = folder / f"clip{i:03d}.wav"
        sf.write(path, wave.astype("float32"), sr)
        out.append(path)
    return out


def _env(repo: Path, threads: int) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONPATH=str(repo), PYTHONWARNINGS="ignore")
    return env


def _timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) of the child, stdout."""
    import resource
    import time

    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # RUSAGE_CHILDREN keeps the largest child so far: a child smaller than an earlier one reads as the earlier one;
    # the API probe reports its own peak, predict.py is measured in a fresh wrapper below.
    return wall, max(peak, before) / 1024, r.stdout


def _predict_wall(repo: Path, clip: Path, threads: int, out_dir: Path) -> tuple[float, float]:
    """``predict.py input=clip`` wall seconds and peak RSS (MB), in a wrapper that reports only its own child."""
    wrapper = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
               "r = subprocess.run(sys.argv[1:], capture_output=True); w = time.perf_counter() - t; "
               "assert r.returncode == 0, r.stderr[-2000:]; "
               "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)")
    cmd = [sys.executable, "-c", wrapper, sys.executable, "predict.py", f"input={clip}", f"output={out_dir}",
           f"hydra.run.dir={out_dir}/hydra"]
    _, _, out = _timed(cmd, repo, _env(repo, threads))
    wall, peak = out.split()
    return float(wall), float(peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout to measure (default: this one)")
    parser.add_argument("--folder", type=Path, help="audio folder for clips/s (default: generated clips)")
    parser.add_argument("--clips", type=int, default=20, help="clips for clips/s")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--label", default="", help="a name for this row (e.g. before / after)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "predict_speed.json")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.folder:
            from ser_lightning.inference.windows import find_audio

            files = find_audio(args.folder)[: args.clips]
        else:
            files = _clips(tmp / "clips", args.clips)
        api, predict = [], []
        for i in range(args.repeats):
            _, _, out = _timed([sys.executable, "-c", _API_PROBE, str(files[0]), *map(str, files)], args.repo,
                               _env(args.repo, args.threads))
            api.append(json.loads(out.strip().splitlines()[-1]))
            predict.append(_predict_wall(args.repo, files[0], args.threads, tmp / f"predict{i}"))
    med = lambda key: statistics.median(r[key] for r in api)  # noqa: E731
    row = {
        "label": args.label,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} ({os.cpu_count()} cores, shared), {platform.platform()}",
        "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.predict_speed", *sys.argv[1:]]),
        "repo": str(args.repo),
        "commit": subprocess.run(["git", "-C", str(args.repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip(),
        "threads": args.threads, "repeats": args.repeats, "clips": len(files),
        "import_s": med("import_s"), "load_s": med("load_s"), "first_answer_after_import_s": med("first_answer_s"),
        "clips_per_s": med("clips_per_s"), "api_peak_rss_mb": med("peak_rss_mb"),
        "predict_py_wall_s": statistics.median(w for w, _ in predict),
        "predict_py_peak_rss_mb": statistics.median(p for _, p in predict),
        "predict_py_runs_wall_s_peak_mb": predict,
        "imported": api[-1]["imported"],
        "load_avg_1min_before_after": [load_before, os.getloadavg()[0]],
        "targets": {"first_answer_after_import_s": 1.5, "predict_py_wall_s": 3.0, "peak_rss_mb": 600},
        "runs": api,
    }
    rows = json.loads(args.out.read_text()) if args.out.is_file() else []
    rows = [r for r in rows if r.get("label") != args.label or not args.label] + [row]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    print(json.dumps({k: v for k, v in row.items() if k != "runs"}, indent=1))


if __name__ == "__main__":
    main()
