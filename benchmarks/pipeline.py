"""Input-pipeline throughput: the reference reports' per-item librosa pipeline vs ser_lightning's.

Both pipelines deliver a training epoch of feature "images" to the model; this script counts the
samples per second each delivers, with the same batch size, the same DataLoader workers, on the
same machine, in one run, over the training split of the default speaker split (RAVDESS: 16 actors,
960 clips):

(a) **reference style** — a :class:`torch.utils.data.Dataset` whose ``__getitem__`` decodes the
    file (``librosa.load``, soundfile underneath), resamples it to 16 kHz (``librosa.resample``,
    soxr_hq), pads/crops it to 3 s and computes a librosa log-mel spectrogram (``n_fft`` 1024,
    hop 256, 64 mels, ``power_to_db``, per-utterance standardisation) — every item, every epoch,
    as reports 001–003 did before caching (report 003 §3.5: "40 minutes" per epoch). It does *no*
    augmentation, so it is favoured here.
(b) **ser_lightning** — :class:`~ser_lightning.data.datamodule.SERDataModule` (decode-once float16
    memory-mapped cache) and then exactly what training runs after each batch transfer:
    :meth:`SERDataModule.on_after_batch_transfer` (waveform augmentation → the model's batched
    log-mel frontend → SpecAugment) of a :class:`~ser_lightning.modules.classifier.SERClassifier`
    built from ``conf/train.yaml`` with ``model=homebrew_cnn`` as ``train.py`` builds it, with a stub
    trainer in training mode.

The ratio b/a is printed for each DataLoader worker count (default 0, 1 and 2, the same count
for both pipelines), together with the best (b) over the best (a). (a) is per-item Python work
and grows with workers; (b) is batched tensor work that uses the cores through torch's intra-op
threads, so extra worker processes mostly add shared-memory transfers (hence ``data.num_workers:
0`` by default). The RAVDESS copy here is 16 kHz FLAC, so (a)'s resampling is a no-op on
it; the reports resampled 48 kHz originals, and the cost of that step (``librosa.resample`` of a
48 kHz clip) is measured separately and used for a second, estimated ratio.

Also measured: where (b)'s time goes per batch (loader, augmentation, frontend, SpecAugment, and
the frontend through torchaudio's own ``MelSpectrogram`` for comparison), and how (b) scales with
DataLoader workers (0, 1, 2) and batch size (16, 32, 64).

    SER_DATA_DIR=/path/to/data python -m benchmarks.pipeline           # -> benchmarks/results/pipeline.json
    python -m benchmarks.pipeline --workers 0 2 --batch-size 32 --epochs 2 --ref-limit 480
    python -m benchmarks.pipeline --smoke                               # generated audio, seconds (tests)

The machine may be shared: the 1-minute load average (``os.getloadavg``) before and after each
measurement is stored with the results.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
# Generated smoke corpus: 4 speakers, so 1 validation and 1 test speaker leave 2 for training.
SMOKE_OVERRIDES = ["data.val_speakers=1", "data.test_speakers=1"]


# ----------------------------------------------------------------------------------- shared helpers
def machine_info() -> dict[str, Any]:
    """CPU name and count, GPU name (if any), torch / Python versions, intra-op threads, date and the load average."""
    from benchmarks.latency import cpu_name

    return {
        "date": datetime.now().isoformat(timespec="seconds"),
        "cpu": cpu_name(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "loadavg_1_5_15": [round(v, 2) for v in os.getloadavg()],
    }


def loadavg() -> float:
    """1-minute load average."""
    return round(os.getloadavg()[0], 2)


def data_root(smoke: bool, root: str | None, tmp: Path) -> Path:
    """The data root: generated RAVDESS-named clips in ``tmp`` (smoke), else ``root`` or ``$SER_DATA_DIR``.

    Raises:
        FileNotFoundError: no ``ravdess/`` folder under the root (the message names ``SER_DATA_DIR``).
    """
    if smoke:
        from tests.conftest import make_ravdess

        return make_ravdess(tmp / "data", actors=range(1, 5), duration_s=1.0)
    path = Path(root or os.environ.get("SER_DATA_DIR") or "data").expanduser().resolve()
    if not (path / "ravdess").is_dir():
        raise FileNotFoundError(f"no ravdess/ under {path}: set SER_DATA_DIR (or --root) to the data root")
    return path


def default_cache_dir() -> Path:
    """``$SER_CACHE_DIR``, else a fixed folder in the system temp dir (outside the repository)."""
    return Path(os.environ.get("SER_CACHE_DIR") or Path(tempfile.gettempdir()) / "ser_lightning_bench_cache")


def compose(overrides: list[str]):
    """``conf/train.yaml`` composed with ``overrides``, as ``train.py`` would see it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "ser_lightning" / "conf"), version_base="1.3"):
        return hydra_compose("train", overrides=overrides)


def build(cfg) -> tuple[Any, Any]:
    """``(SERDataModule after setup("fit"), SERClassifier)`` built the way ``train.py`` builds them,
    the classifier's frontend handed to the data module."""
    from ser_lightning.cli.train import build_datamodule, build_module

    dm = build_datamodule(cfg, None)
    dm.progress = False
    dm.prepare_data()
    dm.setup("fit")
    model = build_module(cfg, dm)
    dm.set_frontend(model.frontend)  # the batch path timed on its own, without a trainer
    return dm, model


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def print_table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Print ``rows`` as a fixed-width table of ``columns``."""
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)))


@contextmanager
def torch_threads(n: int | None):
    """Temporarily run with ``n`` intra-op threads (``None``: leave torch's setting)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------------------- (a) reference style
class ReferenceMelDataset(Dataset):
    """Reference-report style item pipeline: decode → resample → pad/crop → librosa log-mel, per item.

    Args:
        paths: Audio files.
        labels: Class index per file.
        sample_rate: Target rate in Hz (16 kHz, as ser_lightning's default).
        duration_s: Clip length in seconds (pad with zeros / centre-crop).
        n_fft, hop_length, n_mels: STFT size and hop in samples, mel bands (ser_lightning's defaults).

    Item:
        ``(features (1, n_mels, frames) float32, class index)``.
    """

    def __init__(self, paths: list[str], labels: list[int], sample_rate: int = 16000, duration_s: float = 3.0,
                 n_fft: int = 1024, hop_length: int = 256, n_mels: int = 64) -> None:
        self.paths, self.labels = list(paths), list(labels)
        self.sample_rate, self.num_samples = sample_rate, int(round(duration_s * sample_rate))
        self.n_fft, self.hop_length, self.n_mels = n_fft, hop_length, n_mels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        import librosa

        y, sr = librosa.load(self.paths[i], sr=None, mono=True)  # decode at the file's own rate
        y = librosa.resample(y, orig_sr=sr, target_sr=self.sample_rate)  # returns y itself if sr matches
        if len(y) > self.num_samples:
            start = (len(y) - self.num_samples) // 2
            y = y[start:start + self.num_samples]
        y = librosa.util.fix_length(y, size=self.num_samples)
        mel = librosa.feature.melspectrogram(y=y, sr=self.sample_rate, n_fft=self.n_fft,
                                             hop_length=self.hop_length, n_mels=self.n_mels, power=2.0)
        db = librosa.power_to_db(mel, ref=np.max, top_db=80.0)
        db = (db - db.mean()) / (db.std() + 1e-5)
        return torch.from_numpy(db[None].astype(np.float32)), int(self.labels[i])


def time_reference(dm, batch_size: int, workers: int, limit: int | None, seed: int = 0) -> dict[str, Any]:
    """One shuffled pass of (a) over the training split (the first ``limit`` items when given).

    Returns:
        ``{"items", "of_items", "seconds", "samples_per_s", "extrapolated", "load_before", "load_after"}``;
        ``extrapolated`` is True when only ``limit`` items were timed (the rate is per item, so it
        stands for the whole epoch).
    """
    train = dm.datasets["train"]
    rows = train.rows
    # After setup(), dm.utterances are the decodable files in cache-row order: map rows back to paths.
    row_to_path = {int(r): u.path for r, u in zip(np.flatnonzero(dm.cache.ok), dm.utterances)}
    paths = [row_to_path[int(r)] for r in rows]
    labels = train.labels.tolist()
    order = np.random.default_rng(seed).permutation(len(paths))
    if limit:
        order = order[:limit]
    ds = ReferenceMelDataset([paths[i] for i in order], [labels[i] for i in order],
                             sample_rate=dm.audio_cfg.sample_rate, duration_s=dm.audio_cfg.duration_s)
    ds[0]  # import librosa and warm its caches in this process; forked workers inherit them
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers)
    load_before = loadavg()
    t0 = time.perf_counter()
    n = 0
    for feats, _ in loader:
        n += len(feats)
    seconds = time.perf_counter() - t0
    return {"items": n, "of_items": len(paths), "seconds": round(seconds, 3),
            "samples_per_s": round(n / seconds, 1), "extrapolated": bool(limit and limit < len(paths)),
            "epoch_s_estimate": round(len(paths) * seconds / n, 2), "load_before": load_before,
            "load_after": loadavg()}


def resample_cost_ms(duration_s: float = 3.7, orig_sr: int = 48000, target_sr: int = 16000, runs: int = 20) -> float:
    """Median ms of ``librosa.resample`` (default soxr_hq) of a ``duration_s`` clip from ``orig_sr`` Hz."""
    import librosa

    y = np.random.default_rng(0).standard_normal(int(duration_s * orig_sr)).astype(np.float32)
    librosa.resample(y, orig_sr=orig_sr, target_sr=target_sr)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        librosa.resample(y, orig_sr=orig_sr, target_sr=target_sr)
        times.append((time.perf_counter() - t0) * 1e3)
    return round(statistics.median(times), 3)


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median ``samples_per_s`` (lower middle for an even count), plus every round's rate."""
    ordered = sorted(runs, key=lambda r: r["samples_per_s"])
    return {**ordered[(len(ordered) - 1) // 2], "rounds_samples_per_s": [r["samples_per_s"] for r in runs]}


# ------------------------------------------------------------------------------------ (b) ser_lightning
def time_pipeline(dm, model, batch_size: int, workers: int, epochs: int) -> dict[str, Any]:
    """``epochs`` training epochs of (b): loader → ``dm.on_after_batch_transfer`` per batch.

    The loader keeps the data module's ``pin_memory`` and ``persistent_workers`` settings (defaults:
    ``auto``, i.e. off on CPU, and on).

    Returns:
        ``{"epochs": [{"samples", "seconds", "samples_per_s", "loader_wait_s", "transform_s"}, ...],
        "samples_per_s" (all epochs), "load_before", "load_after"}``.
    """
    hp = dm.hparams
    hp.batch_size, hp.num_workers = batch_size, workers
    loader = dm.train_dataloader()
    load_before = loadavg()
    per_epoch = []
    for _ in range(epochs):
        n, wait, work = 0, 0.0, 0.0
        t0 = time.perf_counter()
        it = iter(loader)
        while True:
            t1 = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                break
            t2 = time.perf_counter()
            feats, _ = dm.on_after_batch_transfer(batch, training=True)
            t3 = time.perf_counter()
            n += len(feats)
            wait += t2 - t1
            work += t3 - t2
        seconds = time.perf_counter() - t0
        per_epoch.append({"samples": n, "seconds": round(seconds, 3), "samples_per_s": round(n / seconds, 1),
                          "loader_wait_s": round(wait, 3), "transform_s": round(work, 3)})
    total_n = sum(e["samples"] for e in per_epoch)
    total_s = sum(e["seconds"] for e in per_epoch)
    return {"epochs": per_epoch, "samples_per_s": round(total_n / total_s, 1), "load_before": load_before,
            "load_after": loadavg()}


def stage_breakdown(dm, model, batch_size: int, batches: int = 10) -> dict[str, float]:
    """Median ms per batch of each stage of (b), on ``batches`` training batches (workers 0).

    Stages: ``loader`` (memory-map rows → collated ``(batch, time)`` float32), ``wave_augment``,
    ``frontend`` (the model's log-mel, the fast path used in training), ``frontend_torchaudio``
    (the same features through torchaudio's ``MelSpectrogram.forward``, i.e. ``stft.abs().pow(2)``),
    ``spec_augment``, and ``on_after_batch_transfer`` (the three together, as training calls them).
    """
    import ser_lightning.features.frontend as frontend_mod

    hp = dm.hparams
    hp.batch_size, hp.num_workers = batch_size, 0
    times: dict[str, list[float]] = {k: [] for k in ("loader", "wave_augment", "frontend", "frontend_torchaudio",
                                                     "spec_augment", "on_after_batch_transfer")}
    it = iter(dm.train_dataloader())

    def clock(key, fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        times[key].append((time.perf_counter() - t0) * 1e3)
        return out

    original = frontend_mod._capturing_graph
    for i in range(batches + 1):
        try:
            batch = clock("loader", next, it)
        except StopIteration:
            it = iter(dm.train_dataloader())
            batch = clock("loader", next, it)
        wave = clock("wave_augment", dm.wave_augment, batch[0])
        feats = clock("frontend", model.extract_features, wave)
        frontend_mod._capturing_graph = lambda: True  # force torchaudio's own forward
        try:
            clock("frontend_torchaudio", model.extract_features, wave)
        finally:
            frontend_mod._capturing_graph = original
        clock("spec_augment", dm.spec_augment, feats)
        clock("on_after_batch_transfer", lambda b: dm.on_after_batch_transfer(b, training=True), batch)
        if i == 0:  # warm-up batch
            for v in times.values():
                v.clear()
    return {k: round(statistics.median(v), 2) for k, v in times.items() if v}


# ---------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (``--help`` lists them); ``argv`` ``None`` reads ``sys.argv``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None, help="data root holding ravdess/ (default $SER_DATA_DIR)")
    p.add_argument("--cache-dir", default=None, help="waveform cache (default $SER_CACHE_DIR or a temp folder)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2],
                   help="DataLoader worker counts of the a-vs-b comparison, each used for both pipelines; "
                        "the last one is the headline ratio")
    p.add_argument("--epochs", type=int, default=2, help="epochs of (b) per configuration")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the a-vs-b comparison (median reported)")
    p.add_argument("--ref-limit", type=int, default=0, help="time (a) on this many items only (0: whole epoch)")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--scaling-workers", type=int, nargs="*", default=[0, 1, 2])
    p.add_argument("--scaling-batch-sizes", type=int, nargs="*", default=[16, 32, 64])
    p.add_argument("--scaling-epochs", type=int, default=1, help="epochs of (b) per scaling configuration and round")
    p.add_argument("--scaling-rounds", type=int, default=3,
                   help="rounds over all scaling configurations (interleaved, so a load change hits all alike); median reported")
    p.add_argument("--smoke", action="store_true", help="generated audio, tiny: seconds (tests)")
    p.add_argument("--out", default=str(RESULTS / "pipeline.json"))
    p.add_argument("overrides", nargs="*", help="extra train.py overrides, e.g. features.n_mels=128")
    args = p.parse_args(argv)
    if args.batch_size < 1:
        p.error(f"--batch-size={args.batch_size} must be at least 1")
    if args.rounds < 1 or args.epochs < 1:
        p.error(f"--rounds={args.rounds} and --epochs={args.epochs} must be at least 1")
    if any(w < 0 for w in [*args.workers, *args.scaling_workers]):
        p.error("worker counts must be >= 0")
    if args.smoke:
        args.epochs, args.scaling_workers, args.scaling_batch_sizes, args.scaling_rounds = 1, [0], [16], 1
        args.rounds = 1
        args.workers, args.batch_size, args.ref_limit = [0], 16, args.ref_limit or 16
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print tables; write JSON to ``--out``. Returns the exit code (0)."""
    args = parse_args(argv)
    from ser_lightning.cli.common import quiet_known_warnings

    quiet_known_warnings()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="ser_bench_") as tmp:
        root = data_root(args.smoke, args.root, Path(tmp))
        cache_dir = Path(tmp) / "cache" if args.smoke else Path(args.cache_dir or default_cache_dir())
        cfg = compose(["model=homebrew_cnn", f"paths.data_dir={root}", f"paths.cache_dir={cache_dir}",
                       f"data.batch_size={args.batch_size}", f"data.num_workers={args.workers[-1]}",
                       *(SMOKE_OVERRIDES if args.smoke else []), *args.overrides])
        torch.manual_seed(0)
        dm, model = build(cfg)
        info = machine_info()
        n_train = len(dm.datasets["train"])
        print(f"{info['cpu']}; torch {info['torch']}, {info['torch_threads']} intra-op threads; "
              f"load average {info['loadavg_1_5_15']}; training split: {n_train} clips")

        # For each worker count: (a), (b) and (b) with one intra-op thread, interleaved for --rounds
        # rounds; the median round of each is reported (a shared machine's load changes from minute
        # to minute). On a small shared machine, torch's default of one thread per core can be
        # slower than one thread.
        comparisons = []
        for workers in args.workers:
            refs, ourss, ours1 = [], [], []
            for _ in range(args.rounds):
                refs.append(time_reference(dm, args.batch_size, workers, args.ref_limit or None))
                ourss.append(time_pipeline(dm, model, args.batch_size, workers, args.epochs))
                if not args.smoke:
                    with torch_threads(1):
                        ours1.append(time_pipeline(dm, model, args.batch_size, workers, args.epochs))
            ref, ours = median_run(refs), median_run(ourss)
            ours_1thread = median_run(ours1) if ours1 else None
            comparisons.append({
                "workers": workers, "reference_a": ref, "ser_lightning_b": ours, "ser_lightning_b_1thread": ours_1thread,
                "ratio_b_over_a": round(ours["samples_per_s"] / ref["samples_per_s"], 2),
                "ratio_b_1thread_over_a": round(ours_1thread["samples_per_s"] / ref["samples_per_s"], 2) if ours_1thread else None,
            })
        headline = comparisons[-1]  # the last --workers value (default 2: one worker per core, (a)'s best)
        ref, ours, ours_1thread = headline["reference_a"], headline["ser_lightning_b"], headline["ser_lightning_b_1thread"]
        ratio, ratio_1thread = headline["ratio_b_over_a"], headline["ratio_b_1thread_over_a"]
        best_a = max(comparisons, key=lambda c: c["reference_a"]["samples_per_s"])
        b_rates = [(c["ser_lightning_b"]["samples_per_s"], c["workers"], "default") for c in comparisons]
        b_rates += [(c["ser_lightning_b_1thread"]["samples_per_s"], c["workers"], "1 thread")
                    for c in comparisons if c["ser_lightning_b_1thread"]]
        best_b = max(b_rates)
        best = {"a_samples_per_s": best_a["reference_a"]["samples_per_s"], "a_workers": best_a["workers"],
                "b_samples_per_s": best_b[0], "b_workers": best_b[1], "b_threads": best_b[2],
                "ratio_b_over_a": round(best_b[0] / best_a["reference_a"]["samples_per_s"], 2)}
        resample_ms = resample_cost_ms(runs=3 if args.smoke else 20)
        # Estimated (a) with 48 kHz originals: add the resampling time per item, spread over the workers.
        per_item_s = 1.0 / ref["samples_per_s"] + resample_ms / 1e3 / max(1, headline["workers"])
        ratio_48k = ours["samples_per_s"] * per_item_s
        breakdown_1thread = {}
        breakdown = stage_breakdown(dm, model, args.batch_size, batches=2 if args.smoke else 10)
        if not args.smoke:
            with torch_threads(1):
                breakdown_1thread = stage_breakdown(dm, model, args.batch_size, batches=10)

        rows = []
        for c in comparisons:
            a, b, b1 = c["reference_a"], c["ser_lightning_b"], c["ser_lightning_b_1thread"]
            rows.append({"workers": c["workers"], "pipeline": "a: librosa per item", "samples/s": a["samples_per_s"],
                         "epoch_s": a["epoch_s_estimate"], "ratio b/a": "",
                         "note": f"{a['items']} of {a['of_items']} items timed"})
            rows.append({"workers": c["workers"], "pipeline": "b: ser_lightning", "samples/s": b["samples_per_s"],
                         "epoch_s": round(n_train / b["samples_per_s"], 2), "ratio b/a": f"{c['ratio_b_over_a']:.1f}x",
                         "note": f"{args.epochs} epoch(s)"})
            if b1:
                rows.append({"workers": c["workers"], "pipeline": "b, 1 torch thread", "samples/s": b1["samples_per_s"],
                             "epoch_s": round(n_train / b1["samples_per_s"], 2),
                             "ratio b/a": f"{c['ratio_b_1thread_over_a']:.1f}x", "note": "torch.set_num_threads(1)"})
        print_table(f"Input pipeline, batch {args.batch_size}, same workers for (a) and (b)", rows,
                    ["workers", "pipeline", "samples/s", "epoch_s", "ratio b/a", "note"])
        print(f"ratio b/a = {ratio:.1f}x with {headline['workers']} workers"
              + (f" (b with 1 thread: {ratio_1thread:.1f}x)" if ratio_1thread else "")
              + f"; best b ({best['b_workers']} workers, {best['b_threads']}) over best a ({best['a_workers']} workers)"
              f" = {best['ratio_b_over_a']:.1f}x"
              + f"; with 48 kHz originals (resampling {resample_ms:.1f} ms/clip) ~ {ratio_48k:.1f}x (estimate)")
        # What the accelerator changes: the augmentation, frontend and SpecAugment run on the device,
        # and the host is left with the loader alone. An estimate from the loader's time per batch;
        # not a measurement on a GPU.
        host_only = round(args.batch_size / (breakdown["loader"] / 1e3), 1)
        # The log-mel frontend alone bounds (b) on a CPU: any pipeline that augments waveforms has to
        # recompute the spectrogram every epoch, and (b) does nothing cheaper than that.
        frontend_only = round(args.batch_size / (breakdown["frontend"] / 1e3), 1)
        best_a_rate = best["a_samples_per_s"]
        print(f"bound for (b) on this CPU, the batched log-mel frontend alone: {frontend_only} samples/s "
              f"({frontend_only / best_a_rate:.1f}x best a)")
        print(f"host side of (b) with the features on an accelerator, the loader alone (estimate): "
              f"{host_only} samples/s ({host_only / best_a_rate:.1f}x best a)")
        print_table("Stage times of (b), ms per batch (median)",
                    [{"stage": k, "default threads": v, "1 thread": breakdown_1thread.get(k)} for k, v in breakdown.items()],
                    ["stage", "default threads", "1 thread"])

        configs = [(w, bs) for w in args.scaling_workers for bs in args.scaling_batch_sizes]
        runs: dict[tuple[int, int], list[dict[str, Any]]] = {c: [] for c in configs}
        for k in range(args.scaling_rounds):
            for c in configs[k % len(configs):] + configs[:k % len(configs)]:  # rotate the order each round
                runs[c].append(time_pipeline(dm, model, c[1], c[0], args.scaling_epochs))
        scaling = []
        for (workers, bs), rs in runs.items():
            if not rs:  # --scaling-rounds 0
                continue
            rates = [r["samples_per_s"] for r in rs]
            scaling.append({"workers": workers, "batch_size": bs, "samples_per_s": round(statistics.median(rates), 1),
                            "min": min(rates), "max": max(rates), "rounds": len(rs),
                            "load": [r["load_before"] for r in rs], "runs": rs})
        print_table(f"Scaling of (b): samples/s, median of {args.scaling_rounds} interleaved rounds",
                    [{k: v for k, v in s.items() if k != "runs"} for s in scaling],
                    ["workers", "batch_size", "samples_per_s", "min", "max", "load"])

    payload = {
        "benchmark": "pipeline", "smoke": args.smoke, "machine": info, "loadavg_end": [round(v, 2) for v in os.getloadavg()],
        "command": "python -m benchmarks.pipeline " + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": {"batch_size": args.batch_size, "workers": args.workers, "epochs_b": args.epochs,
                     "scaling_epochs": args.scaling_epochs,
                     "train_clips": n_train, "features": dict(model.hparams.features),
                     "augment": dm.hparams.get("augment")},
        "headline_workers": headline["workers"],
        "reference_a": ref, "ser_lightning_b": ours, "ser_lightning_b_1thread": ours_1thread,
        "ratio_b_over_a": ratio,
        "ratio_b_1thread_over_a": ratio_1thread,
        "by_workers": comparisons, "best_b_over_best_a": best,
        "resample_48k_to_16k_ms_per_clip": resample_ms, "ratio_b_over_a_48k_estimate": round(ratio_48k, 2),
        "stage_ms_per_batch": breakdown, "stage_ms_per_batch_1thread": breakdown_1thread,
        "frontend_only_samples_per_s": frontend_only, "host_only_loader_samples_per_s_estimate": host_only,
        "scaling": scaling,
    }
    write_json(Path(args.out), payload)
    print(f"\nwrote {args.out}")
    if not math.isfinite(ratio):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
