"""Decode-once cache: cold build time, reopen time, size, and build time vs corpus size.

1. **Cold build**: a fresh :class:`~ser_lightning.data.datamodule.SERDataModule` (default
   ``conf/train.yaml`` data settings of ``model=homebrew_cnn``: 16 kHz, 3 s, peak-normalised, float16) decodes all of
   RAVDESS into an empty temporary cache folder (``prepare_data``); timed end to end, including
   the corpus scan.
2. **Reopen**: a second fresh datamodule's ``prepare_data`` over the same folder (scan, cache key
   from every file's size and mtime, open the memory map; with the checksum check when the cache
   module has one), and ``build_or_load`` alone.
3. **Corpus-size scaling**: :func:`~ser_lightning.data.cache.build_or_load` on the RAVDESS file list
   repeated ×1, ×2, ×4 (every copy decoded again into its own row: a stand-in for a 2× / 4× larger
   corpus; no audio is copied anywhere), each into an empty temporary folder.

The audio files are read once before timing so every build sees them in the OS page cache (a
first-ever build from a cold disk is slower by the disk read time). The cache and everything
else lives in a temporary folder outside the repository and is deleted at the end.

    SER_DATA_DIR=/path/to/data python -m benchmarks.cache_build     # -> benchmarks/results/cache_build.json
    python -m benchmarks.cache_build --repeats 1 2 4 --decode-workers 2
    python -m benchmarks.cache_build --smoke                         # generated audio, seconds (tests)
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.pipeline import (
    RESULTS,
    SMOKE_OVERRIDES,
    compose,
    data_root,
    loadavg,
    machine_info,
    print_table,
    write_json,
)


def folder_bytes(path: Path) -> int:
    """Total size in bytes of the regular files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def fresh_datamodule(cfg, cache_dir: Path, decode_workers: int):
    """A new ``SERDataModule`` from ``cfg.data`` with ``cache_dir``, no progress bar."""
    from ser_lightning.cli.train import build_datamodule

    cfg.data.cache_dir = str(cache_dir)
    dm = build_datamodule(cfg, None)
    dm.progress = False
    dm.decode_workers = decode_workers
    return dm


def timed(fn, *args, **kwargs) -> tuple[float, Any]:
    """``(seconds, fn(*args, **kwargs))``."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (``--help`` lists them); ``argv`` ``None`` reads ``sys.argv``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None, help="data root holding ravdess/ (default $SER_DATA_DIR)")
    p.add_argument("--repeats", type=int, nargs="*", default=[1, 2, 4], help="corpus-size multiples")
    p.add_argument("--decode-workers", type=int, default=2, help="decoding threads (data module default: 2)")
    p.add_argument("--reopens", type=int, default=3, help="timed reopens (the median is reported)")
    p.add_argument("--tmp", default=None, help="parent of the temporary cache folders (default: system temp)")
    p.add_argument("--smoke", action="store_true", help="generated audio, tiny: seconds (tests)")
    p.add_argument("--out", default=str(RESULTS / "cache_build.json"))
    p.add_argument("overrides", nargs="*", help="extra train.py overrides, e.g. data.cache_dtype=float32")
    args = p.parse_args(argv)
    if any(r < 1 for r in args.repeats) or not args.repeats:
        p.error(f"--repeats={args.repeats} must be positive integers")
    if args.decode_workers < 1:
        p.error(f"--decode-workers={args.decode_workers} must be at least 1")
    if args.smoke:
        args.repeats, args.reopens = [1, 2], 1
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print tables; write JSON to ``--out``. Returns the exit code (0)."""
    import statistics

    from ser_lightning.cli.common import quiet_known_warnings
    from ser_lightning.data.cache import build_or_load

    args = parse_args(argv)
    quiet_known_warnings()
    info = machine_info()
    with tempfile.TemporaryDirectory(prefix="ser_cache_bench_", dir=args.tmp) as tmp:
        tmp = Path(tmp)
        root = data_root(args.smoke, args.root, tmp)
        cfg = compose(["model=homebrew_cnn", f"paths.data_dir={root}", *(SMOKE_OVERRIDES if args.smoke else []), *args.overrides])
        dm = fresh_datamodule(cfg, tmp / "unused", args.decode_workers)
        utts, _, _ = dm._scan()
        paths = [u.path for u in utts]
        audio_bytes = 0
        for path in paths:  # warm the page cache: every timed build reads from memory
            audio_bytes += len(Path(path).read_bytes())
        print(f"{info['cpu']}; load average {info['loadavg_1_5_15']}; {len(paths)} files, "
              f"{audio_bytes / 1e6:.1f} MB of audio; decode workers {args.decode_workers}")

        # 1. cold build through the data module, as train.py does
        cold_dir = tmp / "cold"
        load_before = loadavg()
        build_s, _ = timed(fresh_datamodule(cfg, cold_dir, args.decode_workers).prepare_data)
        cold = {"files": len(paths), "seconds": round(build_s, 2), "files_per_s": round(len(paths) / build_s, 1),
                "cache_bytes": folder_bytes(cold_dir), "dtype": str(cfg.data.cache_dtype),
                "load_before": load_before, "load_after": loadavg()}
        # 2. reopen: a new data module (scan + key + open) and build_or_load alone
        dm_times, bol_times, bol_fast = [], [], []
        check = "verify_checksum" in inspect.signature(build_or_load).parameters
        for _ in range(args.reopens):
            dm_times.append(timed(fresh_datamodule(cfg, cold_dir, args.decode_workers).prepare_data)[0])
            s, cached = timed(build_or_load, paths, dm.audio_cfg, cold_dir, str(cfg.data.cache_dtype), progress=False)
            if cached.built:
                raise RuntimeError(f"{cold_dir}: the cache was rebuilt instead of reopened")
            bol_times.append(s)
            if check:
                bol_fast.append(timed(build_or_load, paths, dm.audio_cfg, cold_dir, str(cfg.data.cache_dtype),
                                      progress=False, verify_checksum=False)[0])
        reopen = {"datamodule_prepare_data_s": round(statistics.median(dm_times), 3),
                  "build_or_load_s": round(statistics.median(bol_times), 3),
                  "build_or_load_no_checksum_s": round(statistics.median(bol_fast), 3) if bol_fast else None,
                  "checksum_checked": check, "runs": args.reopens}
        rows = [{"step": "cold build (decode + cache)", "seconds": cold["seconds"],
                 "note": f"{cold['files_per_s']} files/s, {cold['cache_bytes'] / 1e6:.0f} MB {cold['dtype']}"},
                {"step": "reopen: new SERDataModule.prepare_data", "seconds": reopen["datamodule_prepare_data_s"],
                 "note": "scan + key + open" + (" + checksum" if check else "")},
                {"step": "reopen: build_or_load", "seconds": reopen["build_or_load_s"], "note": ""}]
        if bol_fast:
            rows.append({"step": "reopen: build_or_load, no checksum", "seconds": reopen["build_or_load_no_checksum_s"],
                         "note": "verify_checksum=False"})
        print_table("Cache build and reopen", rows, ["step", "seconds", "note"])

        # 3. corpus-size scaling
        scaling = []
        for k in args.repeats:
            listing = paths * k
            load_before = loadavg()
            s, cached = timed(build_or_load, listing, dm.audio_cfg, tmp / f"x{k}", str(cfg.data.cache_dtype),
                              workers=args.decode_workers, progress=False)
            scaling.append({"repeat": k, "files": len(listing), "seconds": round(s, 2),
                            "files_per_s": round(len(listing) / s, 1), "cache_bytes": folder_bytes(tmp / f"x{k}"),
                            "load_before": load_before, "load_after": loadavg()})
            del cached
        base = scaling[0]["seconds"] / scaling[0]["repeat"]
        for row in scaling:
            row["seconds_per_x1"] = round(row["seconds"] / row["repeat"], 2)
            row["vs_linear"] = round(row["seconds"] / (base * row["repeat"]), 2)
        print_table("Build time vs corpus size (RAVDESS file list repeated)", scaling,
                    ["repeat", "files", "seconds", "files_per_s", "seconds_per_x1", "vs_linear", "load_before"])

    payload = {"benchmark": "cache_build", "smoke": args.smoke, "machine": info,
               "loadavg_end": [round(v, 2) for v in os.getloadavg()],
               "command": "python -m benchmarks.cache_build " + " ".join(argv if argv is not None else sys.argv[1:]),
               "audio": {"files": len(paths), "bytes": audio_bytes, "page_cache": "warm"},
               "decode_workers": args.decode_workers, "cold_build": cold, "reopen": reopen, "scaling": scaling}
    write_json(Path(args.out), payload)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
