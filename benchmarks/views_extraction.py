"""Cost of the augmented views (``augment=robust``, ``data.train_views``): extraction time for K = 1 ... N.

The run is built the way ``train.py`` builds it (``conf/train.yaml`` with ``augment=robust`` and the
given overrides; by default the frozen Whisper tiny.en encoder on RAVDESS), then
:func:`~ser_lightning.modules.frozen_features.use_frozen_features` embeds the clean clips (or reuses their
cache) and N views per clip. Views are cached one per view index and do not depend on K, so the
extraction time for K views is the sum of the first K views' times; every view is timed on its own
(made by the chain on the CPU, then embedded). ``--views-seed`` (default 1000, a seed no run uses)
makes the views fresh, so nothing is reused; a view that was reused all the same is reported as
such and left out of the sums.

Also measured: each stage's own cost per clip on ``--stage-clips`` training clips (the stage applied
with probability 1), which says where a view's time goes.

    SER_DATA_DIR=/path/to/data SER_CACHE_DIR=/path/to/cache python -m benchmarks.views_extraction --views 4
        # -> benchmarks/results/views_extraction.{json,md}
    python -m benchmarks.views_extraction --smoke      # generated audio, BYOL-S, seconds (tests)

The machine may be shared: the 1-minute load average before and after is stored with the results.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.pipeline import (
    RESULTS,
    SMOKE_OVERRIDES,
    build,
    compose,
    data_root,
    loadavg,
    machine_info,
    write_json,
)


def stage_costs(dm, clips: int) -> list[dict[str, Any]]:
    """Mean seconds per clip of each active stage of ``dm.view_chain`` (applied with probability 1) on the
    first ``clips`` training clips, and their mean length in seconds."""
    rows = dm.datasets["train"].rows[:clips]
    sr = dm.audio_cfg.sample_rate
    waves = [dm.cache.waves[r, : dm.cache.lengths[r]].astype(np.float32) for r in rows]
    out = []
    for name, transform, p in dm.view_chain.stages:
        transform(waves[0], sr, 0)  # first call: imports and one-time set-up
        start = time.perf_counter()
        for i, w in enumerate(waves):
            transform(w, sr, i)
        out.append({"stage": name, "p": p, "s_per_clip": round((time.perf_counter() - start) / len(waves), 4)})
    mean_len = float(np.mean([len(w) for w in waves])) / sr
    expected = sum(s["p"] * s["s_per_clip"] for s in out)
    out.append({"stage": "expected per view (sum of p x cost)", "p": None, "s_per_clip": round(expected, 4),
                "mean_clip_s": round(mean_len, 2)})
    return out


def run(overrides: list[str], views: int, stage_clips: int) -> dict[str, Any]:
    """Build the run, time the clean and the per-view extractions and the stages."""
    from omegaconf import OmegaConf

    from ser_lightning.cli.validate import validate_config
    from ser_lightning.modules.frozen_features import use_frozen_features
    from ser_lightning.modules.norm_stats import training_norm_stats

    cfg = compose(["augment=robust", f"data.train_views={views}", *overrides])
    validate_config(cfg)
    dm, model = build(cfg)
    model_settings = OmegaConf.to_container(cfg.model, resolve=True)
    training_norm_stats(model.network, dm, model_settings)
    load_before = loadavg()
    n_clips = len(dm.cache_rows()[0])
    costs = stage_costs(dm, stage_clips) if stage_clips else []
    start = time.perf_counter()
    cached = use_frozen_features(model.network, dm, model_settings, progress=False)
    total_s = time.perf_counter() - start
    per_view = cached.views["extract_s_per_view"]
    built = cached.views["built"]
    fresh = [s for s, b in zip(per_view, built) if b]
    table = [{"K": k, "views_extract_s": round(sum(per_view[:k]), 1), "views_extract_min": round(sum(per_view[:k]) / 60, 2),
              "all_fresh": all(built[:k])} for k in range(1, views + 1)]
    return {
        "model": cfg.model.name, "corpora": list(cfg.data.corpora), "clips": n_clips, "view_clips": cached.views["clips"],
        "chain": repr(dm.view_chain), "views_seed": int(dm.view_seed),
        "clean": {"built": bool(cached.built), "extract_s": round(cached.extract_s - cached.views["extract_s"], 1)},
        "per_view": [{"view": j, "built": b, "extract_s": s} for j, (b, s) in enumerate(zip(built, per_view))],
        "mean_fresh_view_s": round(float(np.mean(fresh)), 1) if fresh else None,
        "by_k": table, "stage_costs": costs, "use_frozen_features_s": round(total_s, 1),
        "load_before": load_before, "load_after": loadavg(),
    }


def write_md(path: Path, payload: dict[str, Any]) -> None:
    """The results as a Markdown page."""
    r = payload["result"]
    lines = [f"# Augmented views: extraction time ({payload['machine']['date']})", "",
             f"`{payload['command']}`", "",
             f"{r['model']} on {', '.join(r['corpora'])}: {r['view_clips']} clips get views; chain {r['chain']}, "
             f"views seed {r['views_seed']}. Machine: {payload['machine']['cpu']}, {payload['machine']['torch_threads']} "
             f"torch thread(s), load average {r['load_before']} before / {r['load_after']} after (shared cores).", "",
             "| K | views extraction (s) | (min) | all views fresh |", "|---|---|---|---|"]
    lines += [f"| {t['K']} | {t['views_extract_s']} | {t['views_extract_min']} | {t['all_fresh']} |" for t in r["by_k"]]
    lines += ["", "| view | extracted now | seconds |", "|---|---|---|"]
    lines += [f"| {v['view']} | {v['built']} | {v['extract_s']} |" for v in r["per_view"]]
    if r["stage_costs"]:
        lines += ["", "Stage costs (probability 1, seconds per clip):", "", "| stage | p in the chain | s per clip |",
                  "|---|---|---|"]
        lines += [f"| {s['stage']} | {s['p']} | {s['s_per_clip']} |" for s in r["stage_costs"]]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (see the module docstring) and write its JSON and Markdown results; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=4, help="largest K (views 0 ... K-1 are timed)")
    parser.add_argument("--views-seed", type=int, default=1000, help="augment.views.seed (a fresh one: no reuse)")
    parser.add_argument("--stage-clips", type=int, default=40, help="training clips for the per-stage costs (0: skip)")
    parser.add_argument("--root", default=None, help="data root (default $SER_DATA_DIR)")
    parser.add_argument("--out", default=str(RESULTS / "views_extraction.json"))
    parser.add_argument("--smoke", action="store_true", help="generated audio, BYOL-S, a cheap chain (seconds)")
    parser.add_argument("overrides", nargs="*", help="further train.py overrides, e.g. model=byol_s")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = data_root(args.smoke, args.root, Path(tmp))
        overrides = [f"paths.data_dir={root}", f"augment.views.seed={args.views_seed}", *args.overrides]
        if args.smoke:
            overrides = [*overrides, *SMOKE_OVERRIDES, "model=byol_s", f"paths.cache_dir={tmp}/cache",
                         "~augment.views.reverb", "~augment.views.pitch", "~augment.views.codec"]
        result = run(overrides, args.views, args.stage_clips)
    payload = {"command": "python -m benchmarks.views_extraction " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
               "machine": machine_info(), "result": result}
    out = Path(args.out)
    write_json(out, payload)
    write_md(out.with_suffix(".md"), payload)
    for t in result["by_k"]:
        print(f"K={t['K']}: views extraction {t['views_extract_s']} s ({t['views_extract_min']} min)")
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
