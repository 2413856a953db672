"""The development protocol for robustness (issue 21): cross-corpus cells and RAVDESS 6-fold, one table per recipe.

Every cell is one ``train.py`` run over the same three corpora, ``data.corpora=[ravdess,tess,turev]`` with
``data.label_set=ekman7`` (RAVDESS's and TurEV-DB's calm folded into neutral; TESS's pleasant surprise counts as
surprise), so one decoded cache and one frozen-feature cache serve every cell; the split says who trains and who
is tested:

* cross-corpus cells (``data.split=corpus``): RAVDESS → TESS, TESS → RAVDESS, and leave one corpus out —
  TESS + TurEV-DB → RAVDESS, RAVDESS + TurEV-DB → TESS, RAVDESS + TESS → TurEV-DB. One speaker in six of each
  training corpus (at least one) is a validation speaker that chooses the number of epochs; with ``refit=true``
  (the default recipe's) the model is then refitted on all training speakers. Every clip of the target corpus is
  scored, on the target's own classes (the model's output restricted to the classes the target has clips of,
  renormalised: EmoBox's cross-corpus protocol); the full-output score is kept beside it.
* in-corpus cells (``data.split=kfold data.kfold_corpus=ravdess``): RAVDESS's 6 contiguous actor folds (test
  actors 1–4, 5–8, …); with ``--incorpus-extra tess turev`` the other corpora train whole beside the 20 actors
  (a multi-corpus recipe); 4 of the 20 actors validate.

Scores (%, from each run's ``test_predictions.csv``): UA (mean recall over the classes present), WA, macro-F1.
Beside each plain row, the transductive adaptations of :mod:`ser_lightning.inference.adaptation` computed from the
run's cached pooled states of the test clips (no labels read): the head's input standardised with the test set's
own statistics (``set``) or each test speaker's (``speaker``), and EM class-prior correction (Saerens et al. 2002)
of the plain and of the set-adapted output (``em``, ``set+em``), all on the restricted output. They are named so
in every table and never mixed into the plain columns. Nothing here chooses on a test corpus; the recipes are
compared on this table, as the issue names it.

    OMP_NUM_THREADS=2 SER_DATA_DIR=/path/to/data python -m benchmarks.xcorpus_cv --name default -- model=whisper_tiny

Writes ``benchmarks/results/xcorpus_<name>.json`` and ``.md``, and rewrites ``benchmarks/results/xcorpus_table.md``
(one row per recipe from every ``xcorpus_*.json`` there).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.pipeline import RESULTS, machine_info

REPO = Path(__file__).resolve().parents[1]
CORPORA = ("ravdess", "tess", "turev")
BASE = [f"data.corpora=[{','.join(CORPORA)}]", "data.label_set=ekman7", "data.calm=neutral"]
#: name → (training corpora, test corpus)
CROSS_CELLS = {
    "ravdess>tess": (["ravdess"], "tess"),
    "tess>ravdess": (["tess"], "ravdess"),
    "tess+turev>ravdess": (["tess", "turev"], "ravdess"),
    "ravdess+turev>tess": (["ravdess", "turev"], "tess"),
    "ravdess+tess>turev": (["ravdess", "tess"], "turev"),
}
N_FOLDS = 6
#: The issue's targets (UA %, restricted output, plain): cell → minimum.
TARGETS = {"ravdess>tess": 70.0, "tess>ravdess": 50.0, "ravdess+tess>turev": 60.0, "ravdess_6fold": 75.0}


def cell_overrides(cell: str, incorpus_extra: list[str]) -> list[str]:
    """``train.py`` overrides of one cell (``<train>><target>`` or ``fold<k>``)."""
    if cell in CROSS_CELLS:
        train, target = CROSS_CELLS[cell]
        return [*BASE, "data.split=corpus", f"data.test_corpora=[{target}]", f"data.train_corpora=[{','.join(train)}]"]
    k = int(cell.removeprefix("fold"))
    return [*BASE, "data.split=kfold", "data.kfold_corpus=ravdess", f"data.n_folds={N_FOLDS}", f"data.fold={k}",
            f"data.train_corpora=[{','.join(incorpus_extra)}]"]


def read_predictions(path: Path) -> tuple[np.ndarray, np.ndarray, list[str], list[dict]]:
    """``test_predictions.csv`` → ``(probabilities (n, n_classes), targets (n,), class names, rows)``."""
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    classes = [k.removeprefix("p_") for k in rows[0] if k.startswith("p_")]
    probs = np.array([[float(r[f"p_{c}"]) for c in classes] for r in rows])
    targets = np.array([classes.index(r["label"]) for r in rows])
    return probs, targets, classes, rows


def scores(probs: np.ndarray, targets: np.ndarray, restrict: bool) -> dict[str, float]:
    """UA, WA and macro-F1 (%) over the classes present in ``targets``.

    Args:
        probs: ``(n, n_classes)`` probabilities.
        targets: ``(n,)`` true class indices.
        restrict: Take the arg-max over the present classes only (the output restricted to the target's
            classes; renormalising does not move the arg-max); else over every class.
    """
    present = np.unique(targets)
    if restrict:
        pred = present[probs[:, present].argmax(axis=1)]
    else:
        pred = probs.argmax(axis=1)
    recall, f1 = [], []
    for c in present:
        tp = float(np.sum((pred == c) & (targets == c)))
        support, predicted = float(np.sum(targets == c)), float(np.sum(pred == c))
        r = tp / support
        p = tp / predicted if predicted else 0.0
        recall.append(r)
        f1.append(2 * p * r / (p + r) if p + r else 0.0)
    return {"ua": 100 * float(np.mean(recall)), "wa": 100 * float(np.mean(pred == targets)),
            "macro_f1": 100 * float(np.mean(f1))}


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def cached_pooled(metrics: dict, paths: list[str]) -> np.ndarray:
    """The run's cached pooled states of the given clips ``(n, hidden_states, pooled_dim)``, via the frozen-feature
    cache named in its ``metrics.json`` and the decoded-waveform cache its index points to."""
    frozen = metrics["frozen_features"]
    directory = Path(frozen.get("feature_cache") or frozen["embedding_cache"])  # embedding_cache: runs before 2026-12-08
    index = json.loads((directory / "index.json").read_text())
    audio = json.loads((directory.parent.parent / index["audio"]["audio_key"] / "index.json").read_text())
    row_of = {audio["paths"][r]: i for i, r in enumerate(index["rows"])}
    data = np.load(directory / "embeddings.npy", mmap_mode="r")
    return np.ascontiguousarray(data[[row_of[p] for p in paths]], dtype=np.float32)


def adapted(metrics: dict, rows: list[dict], probs: np.ndarray, targets: np.ndarray, min_clips: int) -> dict:
    """Scores of the transductive adaptations (see the module docstring), restricted to the target's classes.

    Returns:
        ``{"set", "speaker", "em", "set+em"}`` → :func:`scores`; an adaptation that cannot be computed is missing,
        with its reason under ``"notes"``.
    """
    from ser_lightning.inference.adaptation import (
        adapted_logits,
        em_prior_correction,
        restrict_probabilities,
    )
    from ser_lightning.inference.checkpoint import load_classifier, stored_datamodule_hparams

    ckpt = metrics.get("checkpoint") or metrics.get("best_checkpoint")
    model = load_classifier(ckpt, map_location="cpu")
    pooled = cached_pooled(metrics, [r["path"] for r in rows])
    present = np.unique(targets)
    local = np.searchsorted(present, targets)
    out: dict = {"notes": []}
    for name, groups in (("set", None), ("speaker", [r["speaker"] for r in rows])):
        logits, _ = adapted_logits(model.network, pooled, groups, min_clips)
        out[name] = scores(_softmax(logits.astype(np.float64)), targets, restrict=True)
        if name == "set":
            set_probs = _softmax(logits.astype(np.float64))
    try:
        from ser_lightning.cli.eval import model_training_prior

        prior = model_training_prior(model, stored_datamodule_hparams(ckpt))[present]
        for name, p in (("em", probs), ("set+em", set_probs)):
            corrected = em_prior_correction(restrict_probabilities(p, present), prior).probs
            out[name] = scores(corrected, local, restrict=False)
    except ValueError as err:
        out["notes"].append(f"EM not applied: {err}")
    return out


def run_cell(cell: str, a: argparse.Namespace) -> dict | None:
    """One cell's ``train.py`` as a subprocess; its scores, or ``None`` (stderr tail printed) on failure."""
    run_dir = Path(a.runs) / f"xcorpus_{a.name}" / cell.replace(">", "_to_")
    cmd = [sys.executable, "train.py", *cell_overrides(cell, a.incorpus_extra), *a.overrides,
           f"hydra.run.dir={run_dir}", "callbacks.progress_bar=null"]
    start = time.perf_counter()
    if a.rescore:  # score the runs already in --runs again (e.g. with new adaptations), no training
        r = subprocess.CompletedProcess(cmd, 0 if (run_dir / "test_predictions.csv").is_file() else 1, "",
                                        f"--rescore: no finished run in {run_dir}")
    else:
        r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    wall = time.perf_counter() - start
    if r.returncode != 0:
        print(f"{cell} failed (exit {r.returncode}):\n{r.stderr[-3000:]}", file=sys.stderr, flush=True)
        return None
    m = json.loads((run_dir / "metrics.json").read_text())
    probs, targets, classes, _ = read_predictions(run_dir / "test_predictions.csv")
    _, _, _, rows = read_predictions(run_dir / "test_predictions.csv")
    plain, full = scores(probs, targets, restrict=True), scores(probs, targets, restrict=False)
    if not m.get("frozen_features"):
        adapt = {"notes": ["no frozen-feature cache: no adaptation"]}
    elif m.get("protocol", "plain") != "plain":  # data.speaker_norm: the run is transductive already
        adapt = {"notes": [f"protocol {m['protocol']}: the plain row is transductive itself; no further adaptation"]}
    else:
        adapt = adapted(m, rows, probs, targets, a.adapt_min_clips)
    extract = float((m.get("frozen_features") or {}).get("extract_s") or 0.0)
    more = "  ".join(f"{k} {v['ua']:.1f}" for k, v in adapt.items() if k != "notes")
    print(f"{cell}: UA {plain['ua']:.1f} (full output {full['ua']:.1f}; transductive: {more}) over "
          f"{len(np.unique(targets))} classes, n={len(targets)}, {wall:.0f} s (extraction {extract:.0f} s)", flush=True)
    return {"cell": cell, "n": int(len(targets)), "classes": [classes[c] for c in np.unique(targets)],
            "restricted": plain, "full": full, "adapted": adapt, "best_val_ua": m.get("best_val_ua"),
            "epochs": (m.get("refit") or {}).get("epochs") or m.get("epochs"), "wall_s": round(wall, 1),
            "extract_s": extract, "run_dir": str(run_dir)}


ADAPTATIONS = ("set", "speaker", "em", "set+em")
#: How the tables name each transductive adaptation.
ADAPTATION_NAMES = {"set": "test-set statistics (transductive)", "speaker": "each test speaker's statistics "
                    "(transductive)", "em": "EM class priors (transductive)",
                    "set+em": "test-set statistics + EM priors (transductive)"}


def summarise(rows: list[dict]) -> dict[str, dict]:
    """Per cross cell its restricted and full UA and each adaptation's UA; the 6 folds as mean ± sd
    (``ravdess_6fold``)."""
    def adapted_ua(r: dict) -> dict[str, float]:
        return {k: r["adapted"][k]["ua"] for k in ADAPTATIONS if k in r.get("adapted", {})}

    out = {r["cell"]: {"ua": r["restricted"]["ua"], "ua_full": r["full"]["ua"], "adapted": adapted_ua(r)}
           for r in rows if not r["cell"].startswith("fold")}
    folds = [r for r in rows if r["cell"].startswith("fold")]
    if folds:
        ua = [r["restricted"]["ua"] for r in folds]
        per = [adapted_ua(r) for r in folds]
        out["ravdess_6fold"] = {"ua": statistics.mean(ua), "sd": statistics.stdev(ua) if len(ua) > 1 else 0.0,
                                "folds": len(folds), "wa": statistics.mean(r["restricted"]["wa"] for r in folds),
                                "adapted": {k: statistics.mean(p[k] for p in per) for k in ADAPTATIONS
                                            if all(k in p for p in per)}}
    return out


def _cell(summary: dict, cell: str, adaptation: str | None = None) -> str:
    """A table cell: restricted UA (plain, or the named adaptation's), mean ± sd for the 6 plain folds; ``–``
    where the cell was not run."""
    if cell not in summary:
        return "–"
    if adaptation is not None:
        value = summary[cell].get("adapted", {}).get(adaptation)
        return "–" if value is None else f"{value:.1f}"
    if cell == "ravdess_6fold":
        return f"{summary[cell]['ua']:.1f} ± {summary[cell]['sd']:.1f}"
    return f"{summary[cell]['ua']:.1f}"


def write_table(out_dir: Path) -> Path:
    """``xcorpus_table.md``: one row per recipe from every ``xcorpus_*.json`` in ``out_dir``."""
    cells = [*CROSS_CELLS, "ravdess_6fold"]
    head = ["recipe", *(c.replace(">", " → ") for c in cells), "minutes", "command"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for path in sorted(out_dir.glob("xcorpus_*.json")):
        p = json.loads(path.read_text())
        name = p["name"] if p.get("protocol", ["plain"]) == ["plain"] else f"{p['name']} (transductive protocol)"
        lines.append("| " + " | ".join([name, *(_cell(p["summary"], c) for c in cells), f"{p['minutes']:.1f}",
                                        f"`{p['command']}`"]) + " |")
        for k in ADAPTATIONS:
            if any(k in v.get("adapted", {}) for v in p["summary"].values()):
                lines.append("| " + " | ".join([f"{p['name']}, adapted: {ADAPTATION_NAMES[k]}",
                                                *(_cell(p["summary"], c, k) for c in cells), "", ""]) + " |")
    targets = ", ".join(f"{c.replace('>', ' → ')} ≥ {v:.0f}" for c, v in TARGETS.items())
    lines += ["", "UA % on the target's own classes (the output restricted to them). Plain rows: no adaptation. "
              "Rows marked adapted are transductive (they use the unlabelled test clips' statistics or class "
              "shares) and are never the plain result. "
              f"RAVDESS 6-fold: mean ± sd over the contiguous actor folds (adapted rows: mean). Targets: {targets}. "
              "Minutes: the cells' wall times added up, on the machine of its JSON file (2 shared cores unless it says otherwise)."]
    path = out_dir / "xcorpus_table.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True, help="recipe name (output file names, table row)")
    p.add_argument("--cells", nargs="*", help="run only these cells (e.g. ravdess>tess fold0); default all")
    p.add_argument("--incorpus-extra", nargs="*", default=[], choices=["tess", "turev"],
                   help="corpora that train whole beside RAVDESS's 20 actors in the in-corpus folds")
    p.add_argument("--jobs", type=int, default=1, help="cells at the same time (separate processes)")
    p.add_argument("--rescore", action="store_true", help="score the finished runs in --runs again, train nothing "
                   "(wall times are then the scoring's)")
    p.add_argument("--adapt-min-clips", type=int, default=20, help="a test speaker with fewer clips keeps the "
                   "training statistics (adapt=speaker)")
    p.add_argument("--out-dir", default=str(RESULTS))
    p.add_argument("--runs", default=str(REPO / "benchmarks" / "runs"), help="where the run directories go")
    p.add_argument("overrides", nargs="*", help="train.py overrides of the recipe (after --)")
    a = p.parse_args(argv)
    cells = a.cells or [*CROSS_CELLS, *(f"fold{k}" for k in range(N_FOLDS))]
    unknown = [c for c in cells if c not in CROSS_CELLS and c not in {f"fold{k}" for k in range(N_FOLDS)}]
    if unknown:
        p.error(f"unknown cells {unknown}; choose from {[*CROSS_CELLS, *(f'fold{k}' for k in range(N_FOLDS))]}")
    # the first cell alone: it builds the caches every later cell reuses
    first = run_cell(cells[0], a)
    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        rest = list(pool.map(lambda c: run_cell(c, a), cells[1:]))
    results = [first, *rest]
    rows = [r for r in results if r is not None]
    failed = [c for c, r in zip(cells, results) if r is None]
    if not rows:
        return 1
    extra = " ".join(a.incorpus_extra)
    command = (f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python -m benchmarks.xcorpus_cv --name {a.name}"
               f"{' --cells ' + ' '.join(a.cells) if a.cells else ''}{' --incorpus-extra ' + extra if extra else ''}"
               f"{f' --jobs {a.jobs}' if a.jobs > 1 else ''} -- {shlex.join(a.overrides)}")
    previous = Path(a.out_dir) / f"xcorpus_{a.name}.json"
    machine = machine_info()
    if previous.is_file() and (a.rescore or a.cells):
        old = json.loads(previous.read_text())
        if a.rescore:  # keep the training runs' facts; their cells' wall times stand
            walls = {c["cell"]: c["wall_s"] for c in old["cells"]}
            for row in rows:
                row["wall_s"] = walls.get(row["cell"], row["wall_s"])
            command, machine = old["command"], old["machine"]
        if a.cells:  # some cells run again: the others' rows stay
            done = {r["cell"] for r in rows}
            order = [*CROSS_CELLS, *(f"fold{k}" for k in range(N_FOLDS))]
            rows = sorted([*rows, *(c for c in old["cells"] if c["cell"] not in done)], key=lambda r: order.index(r["cell"]))
            command = old["command"] if not a.rescore else command
    minutes = round(sum(r["wall_s"] for r in rows) / 60, 1)
    protocols = sorted({json.loads((Path(r["run_dir"]) / "metrics.json").read_text()).get("protocol", "plain")
                        for r in rows})
    payload = {"name": a.name, "date": dt.date.today().isoformat(), "command": command, "machine": machine,
               "protocol": protocols,
               "overrides": a.overrides, "incorpus_extra": a.incorpus_extra, "cells": rows, "failed": failed,
               "summary": summarise(rows), "minutes": minutes}
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"xcorpus_{a.name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [f"# {a.name}", "", f"{payload['date']}; `{command}`", "",
             "| cell | n | classes | UA % | WA % | macro-F1 % | UA % full output | val UA | epochs | wall s |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        val = "–" if r["best_val_ua"] is None else f"{100 * r['best_val_ua']:.1f}"
        lines.append(f"| {r['cell']} | {r['n']} | {len(r['classes'])} | {r['restricted']['ua']:.1f} | "
                     f"{r['restricted']['wa']:.1f} | {r['restricted']['macro_f1']:.1f} | {r['full']['ua']:.1f} | "
                     f"{val} | {r['epochs']} | {r['wall_s']:.0f} |")
    (out / f"xcorpus_{a.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"table: {write_table(out)}")
    if failed:
        print(f"cells {failed} failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
