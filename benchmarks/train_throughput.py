"""Training throughput (samples/s) and peak memory of a training run.

Each configuration trains in its own child process (so its peak RSS is its own): the data module
and classifier are built from ``conf/train.yaml`` as ``train.py`` builds them, then a Lightning
``Trainer`` fits for ``--steps`` optimiser steps (or until ``--time-budget-s``), without
validation, logging or checkpoints. Reported per configuration:

* ``samples_per_s`` — end to end, as training sees it: loader + on-device augmentation and
  frontend + forward + backward + optimiser, from the end of the ``--warmup``-th step to the end
  of the last step;
* ``step_samples_per_s`` — the model step alone (forward + backward + optimiser, between
  ``on_train_batch_start`` and ``on_train_batch_end``);
* ``peak_rss_mb`` — ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of the training process, and
  of its DataLoader workers (``RUSAGE_CHILDREN``, the largest one);
* on a GPU, the mean GPU utilisation sampled every 0.2 s (``torch.cuda.utilization``, needs
  ``pynvml``), else ``null``.

Default configurations: ``homebrew_cnn``; ``efficientnet_lite0`` at its default 224×224 input;
``efficientnet_lite0`` at ``model.input_size=[64,188]`` (the log-mel's native size, no resize).
GPU options (for machines with one): ``--accelerator gpu``, ``--precision bf16-mixed|16-mixed``,
``--channels-last``, ``--compile``, ``--pin-memory``, ``--persistent-workers``.

    SER_DATA_DIR=/path/to/data python -m benchmarks.train_throughput     # -> benchmarks/results/train_throughput.json
    python -m benchmarks.train_throughput --configs homebrew_cnn --steps 100 --workers 1
    python -m benchmarks.train_throughput --accelerator gpu --precision bf16-mixed --channels-last --pin-memory --persistent-workers --workers 4
    python -m benchmarks.train_throughput --smoke                        # generated audio, seconds (tests)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.pipeline import (
    REPO,
    RESULTS,
    SMOKE_OVERRIDES,
    compose,
    data_root,
    default_cache_dir,
    loadavg,
    machine_info,
    print_table,
    write_json,
)

# name -> train.py overrides
CONFIGS: dict[str, list[str]] = {
    "homebrew_cnn": ["model=homebrew_cnn"],
    "efficientnet_lite0_224x224": ["model=efficientnet_lite0"],
    "efficientnet_lite0_64x188": ["model=efficientnet_lite0", "model.input_size=[64,188]"],
}
SMOKE_CONFIGS = ["homebrew_cnn"]
_MARK = "@@THROUGHPUT@@"


class StepTimer:
    """Lightning callback recording step timestamps and batch sizes; stops after a time budget.

    Args:
        budget_s: Stop training (``trainer.should_stop``) once this many seconds have passed since
            the first step started (0: no budget).
    """

    def __init__(self, budget_s: float = 0.0) -> None:
        import lightning.pytorch as pl

        outer = self

        class _Callback(pl.Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                outer._sync(pl_module)
                outer.starts.append(time.perf_counter())
                outer.sizes.append(len(batch[1]))

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                outer._sync(pl_module)
                outer.ends.append(time.perf_counter())
                if outer.budget_s and outer.ends[-1] - outer.starts[0] > outer.budget_s:
                    trainer.should_stop = True

        self.callback = _Callback()
        self.budget_s = budget_s
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.sizes: list[int] = []

    @staticmethod
    def _sync(module) -> None:
        import torch

        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)

    def summary(self, warmup: int) -> dict[str, Any]:
        """Throughput after ``warmup`` steps: ``{"steps", "timed_steps", "samples_per_s", "step_samples_per_s", ...}``."""
        n = len(self.ends)
        w = min(warmup, max(0, n - 2))
        timed = range(w + 1, n)
        samples = sum(self.sizes[i] for i in timed)
        wall = self.ends[-1] - self.ends[w] if n > w + 1 else float("nan")
        step = sum(self.ends[i] - self.starts[i] for i in timed)
        return {"steps": n, "timed_steps": len(timed), "warmup_steps": w + 1, "timed_samples": samples,
                "seconds": round(wall, 3), "samples_per_s": round(samples / wall, 2) if samples else None,
                "step_samples_per_s": round(samples / step, 2) if samples else None,
                "first_step_s": round(self.ends[0] - self.starts[0], 3) if n else None}


class GpuSampler:
    """Samples ``torch.cuda.utilization()`` every ``period_s`` in a thread (``mean`` is None off-GPU)."""

    def __init__(self, period_s: float = 0.2) -> None:
        self.period_s, self.values, self._stop = period_s, [], threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        import torch

        if torch.cuda.is_available():
            try:
                torch.cuda.utilization()
            except Exception as err:  # pynvml missing, no NVML: report why instead of failing
                self.error = str(err)
                return self
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        import torch

        while not self._stop.is_set():
            self.values.append(torch.cuda.utilization())
            time.sleep(self.period_s)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    @property
    def mean(self) -> float | None:
        """Mean utilisation in percent, or None."""
        return round(sum(self.values) / len(self.values), 1) if self.values else None


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one configuration in this process; return its measurements (see the module docstring)."""
    import lightning.pytorch as pl
    import torch

    from benchmarks.pipeline import build
    from ser_lightning.cli.common import quiet_known_warnings

    quiet_known_warnings()
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    cfg = compose([f"paths.data_dir={spec['root']}", f"paths.cache_dir={spec['cache_dir']}",
                   f"data.batch_size={spec['batch_size']}", f"data.num_workers={spec['workers']}",
                   f"data.pin_memory={str(spec['pin_memory']).lower()}",
                   f"data.persistent_workers={str(spec['persistent_workers']).lower()}", *spec["overrides"]])
    pl.seed_everything(0, workers=True)
    dm, model = build(cfg)
    if spec["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
        model.network.register_forward_pre_hook(
            lambda _m, args: tuple(a.contiguous(memory_format=torch.channels_last) if torch.is_tensor(a) and a.dim() == 4
                                   else a for a in args))
    if spec["compile"]:
        model.network = torch.compile(model.network)
    timer = StepTimer(spec["time_budget_s"])
    trainer = pl.Trainer(
        accelerator=spec["accelerator"], devices=1, precision=spec["precision"], max_epochs=10_000,
        max_steps=spec["steps"], limit_val_batches=0, num_sanity_val_steps=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[timer.callback], default_root_dir=spec["run_dir"],
    )
    load_before = loadavg()
    with GpuSampler() as gpu:
        t0 = time.perf_counter()
        trainer.fit(model, datamodule=dm)
        fit_s = time.perf_counter() - t0
    with torch.no_grad():
        input_shape = list(model.frontend(torch.zeros(1, dm.audio_cfg.num_samples, device=model.device)).shape[1:])
    out = timer.summary(spec["warmup"])
    out.update({
        "fit_s": round(fit_s, 2), "input_shape": input_shape,
        "parameters": sum(p.numel() for p in model.network.parameters()),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_workers_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "gpu_util_mean_pct": gpu.mean, "device": str(model.device), "load_before": load_before,
        "load_after": loadavg(), "torch_threads": torch.get_num_threads(),
    })
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (``--help`` lists them); ``argv`` ``None`` reads ``sys.argv``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None, help="data root holding ravdess/ (default $SER_DATA_DIR)")
    p.add_argument("--cache-dir", default=None, help="waveform cache (default $SER_CACHE_DIR or a temp folder)")
    p.add_argument("--configs", nargs="*", default=list(CONFIGS), help=f"any of {list(CONFIGS)}")
    p.add_argument("--steps", type=int, default=40, help="optimiser steps per configuration (at most)")
    p.add_argument("--warmup", type=int, default=3, help="untimed first steps")
    p.add_argument("--time-budget-s", type=float, default=120.0, help="stop a configuration after this many s (0: none)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: conf/data's)")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--accelerator", default="cpu", help="cpu | gpu | auto")
    p.add_argument("--precision", default="32", help="32 | 16-mixed | bf16-mixed")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format (GPU convs)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network")
    p.add_argument("--pin-memory", action="store_true")
    p.add_argument("--persistent-workers", action="store_true")
    p.add_argument("--smoke", action="store_true", help="generated audio, homebrew CNN, 3 steps (tests)")
    p.add_argument("--out", default=str(RESULTS / "train_throughput.json"))
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", help="extra train.py overrides for every configuration")
    args = p.parse_args(argv)
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown:
        p.error(f"--configs {unknown}: not in {list(CONFIGS)}")
    if args.steps < 2:
        p.error(f"--steps={args.steps} must be at least 2")
    if args.smoke:
        args.configs, args.steps, args.warmup, args.batch_size = SMOKE_CONFIGS, 4, 1, 8
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every configuration in a child process; print a table; write JSON. Returns 0, or 1 if one failed."""
    args = parse_args(argv)
    if args.child:
        result = run_child(json.loads(args.child))
        print(_MARK + json.dumps(result))
        return 0
    info = machine_info()
    rows: list[dict[str, Any]] = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="ser_train_bench_") as tmp:
        root = data_root(args.smoke, args.root, Path(tmp))
        cache_dir = Path(tmp) / "cache" if args.smoke else Path(args.cache_dir or default_cache_dir())
        workers = args.workers
        if workers is None:
            workers = int(compose([]).data.num_workers)
        for name in args.configs:
            spec = {"root": str(root), "cache_dir": str(cache_dir), "batch_size": args.batch_size,
                    "workers": workers, "pin_memory": args.pin_memory, "persistent_workers": args.persistent_workers,
                    "overrides": [*CONFIGS[name], *(SMOKE_OVERRIDES if args.smoke else []), *args.overrides],
                    "threads": args.threads, "channels_last": args.channels_last, "compile": args.compile,
                    "accelerator": args.accelerator, "precision": args.precision, "steps": args.steps,
                    "warmup": args.warmup, "time_budget_s": args.time_budget_s, "run_dir": str(Path(tmp) / name)}
            proc = subprocess.run([sys.executable, "-m", "benchmarks.train_throughput", "--child", json.dumps(spec)],
                                  cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_MARK)]
            if proc.returncode != 0 or not lines:
                failed = True
                row = {"config": name, "error": (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]}
                print(f"{name}: failed\n{proc.stderr[-3000:]}", file=sys.stderr)
            else:
                row = {"config": name, **json.loads(lines[-1][len(_MARK):])}
            rows.append(row)
    print(f"{info['cpu']}; torch {info['torch']}; batch {args.batch_size}, {workers} workers, "
          f"{args.accelerator}, precision {args.precision}")
    print_table("Training throughput", rows, ["config", "input_shape", "timed_steps", "samples_per_s",
                                                "step_samples_per_s", "peak_rss_mb", "peak_rss_workers_mb",
                                                "gpu_util_mean_pct", "load_before", "load_after"])
    payload = {"benchmark": "train_throughput", "smoke": args.smoke, "machine": info,
               "loadavg_end": [round(v, 2) for v in os.getloadavg()],
               "command": "python -m benchmarks.train_throughput " + " ".join(argv if argv is not None else sys.argv[1:]),
               "settings": {"batch_size": args.batch_size, "workers": workers, "accelerator": args.accelerator,
                            "precision": args.precision, "channels_last": args.channels_last, "compile": args.compile,
                            "pin_memory": args.pin_memory, "persistent_workers": args.persistent_workers,
                            "steps": args.steps, "warmup": args.warmup, "time_budget_s": args.time_budget_s,
                            "threads": args.threads or None},
               "results": rows}
    write_json(Path(args.out), payload)
    print(f"\nwrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
