"""Frozen-encoder extraction cost on real RAVDESS clips: load time, clips per second and peak memory.

Builds one registered encoder model (``model.name``, its ``conf/model/<name>.yaml`` settings: frozen encoder,
mean + std of every hidden state) and times what the frozen-feature cache does once per clip:
:meth:`~ser_lightning.models.encoders.encoder_classifier.EncoderClassifier.pooled_states` on whole clips, in batches
of the config's ``model.extract_batch_size`` in file order, each batch zero-padded to its longest clip with
its lengths. Clips: every ``--stride``-th RAVDESS file (sorted; all 24 actors), the first ``--clips``.

One model per process, so the peak resident set size (``ru_maxrss``) is that model's: imports + weights +
extraction. Each run adds or replaces its model's entry in the results file.

Run with one thread (the CPU is shared)::

    OMP_NUM_THREADS=1 SER_DATA_DIR=/path/to/data python -m benchmarks.encoder_extraction --model whisper_tiny
    OMP_NUM_THREADS=1 SER_DATA_DIR=/path/to/data python -m benchmarks.encoder_extraction --model whisper_base
    python -m benchmarks.encoder_extraction --model whisper_base --smoke   # generated audio, random weights

Writes ``benchmarks/results/encoder_extraction.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from benchmarks.encoder_probe import list_clips, load_audio
from benchmarks.pipeline import (
    REPO,
    RESULTS,
    data_root,
    loadavg,
    machine_info,
    print_table,
    write_json,
)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def measure(model: str, root: Path, clips: int, stride: int, pretrained: str | None = "offline") -> dict[str, Any]:
    """Time building ``model`` and extracting pooled hidden states of ``clips`` RAVDESS clips.

    Args:
        model: A registered encoder model with a ``conf/model/<model>.yaml`` (``whisper_tiny``, ``whisper_base``, ...).
        root: Data root holding ``ravdess/``.
        clips: How many clips to time.
        stride: Take every ``stride``-th clip of the sorted list.
        pretrained: ``model.pretrained`` (``offline``: the packaged weights; ``none``: random, for smoke runs).

    Returns:
        The measurement (``clips``, ``audio_s``, ``load_s``, ``extract_s``, ``s_per_clip``, ``clips_per_s``,
        ``audio_s_per_s``, the process CPU time of the extraction (``extract_cpu_s``, ``cpu_s_per_clip``: on
        shared cores the wall time also counts other processes' turns), ``peak_rss_mb`` before and after, ``pooled_shape``, the load average around it).

    Raises:
        FileNotFoundError: no RAVDESS clips under ``root``.
    """
    from ser_lightning.models import build_model

    settings = {k: v for k, v in OmegaConf.to_container(OmegaConf.load(REPO / "ser_lightning" / "conf" / "model" / f"{model}.yaml")).items() if k != "defaults"}
    batch = int(settings.pop("extract_batch_size", 16))
    keep = ("pretrained", "pad_to_30s", "freeze", "pool_each_layer", "pooling", "layer_combine", "layers", "pooled_norm")
    kwargs = {k: settings[k] for k in keep if k in settings}
    kwargs["pretrained"] = pretrained
    paths = list_clips(root)[0][::stride][:clips]
    waves = load_audio(paths)
    rss_before = peak_rss_mb()
    load_before = loadavg()
    t0 = time.perf_counter()
    net = build_model(model, in_channels=1, num_classes=8, **kwargs).eval()
    load_s = time.perf_counter() - t0
    rss_loaded = peak_rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.no_grad():
        for i in range(0, len(waves), batch):
            chunk = waves[i:i + batch]
            lengths = torch.tensor([len(w) for w in chunk])
            x = torch.zeros(len(chunk), int(lengths.max()))
            for j, w in enumerate(chunk):
                x[j, : len(w)] = w
            pooled = net.pooled_states(x, lengths)
    extract_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    audio_s = sum(len(w) for w in waves) / 16000
    return {"model": model, "weights": getattr(net, "weights_source", None), "clips": len(waves),
            "stride": stride, "audio_s": round(audio_s, 1), "extract_batch_size": batch,
            "encoder_parameters": int(sum(p.numel() for p in net.encoder.parameters())),
            "pooled_shape": list(pooled.shape[1:]), "load_s": round(load_s, 2), "extract_s": round(extract_s, 2),
            "s_per_clip": round(extract_s / len(waves), 4), "clips_per_s": round(len(waves) / extract_s, 2),
            "audio_s_per_s": round(audio_s / extract_s, 1), "extract_cpu_s": round(cpu_s, 2),
            "cpu_s_per_clip": round(cpu_s / len(waves), 4), "peak_rss_mb_before_model": rss_before,
            "peak_rss_mb_after_load": rss_loaded, "peak_rss_mb": peak_rss_mb(),
            "torch_threads": torch.get_num_threads(), "loadavg_before": load_before, "loadavg_after": loadavg()}


def main(argv: list[str] | None = None) -> int:
    """Command line (module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="registered encoder model with a conf/model/<name>.yaml")
    ap.add_argument("--clips", type=int, default=100)
    ap.add_argument("--stride", type=int, default=14, help="every n-th clip of the sorted RAVDESS list")
    ap.add_argument("--root", default=None, help="data root (default $SER_DATA_DIR)")
    ap.add_argument("--smoke", action="store_true", help="generated audio and random weights (seconds)")
    ap.add_argument("--out", default=str(RESULTS / "encoder_extraction.json"))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = data_root(args.smoke, args.root, Path(tmp))
        row = measure(args.model, root, args.clips, 1 if args.smoke else args.stride,
                      pretrained="none" if args.smoke else "offline")
    out = Path(args.out)
    payload = json.loads(out.read_text()) if out.is_file() else {"benchmark": "encoder_extraction", "runs": {}}
    payload["runs"][args.model] = {**row, "smoke": args.smoke, "machine": machine_info(),
                                   "command": "OMP_NUM_THREADS=1 python -m benchmarks.encoder_extraction "
                                              + " ".join(sys.argv[1:] if argv is None else argv)}
    write_json(out, payload)
    print_table(f"frozen-encoder extraction ({out})", list(payload["runs"].values()),
                ["model", "clips", "audio_s", "load_s", "s_per_clip", "cpu_s_per_clip", "clips_per_s", "audio_s_per_s", "peak_rss_mb",
                 "loadavg_before", "loadavg_after"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
