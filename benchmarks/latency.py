"""CPU inference latency of every model in the zoo: PyTorch eager vs ONNX Runtime.

For each model: batch 1, one 3-second clip (the default ``data.duration_s`` at 16 kHz), the whole
exported path — feature frontend + network + softmax (:class:`ser_lightning.inference.checkpoint.ProbabilityModel`)
— with 1 and 2 intra-op threads (``torch.set_num_threads`` / ONNX Runtime
``intra_op_num_threads``; inter-op 1). Every configuration gets ``--warmup`` untimed runs, then
``--runs`` timed runs (≥ 50 by default); the median and 90th percentile are reported in ms.
Models are built the way ``train.py`` builds them (``conf/train.yaml`` composed with
``model=<name>``, default features, 8 RAVDESS classes, random weights: latency does not depend
on the weights). The ONNX file comes from :func:`ser_lightning.inference.export.export_onnx`, and the
largest probability difference to PyTorch on the timed clip is recorded too.

    python -m benchmarks.latency                       # every model, 50 runs -> benchmarks/results/latency.json
    python -m benchmarks.latency --models homebrew_cnn plain_cnn --runs 100
    python -m benchmarks.latency --models vgg16 --runs 20   # slow models: fewer runs (recorded per row)
    python -m benchmarks.latency --smoke               # 2 small models, 3 runs (tests)
    python -m benchmarks.latency --models joint_ensemble features.n_mels=128 features.hop_length=512  # report 000's 128x94 input

The speech-encoder models (``whisper_tiny``, ``byol_s``, and any Whisper size) are timed the same way
with their real pretrained weights (``model.pretrained=offline``) and a random head; their ONNX graph
has a dynamic time axis and takes the clip's length too (``export_onnx(whole_clips=True)``), so
``--duration-s`` times any clip length with the same export::

    python -m benchmarks.latency --models whisper_tiny byol_s --budget-s 6 --out benchmarks/results/latency_encoders.json
    python -m benchmarks.latency --models whisper_tiny --duration-s 30 --budget-s 6 --out benchmarks/results/latency_encoders_30s.json

Reference points: report 000 gives 23 ms per sample for its models, report 003 finds
MobileNetV3 ≈ 3–4× faster than InceptionV3. Timings on a shared machine are only as good as its
quietness: the 1-minute load average before and after is stored with the results.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
# Not benchmarked: checkpoint ensembles are combinations of trained checkpoints (eval.py only).
SKIP = {"ensemble": "combines trained checkpoints (eval.py model=ensemble); its latency is the sum of its members'"}
SMOKE_MODELS = ["homebrew_cnn", "attention_fcn"]


def cpu_model() -> str:
    """CPU model name from ``/proc/cpuinfo`` (or ``platform.processor()`` / ``platform.machine()``)."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return name


def cpu_name() -> str:
    """CPU model name (:func:`cpu_model`) with the core count."""
    return f"{cpu_model()}, {os.cpu_count()} CPU cores"


def build(name: str, duration_s: float = 3.0, overrides: list[str] | None = None) -> tuple[torch.nn.Module, int, dict[str, Any]]:
    """A zoo model as ``train.py`` builds it, wrapped as waveform → probabilities.

    Args:
        name: Registered model name (``conf/model/<name>.yaml``).
        duration_s: Clip length in seconds (``data.duration_s``).
        overrides: Extra ``train.py`` config overrides (e.g. ``features.n_mels=128``).

    Returns:
        ``(ProbabilityModel in eval mode, num_samples, info)`` with ``info = {"parameters",
        "input_shape" (C, F, T fed to the network), "sample_rate" (Hz)}``.
    """
    from hydra import compose, initialize_config_dir

    from ser_lightning.cli.common import build_classifier
    from ser_lightning.data.audio import AudioConfig
    from ser_lightning.data.labels import get_label_set
    from ser_lightning.inference.checkpoint import ProbabilityModel

    with initialize_config_dir(config_dir=str(REPO / "ser_lightning" / "conf"), version_base="1.3"):
        # class weights need training counts (no data here); they do not change the forward pass
        cfg = compose("train", overrides=[f"model={name}", f"data.duration_s={duration_s}", "loss.class_weights=null",
                                          *(overrides or [])])
    audio = AudioConfig(sample_rate=int(cfg.data.sample_rate), duration_s=float(cfg.data.duration_s))
    classes = list(get_label_set(cfg.data.label_set, cfg.data.calm).classes)
    clf = build_classifier(cfg, classes, audio.num_samples)
    module = ProbabilityModel.from_classifier(clf)
    with torch.inference_mode():
        shape = tuple(module.frontend(torch.zeros(1, audio.num_samples)).shape[1:])
    info = {"parameters": sum(p.numel() for p in module.parameters()), "input_shape": list(shape),
            "sample_rate": audio.sample_rate}
    return module, audio.num_samples, info


def clip(num_samples: int, sample_rate: int, seed: int = 0) -> np.ndarray:
    """The timed input: ``(1, num_samples)`` float32, a 200 Hz harmonic tone plus noise, peak 1."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / sample_rate
    x = sum(np.sin(2 * np.pi * 200 * k * t) / k for k in range(1, 6)) + 0.1 * rng.standard_normal(num_samples)
    return (x / np.abs(x).max()).astype(np.float32)[None]


def time_runs(fn, x, runs: int, warmup: int, budget_s: float = 0.0) -> dict[str, Any]:
    """Median / p90 wall time of ``fn(x)`` in ms after ``warmup`` untimed calls.

    Args:
        fn: Callable on the input.
        x: Input.
        runs: Timed calls.
        warmup: Untimed calls before (at least 1).
        budget_s: When > 0, timing stops early once the timed calls have taken this many seconds
            and at least 10 were made (slow models); the number made is returned as ``runs``.

    Returns:
        ``{"runs", "median_ms", "p90_ms", "mean_ms", "min_ms"}``.
    """
    for _ in range(max(1, warmup)):
        fn(x)
    times: list[float] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t0) * 1e3)
        if budget_s > 0 and len(times) >= 10 and sum(times) > 1e3 * budget_s:
            break
    return {"runs": len(times), "median_ms": round(statistics.median(times), 3),
            "p90_ms": round(float(np.percentile(times, 90)), 3), "mean_ms": round(statistics.fmean(times), 3),
            "min_ms": round(min(times), 3)}


def bench_model(name: str, threads: list[int], runs: int, warmup: int, backends: list[str], budget_s: float,
                workdir: Path, overrides: list[str] | None = None, duration_s: float = 3.0) -> list[dict[str, Any]]:
    """Time one model on every backend and thread count; a failing backend gives an ``error`` row."""
    from ser_lightning.inference.export import export_onnx
    from ser_lightning.inference.runners import OnnxRunner

    module, n, info = build(name, duration_s, overrides=overrides)
    x_np = clip(n, info["sample_rate"])
    x_t = torch.from_numpy(x_np)
    # a speech-encoder model: whole clips, a dynamic time axis, the clip's length as a second input
    whole = getattr(module.network, "pool_states", None) is not None
    lengths = np.asarray([n], dtype=np.int64)
    rows: list[dict[str, Any]] = []
    base = {"model": name, **info}
    with torch.inference_mode():
        ref = (module(x_t, torch.from_numpy(lengths)) if whole else module(x_t)).numpy()
    for backend in backends:
        if backend == "pytorch":
            run = _eager(module, torch.from_numpy(lengths) if whole else None)
            for t in threads:
                torch.set_num_threads(t)
                rows.append({**base, "backend": "pytorch", "threads": t, **time_runs(run, x_t, runs, warmup, budget_s)})
                print(_line(rows[-1]), flush=True)
        elif backend == "onnxruntime":
            path = workdir / f"{name}.onnx"
            try:
                t0 = time.perf_counter()
                torch.set_num_threads(max(threads))
                export_onnx(module, path, n, whole_clips=whole,
                            max_samples=getattr(getattr(module.network, "encoder", None), "max_samples", None))
                export_s = round(time.perf_counter() - t0, 1)
            except Exception as err:  # record and go on with the other models
                msg = " ".join(str(err).split())[:300] or type(err).__name__
                rows.append({**base, "backend": "onnxruntime", "error": f"export failed: {msg}"})
                print(_line(rows[-1]), flush=True)
                continue
            for t in threads:
                runner = OnnxRunner(path, threads=t)
                ort_run = (lambda x, r=runner: r(x, lengths)) if whole else runner
                diff = float(np.abs(ort_run(x_np) - ref).max())
                rows.append({**base, "backend": "onnxruntime", "threads": t, "export_s": export_s,
                             "max_abs_diff_vs_pytorch": diff, **time_runs(ort_run, x_np, runs, warmup, budget_s)})
                print(_line(rows[-1]), flush=True)
                del runner
            for f in workdir.glob(f"{name}.onnx*"):
                f.unlink()
    gc.collect()
    return rows


def _eager(module: torch.nn.Module, lengths: torch.Tensor | None = None):
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return module(x) if lengths is None else module(x, lengths)

    return run


def _line(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['model']:<28} {r['backend']:<12} {r['error']}"
    return (f"{r['model']:<28} {r['backend']:<12} {r['threads']} thr  median {r['median_ms']:9.2f} ms  "
            f"p90 {r['p90_ms']:9.2f} ms  ({r['runs']} runs)")


def markdown(rows: list[dict[str, Any]], threads: list[int]) -> str:
    """README table: one line per model, median (p90) ms per backend and thread count."""
    cols = [(b, t) for b in ("pytorch", "onnxruntime") for t in threads]
    head = ["model", "parameters", "input (C×F×T)"] + [
        f"{'PyTorch' if b == 'pytorch' else 'ONNX Runtime'} {t} thr, ms" for b, t in cols] + ["runs", "max |Δp|"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    models = list(dict.fromkeys(r["model"] for r in rows))
    for m in models:
        mine = [r for r in rows if r["model"] == m]
        first = mine[0]
        cells = [m, f"{first.get('parameters', 0):,}", "×".join(map(str, first.get("input_shape") or []))]
        for b, t in cols:
            hit = [r for r in mine if r["backend"] == b and (r.get("threads") == t or "error" in r)]
            if not hit:
                cells.append("–")
            elif "error" in hit[0]:
                cells.append("failed")
            else:
                cells.append(f"{hit[0]['median_ms']:.1f} ({hit[0]['p90_ms']:.1f})")
        runs = sorted({r["runs"] for r in mine if "runs" in r})
        diffs = [r["max_abs_diff_vs_pytorch"] for r in mine if "max_abs_diff_vs_pytorch" in r]
        cells.append("/".join(map(str, runs)) or "–")
        cells.append(f"{max(diffs):.1e}" if diffs else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns 1 if any model failed on any backend."""
    from ser_lightning.cli.common import quiet_known_warnings
    from ser_lightning.models import list_models

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=None, help="model names (default: every model in the zoo)")
    ap.add_argument("--runs", type=int, default=50, help="timed runs per configuration (default 50)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed runs before timing (default 5)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="intra-op thread counts (default 1 2)")
    ap.add_argument("--backends", nargs="+", default=["pytorch", "onnxruntime"], choices=["pytorch", "onnxruntime"])
    ap.add_argument("--budget-s", type=float, default=0.0,
                    help="seconds of timed runs per configuration; slower models stop early (after >= 10 runs; "
                         "the count is recorded per row). 0 = off: always --runs")
    ap.add_argument("--duration-s", type=float, default=3.0, help="clip length in seconds (default 3.0)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "latency.json")
    ap.add_argument("--smoke", action="store_true", help=f"{SMOKE_MODELS}, 3 runs, 1 warm-up (tests)")
    ap.add_argument("overrides", nargs="*",
                    help="train.py config overrides for every model, e.g. features.n_mels=128 features.hop_length=512")
    args = ap.parse_args(argv)
    quiet_known_warnings()
    if args.smoke:
        args.models = args.models or SMOKE_MODELS
        args.runs, args.warmup = 3, 1
    names = args.models or [m for m in list_models() if m not in SKIP]
    unknown = [m for m in names if m not in list_models()]
    if unknown:
        ap.error(f"--models: unknown {unknown}; choose from {list_models()}")
    if args.runs < 1 or min(args.threads) < 1:
        ap.error("--runs and --threads must be positive")
    threads_before = torch.get_num_threads()
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in names:
                if name in SKIP:
                    rows.append({"model": name, "backend": "-", "error": f"skipped: {SKIP[name]}"})
                    continue
                rows += bench_model(name, args.threads, args.runs, args.warmup, args.backends, args.budget_s, Path(tmp),
                                    args.overrides, args.duration_s)
    finally:
        torch.set_num_threads(threads_before)
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    record = {
        "date": date.today().isoformat(), "machine": cpu_name(), "python": platform.python_version(),
        "torch": torch.__version__, "onnxruntime": ort_version,
        "command": "python -m benchmarks.latency " + " ".join(argv if argv is not None else sys.argv[1:]),
        "clip": f"batch 1, {args.duration_s:g} s at 16 kHz; frontend + network + softmax", "warmup": args.warmup,
        "runs_requested": args.runs, "budget_s": args.budget_s, "threads": args.threads, "overrides": args.overrides,
        "load_avg_1min_start": round(load_start, 2), "load_avg_1min_end": round(os.getloadavg()[0], 2),
        "wall_s": round(time.perf_counter() - start, 1), "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(markdown(rows, args.threads))
    print(f"\n{record['machine']}; load average {record['load_avg_1min_start']} -> {record['load_avg_1min_end']}; "
          f"results in {args.out}")
    return 0 if all("error" not in r or r["error"].startswith("skipped") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
