"""Cross-corpus evaluation in one command: train on a corpus (or a combination), score every other.

Two plans (``cross.mode``):

* ``train`` – each entry of ``cross.train`` (a corpus name, or a list = one combined training
  set) is trained once and scored on every corpus of ``cross.corpora`` that is present under the
  data root and not part of its training set;
* ``loco`` – leave one corpus out: each present corpus of ``cross.corpora`` in turn is the
  target, the other present ones together train.

Every training run is a normal ``train.py`` run (its own directory under ``train/``, a
speaker-independent split of its training corpora, early stopping on its validation speakers,
its in-corpus test score). Its best checkpoint is then scored on each target corpus, every clip
of it (``cross.target_split=all``) through the shared vocabulary: the model's label set and audio
settings stay, clips whose emotion the model cannot output are counted as unscorable. UA (mean
recall), WA (accuracy) and macro-F1 are taken over the *scorable classes*: the model's classes
that the target corpus has clips of (a class the target lacks has no recall to average).

Every target is scored several ways (:mod:`ser_lightning.evaluation.views`), one row each:

* ``output=full``, "full N-way output": the arg-max over all the model's classes, scored over the
  scorable classes (a prediction of a class the target lacks is an error);
* ``output=restricted``, "restricted to the target's classes" (EmoBox's cross-corpus protocol): the
  probabilities of the target's classes renormalised and the arg-max re-taken over them only
  (``cross.labels=[...]``: over those classes instead; clips of other classes are then not scored);
* with ``cross.adapt=set|speaker`` and/or ``cross.adapt_prior=em``, the same two outputs adapted
  without labels (:mod:`ser_lightning.inference.adaptation`): the head's input standardised with the
  target's own statistics (of the whole target, or of each target speaker), the class priors
  re-estimated by EM. These rows are *transductive* (``transductive=true``, named so in
  ``adaptation``) and never replace the plain ones.

Output in the run directory: ``cross_corpus.csv`` / ``cross_corpus.md`` (one row per training
set × target × output × adaptation: n, UA, WA, macro-F1, scorable classes, unscorable clips, which
normalisation statistics, a note; plus each training set's in-corpus test row),
``cross_corpus_ua.png`` (heatmap of UA of the plain full output, training sets × targets),
``cross_corpus_ua_restricted.png`` (the same for the plain restricted output) and
``cross_corpus.json`` (every row with its confusion matrix and classes, for aggregation).

A target is scored on the frozen-feature path when the model allows it (cached pooled encoder states,
reused by every training set of the plan), else on waveforms.

Normalisation: the spectrogram frontends normalise every clip on its own
(``features.normalize=utterance``: zero mean, unit variance per clip over frequency and frames;
``data.normalize``: peak or RMS per waveform), so no statistics cross from the training corpus to
a target corpus. BYOL-S standardises its log-mel with a mean and sd: fixed ones (SERAB's RAVDESS
values, ``model.norm_stats=fixed``) or, with ``model.norm_stats=per_corpus``, each corpus's own
(:mod:`ser_lightning.modules.norm_stats`): a training corpus's from its training clips, a target
corpus's from its own clips; the table's ``norm_stats`` column says which were used. Source of
the protocol: Schuller et al. (2010), "Cross-corpus acoustic emotion recognition: variances and
strategies", IEEE Transactions on Affective Computing 1(2): 119–131 (per-utterance/per-corpus
normalisation, scoring on the classes two corpora share).
"""

from __future__ import annotations

import copy
import csv
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from ser_lightning.evaluation.views import scorable_scores
from ser_lightning.inference.adaptation import PLAIN

log = logging.getLogger(__name__)

CROSS_MODES = ("train", "loco")
TABLE_COLUMNS = ("train", "target", "kind", "output", "adaptation", "transductive", "n", "ua", "wa", "macro_f1",
                 "scorable_classes", "n_scorable_classes", "unscorable", "norm_stats", "note")
#: The ``output_name`` of the restricted rows (without ``cross.labels``).
RESTRICTED_NAME = "restricted to the target's classes"


def training_sets(mode: str, train: list | None, corpora: list[str]) -> list[list[str]]:
    """The training sets of a plan.

    Args:
        mode: ``train`` or ``loco``.
        train: ``cross.train`` entries (a corpus or a list of corpora each); ``train`` mode only.
        corpora: The present candidate corpora (``loco``: every one is held out in turn).

    Returns:
        One list of corpora per training run.

    Raises:
        ValueError: unknown mode, empty ``cross.train``, or fewer than two corpora for ``loco``.
    """
    if mode not in CROSS_MODES:
        raise ValueError(f"cross.mode={mode!r} is not one of {list(CROSS_MODES)}")
    if mode == "loco":
        if len(corpora) < 2:
            raise ValueError(f"cross.mode=loco needs at least two present corpora; present: {corpora}")
        return [[c for c in corpora if c != held] for held in corpora]
    if not train:
        raise ValueError("cross.train is empty: give corpora to train on, e.g. cross.train=[ravdess] or "
                         "'cross.train=[[ravdess,cremad]]' for one combined training set")
    return [[str(t)] if isinstance(t, str) else [str(x) for x in t] for t in train]


def present_corpora(data_root: str | Path, corpora: list[str]) -> tuple[list[str], dict[str, str]]:
    """Which of ``corpora`` are under ``data_root`` (``.csv`` manifests: which exist).

    Returns:
        ``(present, missing)``: present names in order, and missing name → reason.
    """
    from ser_lightning.data.corpora import check_corpus_name, find_corpus_root

    present, missing = [], {}
    for c in corpora:
        name = check_corpus_name(c)
        try:
            if name.lower().endswith(".csv"):
                if not Path(name).expanduser().is_file() and not (Path(data_root) / name).is_file():
                    raise FileNotFoundError(f"manifest {name} does not exist")
            else:
                find_corpus_root(data_root, name)
            present.append(name)
        except FileNotFoundError as err:
            missing[name] = str(err)
    return present, missing


def _name(corpora: list[str]) -> str:
    return "+".join(Path(c).stem if c.lower().endswith(".csv") else c for c in corpora)


def evaluate_on_corpus(cfg: DictConfig, ckpt: str | Path, target: str, out_dir: Path) -> list[dict[str, Any]]:
    """Score a checkpoint on every clip (``cross.target_split``) of one target corpus, every output view.

    The data settings are the checkpoint's model side (audio, label set) with the request's
    corpus side (root, cache, loader, ``unknown_labels``) and ``corpora=[target]``.

    Args:
        cfg: The composed ``conf/cross_corpus.yaml`` (``cross.labels``, ``cross.adapt``,
            ``cross.adapt_prior``, ``cross.adapt_min_clips``: see :func:`~ser_lightning.cli.eval.adaptation_request`).
        ckpt: Best checkpoint of a training run.
        target: Target corpus name or manifest path.
        out_dir: Where this evaluation's ``split.csv`` and ``unknown_labels.csv`` go.

    Returns:
        One row per view (:func:`~ser_lightning.evaluation.views.output_views`: ``output``,
        ``output_name``, ``adaptation``, ``transductive``, scores, ``classes``, ``confusion_matrix``,
        ``note``) with ``unscorable`` (clips) and ``norm_stats`` (:func:`norm_stats_label`); the plain full
        output first.

    Raises:
        ValueError: a bad ``cross.labels``/``cross.adapt*`` setting, or an adaptation the model cannot take.
    """
    from ser_lightning.cli.common import build_trainer
    from ser_lightning.cli.eval import (
        adaptation_request,
        eval_data_settings,
        prepare_adaptation,
        scored_views,
    )
    from ser_lightning.data.datamodule import SERDataModule
    from ser_lightning.inference.checkpoint import (
        load_classifier,
        read_checkpoint,
        stored_datamodule_hparams,
    )
    from ser_lightning.modules.frozen_features import (
        frozen_feature_path,
        speaker_norm_inputs,
        use_frozen_features,
    )
    from ser_lightning.modules.norm_stats import use_eval_norm_stats

    request_adapt = adaptation_request(cfg.cross)
    checkpoint = read_checkpoint(ckpt)  # read once: its data settings here, the classifier below
    stored = stored_datamodule_hparams(ckpt, checkpoint)
    data = OmegaConf.to_container(cfg.data, resolve=True)
    request = {k: data[k] for k in ("root", "cache_dir", "batch_size", "num_workers", "unknown_labels", "seed")
               if k in data}
    request.update(corpora=[target], missing_corpora="error", split="speaker", emobox=None)
    settings, _ = eval_data_settings(stored, request)
    split = cfg.cross.get("target_split", "all")
    dm = SERDataModule(**{**settings, "test_split": split, "run_dir": str(out_dir), "progress": False})
    dm.setup("test")
    model = load_classifier(ckpt, map_location="cpu", checkpoint=checkpoint)
    sources = use_eval_norm_stats(model, dm, out_dir)  # per_corpus: the target's own statistics
    trainer = build_trainer(cfg, callbacks=[], logger=False, devices=1, num_nodes=1, strategy="auto",
                            sync_batchnorm=False, enable_progress_bar=False, enable_model_summary=False)
    accelerator = "gpu" if trainer.strategy.root_device.type == "cuda" else "cpu"
    speaker_norm_inputs(model, dm, accelerator=accelerator)  # data.speaker_norm=true: each target speaker standardised
    if request_adapt["adapt"] != "none":
        prepare_adaptation(model, dm, request_adapt["adapt"], accelerator)
    elif not dm.hparams.get("speaker_norm") and frozen_feature_path(model.network, dm, dict(model.hparams["model"]))[0]:
        use_frozen_features(model.network, dm, dict(model.hparams["model"]), accelerator=accelerator, progress=False)
    trainer.test(model, datamodule=dm, verbose=False)
    results = model.test_results
    views, info = scored_views(model, dm, split, results["logits"], results["targets"], request_adapt, stored,
                               RESTRICTED_NAME, ckpt)
    for note in info["notes"]:
        log.warning("cross-corpus %s: %s", target, note)
    return [{**v, "unscorable": len(dm.dropped), "norm_stats": norm_stats_label(sources)} for v in views]


def norm_stats_label(sources: dict[str, str] | str | None) -> str:
    """The table's ``norm_stats`` cell: ``fixed``, or ``per_corpus (<source>)`` per corpus.

    Args:
        sources: Corpus → source (``training clips`` / ``own clips``) as from
            :func:`~ser_lightning.modules.norm_stats.use_eval_norm_stats`; ``None`` or ``"fixed"``
            for fixed statistics; a dict of statistics (``metrics.json``'s ``norm_stats``) means
            training clips.
    """
    if not sources or sources == "fixed":
        return "fixed"
    kinds = sorted({v if isinstance(v, str) else "training clips" for v in dict(sources).values()})
    return f"per_corpus ({', '.join(kinds)})"


def _train_one(cfg: DictConfig, corpora: list[str], out_dir: Path) -> dict[str, Any]:
    """One ``train.py`` run on ``corpora`` in ``out_dir``; returns its ``metrics.json``."""
    from ser_lightning.cli.train import train

    sub = copy.deepcopy(cfg)
    OmegaConf.set_struct(sub, False)
    sub.paths.output_dir = str(out_dir)
    sub.data.corpora = list(corpora)
    sub.data.missing_corpora = "error"
    train(sub)
    return json.loads((out_dir / "metrics.json").read_text())


def write_table(rows: list[dict[str, Any]], out_dir: Path) -> tuple[Path, Path]:
    """``cross_corpus.csv`` (:data:`TABLE_COLUMNS`) and ``cross_corpus.md`` (scores as percentages; the output
    column shows its name, e.g. "restricted to the target's classes")."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path_csv = out_dir / "cross_corpus.csv"
    with path_csv.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(TABLE_COLUMNS)
        for r in rows:
            w.writerow([" ".join(r[c]) if c == "scorable_classes" else ("" if r[c] is None else r[c])
                        for c in TABLE_COLUMNS])

    def pct(x):
        return "–" if x is None else f"{100 * x:.1f}"

    lines = ["| train | target | kind | output | adaptation | n | UA % | WA % | macro-F1 % | scorable classes | "
             "unscorable | norm stats | note |",
             "|---|---|---|---|---|---:|---:|---:|---:|---|---:|---|---|"]
    lines += [f"| {r['train']} | {r['target']} | {r['kind']} | {r.get('output_name', r['output'])} | {r['adaptation']} | "
              f"{r['n']} | {pct(r['ua'])} | {pct(r['wa'])} | {pct(r['macro_f1'])} | {', '.join(r['scorable_classes'])} | "
              f"{r['unscorable']} | {r.get('norm_stats', 'fixed')} | {r.get('note', '')} |" for r in rows]
    path_md = out_dir / "cross_corpus.md"
    path_md.write_text("\n".join(lines) + "\n")
    return path_csv, path_md


def plot_heatmap(rows: list[dict[str, Any]], path: Path, metric: str = "ua", title: str | None = None) -> Path:
    """Heatmap of ``metric`` (in %): training sets (rows) × target corpora (columns).

    Give it one row per (training set, target): e.g. the plain full-output rows. In-corpus test scores
    sit in their own column (``in-corpus test``); empty cells are pairs not run.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trains = list(dict.fromkeys(r["train"] for r in rows))
    targets = list(dict.fromkeys(r["target"] if r["kind"] == "cross" else "in-corpus test" for r in rows))
    grid = np.full((len(trains), len(targets)), np.nan)
    for r in rows:
        col = r["target"] if r["kind"] == "cross" else "in-corpus test"
        if r[metric] is not None:
            grid[trains.index(r["train"]), targets.index(col)] = 100 * r[metric]
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(targets), 1.2 + 0.6 * len(trains)))
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(targets)), targets, rotation=30, ha="right")
    ax.set_yticks(range(len(trains)), trains)
    ax.set_xlabel("target corpus")
    ax.set_ylabel("trained on")
    for i in range(len(trains)):
        for j in range(len(targets)):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.1f}", ha="center", va="center",
                        color="white" if grid[i, j] < 50 else "black", fontsize=8)
    fig.colorbar(im, ax=ax, label=f"{metric.upper()} %")
    ax.set_title(title or f"cross-corpus {metric.upper()}, full output (scorable classes)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_cross_corpus(cfg: DictConfig) -> dict[str, Any]:
    """Train every training set of the plan and score it on its targets (see the module docstring).

    Args:
        cfg: The composed ``conf/cross_corpus.yaml``: ``train.yaml``'s groups plus ``cross.mode``,
            ``cross.train``, ``cross.corpora`` and ``cross.target_split``.

    Returns:
        ``{"rows": [...], "missing": {...}, "table": path, "heatmap": path}`` (also written to
        ``cross_corpus.json``).

    Raises:
        ValueError: a bad plan (unknown mode, empty training list, a training corpus that is not
            present, fewer than two corpora for ``loco``), or no target for a training set.
    """
    from ser_lightning.cli.eval import adaptation_request
    from ser_lightning.data.datamodule import resolve_data_root
    from ser_lightning.data.labels import get_label_set
    from ser_lightning.inference.adaptation import label_subset

    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cross = cfg.cross
    adapt = adaptation_request(cross)  # a bad setting fails before any training
    if adapt["labels"] is not None:
        data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
        classes = get_label_set(data_cfg.get("label_set", "ravdess8"), data_cfg.get("calm", "neutral")).classes
        label_subset(adapt["labels"], classes, f"of data.label_set={data_cfg.get('label_set')}")
    root = resolve_data_root(cfg.data.get("root"))
    candidates = [str(c) for c in cross.corpora]
    present, missing = present_corpora(root, candidates)
    for name, why in missing.items():
        log.warning("cross-corpus: %s left out: %s", name, why)
    train = OmegaConf.to_container(cross.train, resolve=True) if cross.get("train") is not None else None
    plan = training_sets(cross.mode, train, present)
    for corpora in plan:
        absent = [c for c in corpora if c not in present and not c.lower().endswith(".csv")]
        if absent and cross.mode == "train":
            present_train, why = present_corpora(root, absent)
            if why:
                raise ValueError(f"cross.train: {list(why)} not found under {root}: {next(iter(why.values()))}")
    rows: list[dict[str, Any]] = []
    for corpora in plan:
        name = _name(corpora) if cross.mode == "train" else f"all-but-{_name([c for c in present if c not in corpora])}"
        targets = [c for c in present if c not in corpora]
        if not targets:
            raise ValueError(f"training set {corpora} leaves no target corpus among the present {present}")
        log.info("cross-corpus: training on %s, targets %s", corpora, targets)
        run_dir = out_dir / "train" / name
        metrics = _train_one(cfg, corpora, run_dir)
        n_classes = len(metrics["labels"])
        rows.append({"train": name, "target": _name(corpora), "kind": "in-corpus test", "output": "full",
                     "output_name": f"full {n_classes}-way output", "adaptation": PLAIN, "transductive": False, "n": metrics["n"],
                     **{k: v for k, v in scorable_scores(metrics["confusion_matrix"], metrics["labels"]).items()
                        if k != "n"}, "classes": list(metrics["labels"]), "confusion_matrix": metrics["confusion_matrix"],
                     "excluded": 0, "unscorable": 0, "norm_stats": norm_stats_label(metrics.get("norm_stats")), "note": ""})
        ckpt = metrics.get("best_checkpoint") or str(run_dir / "checkpoints" / "best.ckpt")
        for target in targets:
            for row in evaluate_on_corpus(cfg, ckpt, target, out_dir / "eval" / f"{name}__{_name([target])}"):
                rows.append({"train": name, "target": _name([target]), "kind": "cross", **row})
                log.info("cross-corpus %s -> %s, %s, %s: UA %s over %s (unscorable %d)", name, target,
                         row["output_name"], row["adaptation"], "n/a" if row["ua"] is None else f"{row['ua']:.4f}",
                         row["scorable_classes"], row["unscorable"])
    for r in rows:
        r["n_scorable_classes"] = len(r["scorable_classes"])
    table, _ = write_table(rows, out_dir)
    plain = [r for r in rows if r["adaptation"] == PLAIN]
    heatmap = plot_heatmap([r for r in plain if r["output"] == "full"], out_dir / "cross_corpus_ua.png")
    restricted = [r for r in plain if r["output"] == "restricted"]
    heatmap_r = plot_heatmap(restricted, out_dir / "cross_corpus_ua_restricted.png",
                             title="cross-corpus UA, output restricted to the target's classes") if restricted else None
    result = {"mode": cross.mode, "rows": rows, "missing": missing, "table": str(table), "heatmap": str(heatmap),
              "heatmap_restricted": None if heatmap_r is None else str(heatmap_r),
              "adaptation": adapt,
              "label_set": OmegaConf.to_container(cfg.data, resolve=True).get("label_set")}
    (out_dir / "cross_corpus.json").write_text(json.dumps(result, indent=2))
    log.info("cross-corpus table: %s; heatmap: %s", table, heatmap)
    return result


if __name__ == "__main__":  # python -m ser_lightning.cli.cross_corpus = ser-cross-corpus
    from ser_lightning.cli.main import run

    run("cross-corpus")
