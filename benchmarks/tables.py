"""The results tables of the documentation, rendered from the files the benchmarks wrote.

Every table the docs show from a measurement is generated here from ``benchmarks/results/*.json`` (and
``ser_lightning/assets/default/cv_results.json`` for the shipped model), never typed: a page marks the place of
a table with a pair of comments and this script rewrites what lies between them::

    <!-- BEGIN TABLE encoder_cv -->
    ... (generated: the table, then the files it was read from with their date, machine and command)
    <!-- END TABLE -->

``make docs`` runs it before ``mkdocs build --strict``; ``--check`` rewrites nothing and exits 1 when a page
is out of date with its files (``tests/test_readme.py`` runs it). What a table shows beside its files (a row's
label, a footnote marker) is set in :data:`TABLES` below; a number without a results file stays in the page's
text, saying so.

    python -m benchmarks.tables            # rewrite docs/*.md
    python -m benchmarks.tables --check    # exit 1 if a page differs from its files
    python -m benchmarks.tables --show encoder_cv

Standard library only (no torch), so the docs build stays fast.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SHIPPED = REPO / "ser_lightning" / "assets" / "default" / "cv_results.json"
DOCS = REPO / "docs"

BLOCK = re.compile(r"(<!-- BEGIN TABLE (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- END TABLE -->)", re.S)


# ---------------------------------------------------------------------------------------------------------------
# Reading results files


def _rel(path: Path) -> str:
    return str(path.resolve().relative_to(REPO))


def load(name: str | Path) -> tuple[dict[str, Any], Path]:
    """A results file and its path (``name`` relative to ``benchmarks/results/``, or a path).

    Raises:
        FileNotFoundError: the file does not exist (the message names it and the table that needs it).
    """
    path = name if isinstance(name, Path) else RESULTS / name
    if not path.is_file():
        raise FileNotFoundError(f"{_rel(path) if path.is_relative_to(REPO) else path}: results file not found")
    return json.loads(path.read_text(encoding="utf-8")), path


def machine_text(m: Any) -> str:
    """One line for a results file's ``machine`` entry (a dict or a string)."""
    if not m:
        return "machine not recorded"
    if isinstance(m, str):
        return m
    parts = [m.get("gpu") or "", m.get("cpu", "")]
    if "cpu_count" in m and "cores" not in str(m.get("cpu", "")):
        parts.append(f"{m['cpu_count']} CPU cores")
    if m.get("torch_threads") is not None:
        parts.append(f"{m['torch_threads']} torch thread(s)")
    elif m.get("OMP_NUM_THREADS"):
        parts.append(f"OMP_NUM_THREADS={m['OMP_NUM_THREADS']}")
    for key in ("torch", "lightning", "python"):
        if m.get(key):
            parts.append(f"{key} {m[key]}")
    load_avg = m.get("loadavg_1_5_15")
    if load_avg:
        parts.append(f"load average {load_avg[0]}")
    return ", ".join(p for p in parts if p)


class Sources:
    """The files a table was read from, listed under it with their date, machine and command."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: Path, data: dict[str, Any], date: str | None = None, command: str | None = None,
            machine: Any = None) -> None:
        m = machine if machine is not None else data.get("machine")
        when = date or data.get("date") or (m.get("date") if isinstance(m, dict) else None) \
            or data.get("built_at") or "date not recorded"
        cmd = command if command is not None else data.get("command")
        when = str(when)[:19] if re.match(r"\d{4}-\d\d-\d\dT", str(when)) else str(when)  # no time zone
        line = f"`{_rel(path)}`: {when}, {machine_text(m)}"
        if cmd:
            line += f"; `{cmd}`"
        if line not in self.items:
            self.items.append(line)

    def render(self) -> str:
        if not self.items:
            return ""
        head = f'??? info "Generated from {len(self.items)} results file{"s" if len(self.items) > 1 else ""}"'
        return "\n".join([head, "", *(f"    - {i}" for i in self.items)])


def md_table(head: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A Markdown table; ``align`` is one letter per column, ``l`` or ``r`` (default all left)."""
    align = align or "l" * len(head)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def pct(x: float | None, digits: int = 1) -> str:
    """A fraction as a percentage number (``0.8086`` → ``80.9``); ``–`` for ``None``."""
    return "–" if x is None else f"{100 * x:.{digits}f}"


def mean_sd_text(values: Sequence[float]) -> str:
    """``mean ± sample sd`` of percentages, one decimal (sd 0 for a single value)."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {sd:.1f}"


class CV:
    """One ``benchmarks/results/cv_<row>_<folds>.json`` (``encoder_cv.py`` / ``ensemble_cv.py``): per-fold
    scores recomputed into mean ± sample sd at full precision, as the file's own ``.md`` shows them."""

    def __init__(self, stem: str, sources: Sources) -> None:
        self.data, self.path = load(f"cv_{stem}.json")
        sources.add(self.path, self.data)
        self.folds = self.data["per_fold"]

    def metric(self, key: str) -> str:
        return mean_sd_text([100 * f[key] for f in self.folds])

    def ua_mean(self) -> float:
        return statistics.mean(100 * f["ua"] for f in self.folds)

    def val_ua(self) -> str:
        vals = [f["best_val_ua"] for f in self.folds if f.get("best_val_ua") is not None]
        return f"{100 * statistics.mean(vals):.1f}" if vals else "–"

    def minutes(self) -> str:
        """Wall minutes per fold (extraction excluded), ``GPU`` in front when the file ran on one."""
        m = self.data.get("train_min_per_fold")
        if m is None:
            walls = [f["wall_s"] for f in self.folds if f.get("wall_s") is not None]
            if not walls:
                return "–"
            return f"{statistics.mean(walls) / 60:.1f} (eval)"
        gpu = (self.data.get("machine") or {}).get("cuda")
        return f"{'GPU ' if gpu else ''}{m:.1f}"


# ---------------------------------------------------------------------------------------------------------------
# The tables


def shipped_folds() -> str:
    """The shipped default model's cross-validation (``cv_results.json`` beside ``model.ckpt``)."""
    d, path = load(SHIPPED)
    src = Sources()
    src.add(path, d, date=d.get("built_at"))
    shipped = re.match(r"fold(\d+)/", d.get("shipped_file", {}).get("source", ""))
    rows = []
    for f in d["folds"]:
        name = f"{f['fold']} (shipped)" if shipped and int(shipped.group(1)) == f["fold"] else str(f["fold"])
        sel = f.get("selected_model", {}).get("ua")
        rows.append([name, ", ".join(map(str, f["test_speakers"])), pct(f["ua"]), pct(f["wa"]), pct(f["macro_f1"]),
                     pct(sel), f.get("refit", {}).get("epochs", "–")])
    ms = lambda k: f"{100 * d[k + '_mean']:.1f} ± {100 * d[k + '_sd']:.1f}"  # noqa: E731
    sel = (f"{100 * d['selected_model_ua_mean']:.1f} ± {100 * d['selected_model_ua_sd']:.1f}"
           if "selected_model_ua_mean" in d else "–")
    rows.append(["**mean ± sd**", "", f"**{ms('ua')}**", f"**{ms('wa')}**", f"**{ms('macro_f1')}**", sel, ""])
    table = md_table(["fold", "test actors", "UA %", "WA %", "macro-F1 %", "validation-selected UA %",
                      "refit epochs"], rows, "rlrrrrr")
    return f"{table}\n\nBuild wall time: {d.get('build_wall_s', '–')} s.\n\n{src.render()}"


def shipped_cross() -> str:
    """The shipped model's recipe on the development protocol's cross-corpus cells (``cv_results.json``'s
    ``cross_corpus``, written by ``build_default_model.py --all-data``): plain and adapted UA per cell."""
    d, path = load(SHIPPED)
    src = Sources()
    src.add(path, d, date=d.get("built_at"))
    cells = d.get("cross_corpus")
    if not cells:
        return f"This build recorded no cross-corpus cells.\n\n{src.render()}"
    keys = [k for k in ("set", "speaker") if any(k in c.get("adapted", {}) for c in cells)]
    rows = [[c["cell"], c["n"], len(c["classes"]), pct(c["ua"]), pct(c.get("ua_full_output")),
             *[pct(c.get("adapted", {}).get(k)) for k in keys]] for c in cells]
    head = ["trained on → scored on", "clips", "classes", "UA % (plain)", "UA % full output",
            *[f"UA % adapted: {'test-set' if k == 'set' else 'each test speaker'} statistics (transductive)" for k in keys]]
    dev = d.get("development_protocol") or {}
    return (f"{md_table(head, rows, 'lrr' + 'r' * (len(head) - 3))}\n\n{d.get('cross_corpus_protocol', '')} "
            f"Recipe `{dev.get('name', '?')}` ({dev.get('date', '?')}; `{dev.get('command', '?')}`).\n\n{src.render()}")


def shipped_file() -> str:
    """What ``model.ckpt`` holds and the digests that pin it (``cv_results.json``)."""
    d, path = load(SHIPPED)
    src = Sources()
    src.add(path, d, date=d.get("built_at"))
    f = d["shipped_file"]
    enc = f.get("frozen_encoder", {})
    pkg = enc.get("package", {})
    rows = [["file", f"`ser_lightning/assets/default/model.ckpt`, {f['bytes']:,} bytes (from the build's "
                     f"`{f['source']}`)"],
            ["tensors in the file", f"{f['tensors']} ({f['parameters']:,} parameters)"],
            ["file SHA-256", f"`{f['file_sha256']}`"],
            ["tensors' SHA-256 (`state_dict_sha256`)", f"`{f['state_dict_sha256']}`"]]
    if enc:
        rows += [["frozen encoder (not in the file)",
                  f"`{enc['model']}`: {enc['tensors']} tensors, {enc['parameters']:,} parameters, from "
                  f"`{pkg.get('name', '?')}` {pkg.get('version', '?')} (`model.pretrained={enc.get('pretrained')}`)"],
                 ["encoder weights' SHA-256 (checked on loading)", f"`{enc['weights_sha256']}`"]]
    return f"{md_table(['', ''], rows)}\n\n{src.render()}"


def shipped_reference() -> str:
    """Per-class recall of the shipped file on named reference clips (``reference_evaluation``)."""
    d, path = load(SHIPPED)
    r = d["reference_evaluation"]
    src = Sources()
    src.add(path, r, date=r.get("measured_at"), command=r.get("command"), machine=r.get("machine"))
    rows = [[c, r["per_class_n"][c], r["per_class_correct"][c], pct(r["per_class_recall"][c])] for c in r["labels"]]
    rows.append(["**all**", r["n"], sum(r["per_class_correct"].values()),
                 f"UA {pct(r['ua'])}, WA {pct(r['wa'])}, macro-F1 {pct(r['macro_f1'])}"])
    clip = r["clip_set"]
    return (f"{clip['name']}, {clip['n_clips']} clips (sorted names' SHA-256 `{clip['clip_names_sha256']}`; "
            f"heard in training: {'yes' if clip.get('heard_in_training') else 'no'}).\n\n"
            f"{md_table(['class', 'clips', 'right', 'recall %'], rows, 'lrrr')}\n\n{src.render()}")


def default_model() -> str:
    """The default model on the default split and both 6-fold cross-validations."""
    src = Sources()
    split, path = load("default_model_split.json")
    src.add(path, split, date="2026-11-29", machine="shared 2-core CPU (other jobs running)",
            command="SER_DATA_DIR=../shared/data .venv/bin/python train.py")
    rows = [["default split, train 16 / val 4 / test 4 actors (seed 42; refit on the 20)", f"**{pct(split['ua'])}**",
             pct(split["wa"]), pct(split["macro_f1"]), pct(split.get("selected_model", {}).get("ua")), "–"]]
    for folds, label in (("contiguous", "6-fold CV, contiguous actor folds (`make cv`)"),
                         ("emobox", "6-fold CV, EmoBox's actor groups (`make cv-emobox`)")):
        cv = CV(f"whisper_tiny_probe_balanced_loss_{folds}", src)
        rows.append([label, f"**{cv.metric('ua')}**", cv.metric("wa"), cv.metric("macro_f1"), "–", cv.minutes()])
    table = md_table(["protocol", "test UA", "test WA", "test macro-F1", "validation-selected model's test UA",
                      "min / fold"], rows)
    return f"{table}\n\n{src.render()}"


def homebrew_split() -> str:
    """Report 003's homebrew CNN, one run on the default split (``default_experiment.json``)."""
    d, path = load("default_experiment.json")
    src = Sources()
    src.add(path, d)
    row = ["train 16 / val 4 / test 4 actors (960 / 240 / 240 clips)", f"**{pct(d['ua'])} %**", f"{pct(d['wa'])} %",
           f"{pct(d['macro_f1'])} %", f"{pct(d['best_val_ua'])} %", d["epochs"], f"{d['wall_time_s'] / 60:.1f} min"]
    table = md_table(["split (speaker-independent, seed 42)", "test UA", "test WA", "test macro-F1", "best val UA",
                      "epochs", "wall time"], [row])
    recall = ", ".join(f"{c} {100 * v:.0f} %" for c, v in d["per_class_recall"].items())
    return f"{table}\n\nPer-class test recall: {recall}.\n\n{src.render()}"


def homebrew_cv() -> str:
    """The homebrew CNN's ``make cv`` sweep: the ``summary.csv`` it wrote (``cv_default_summary.csv``)."""
    path = RESULTS / "cv_default_summary.csv"
    rows_in = [r for r in csv.DictReader(path.open(encoding="utf-8")) if r["job"].isdigit()]  # not mean/std
    src = Sources()
    src.add(path, {}, date="2026-11-29", machine="2-core CPU, no GPU, shared with other jobs",
            command="SER_DATA_DIR=../shared/data .venv/bin/python train.py -m model=homebrew_cnn data.split=kfold "
                    "'data.fold=range(0,6)' hydra.sweep.dir=<dir> callbacks.progress_bar=null")
    rows = []
    for r in rows_in:
        k = int(r["job"])
        rows.append([f"{k} ({4 * k + 1}–{4 * k + 4})", *(f"{100 * float(r[m]):.1f}" for m in
                                                        ("ua", "wa", "macro_f1", "best_val_ua")), r["epochs"]])
    col = lambda m: [100 * float(r[m]) for r in rows_in]  # noqa: E731
    rows.append(["**mean ± std**", f"**{mean_sd_text(col('ua'))}**", f"**{mean_sd_text(col('wa'))}**",
                 mean_sd_text(col("macro_f1")), mean_sd_text(col("best_val_ua")), ""])
    table = md_table(["test fold (actors)", "test UA", "test WA", "test macro-F1", "best val UA", "epochs"], rows)
    return f"{table}\n\n{src.render()}"


#: The 6-fold table of the speech encoders: (label, results row, fold set), in page order. A label ending in a
#: footnote marker refers to the page's notes. Rows with ``None`` as stem are cited, not measured here.
ENCODER_CV: list[tuple[str, str | None, str]] = [
    ("**Whisper tiny.en frozen, linear probe, class-weighted loss, refit (`model=whisper_tiny`, the default)**",
     "whisper_tiny_probe_balanced_loss", "contiguous"),
    ("same", "whisper_tiny_probe_balanced_loss", "emobox"),
    ("same, unweighted loss (the previous default, `loss.class_weights=null`)", "whisper_tiny_probe_refit",
     "contiguous"),
    ("same", "whisper_tiny_probe_refit", "emobox"),
    ("Whisper tiny.en fine-tuned, top 2 of 4 layers, refit (`model.freeze=top_k optim=onecycle optim.lr=1e-3 "
     "data.batch_size=16 trainer.max_epochs=10 refit=true`) ²", "whisper_tiny_ft_top2_gpu", "contiguous"),
    ("same ²", "whisper_tiny_ft_top2_gpu", "emobox"),
    ("Whisper tiny.en fully fine-tuned, layer-wise lr decay 0.8, refit (`model.freeze=full model.layer_decay=0.8 "
     "optim=onecycle optim.lr=5e-4 data.batch_size=16 trainer.max_epochs=10 refit=true`) ²",
     "whisper_tiny_ft_full_lld_gpu", "contiguous"),
    ("same ²", "whisper_tiny_ft_full_lld_gpu", "emobox"),
    ("BYOL-S frozen, MLP head, refit (`model=byol_s refit=true`)", "byol_s_frozen_refit", "contiguous"),
    ("same", "byol_s_frozen_refit", "emobox"),
    ("BYOL-S frozen, MLP head (`model=byol_s`, no refit)", "byol_s_frozen", "contiguous"),
    ("same", "byol_s_frozen", "emobox"),
    ("BYOL-S fully fine-tuned, encoder lr ×0.1 (`model=byol_s model.freeze=full model.backbone_lr_mult=0.1 "
     "trainer.max_epochs=30`, no refit) ²", "byol_s_ft_gpu", "contiguous"),
    ("same ²", "byol_s_ft_gpu", "emobox"),
    ("EfficientNet-Lite0, ImageNet-pretrained, fine-tuned (`model=efficientnet_lite0 model.input_size=[64,188] "
     "model.pretrained=offline trainer.max_epochs=30`, no refit) ²", "efficientnet_lite0_gpu", "contiguous"),
    ("ensemble: Whisper probe + BYOL-S, weights learned on the validation actors, validation-selected members "
     "(`benchmarks/ensemble_cv.py --combine learned`)", "whisper_byol_s_learned", "contiguous"),
    ("same", "whisper_byol_s_learned", "emobox"),
    ("ensemble: Whisper probe + BYOL-S, mean of probabilities, refitted members (unweighted-loss Whisper)",
     "whisper_byol_s_mean", "contiguous"),
    ("homebrew CNN (`model=homebrew_cnn`, report 003's baseline, no refit; the `make cv` run of the former default) ³",
     "summary:cv_default_summary.csv", "contiguous"),
    ("homebrew CNN, same command through `benchmarks.encoder_cv` (`--name homebrew_cnn_sel -- model=homebrew_cnn`), "
     "present code", "homebrew_cnn_sel", "contiguous"),
    ("same", "homebrew_cnn_sel", "emobox"),
]


def _sweep_summary_row(name: str, src: Sources) -> list[str]:
    """UA, WA, macro-F1 (mean ± sd), minutes (not recorded: ``–``) and mean validation UA of a sweep's
    ``summary.csv`` (a ``make cv`` run)."""
    path = RESULTS / name
    jobs = [r for r in csv.DictReader(path.open(encoding="utf-8")) if r["job"].isdigit()]
    src.add(path, {}, date="2026-11-29", machine="2-core CPU, no GPU, shared with other jobs",
            command="make cv ARGS=model=homebrew_cnn")
    col = lambda m: [100 * float(r[m]) for r in jobs]  # noqa: E731
    return [mean_sd_text(col("ua")), mean_sd_text(col("wa")), mean_sd_text(col("macro_f1")), "–",
            f"{statistics.mean(col('best_val_ua')):.1f}"]


def encoder_cv() -> str:
    """The 6-fold table of the speech encoders, fine-tuning, ensembles and the homebrew CNN."""
    src = Sources()
    rows = []
    for label, stem, folds in ENCODER_CV:
        if stem.startswith("summary:"):
            rows.append([label, folds, *_sweep_summary_row(stem.split(":", 1)[1], src)])
            continue
        cv = CV(f"{stem}_{folds}", src)
        bold = "**" if label.startswith("**") else ""
        rows.append([label, "EmoBox" if folds == "emobox" else folds, f"**{cv.metric('ua')}**" if bold
                     else cv.metric("ua"), cv.metric("wa"), cv.metric("macro_f1"), cv.minutes(), cv.val_ua()])
    rows.append(["*EmoBox, published:* Whisper-large-v3 / WavLM-large / HuBERT-large / HuBERT-base / WavLM-base / "
                 "wav2vec2-base / data2vec-base, frozen (cited, not measured here)", "EmoBox",
                 "75.3 / 72.0 / 70.0 / 65.4 / 61.6 / 54.3 / 51.9", "", "", "", ""])
    table = md_table(["model", "folds", "UA", "WA", "macro-F1", "min / fold ¹", "mean val UA"], rows)
    return f"{table}\n\n{src.render()}"


#: The recipe ablations of the default probe: (recipe, contiguous row, EmoBox row, validation note, kept?).
#: ``validation note``: how the mean validation figure is read (``None``: validation UA; ``"loss"``: the run
#: selected on validation loss, so no UA is shown; ``"smoothed"``: the trailing 3-epoch mean).
RECIPES: list[tuple[str, str | None, str | None, str | None, str]] = [
    ("AdamW one-cycle linear head, dropout 0.3, 30 epochs, best validation epoch (the previous `model=whisper_tiny`)",
     "whisper_tiny_concat_linear", "whisper_tiny_concat_linear", None, "replaced"),
    ("L-BFGS probe, dropout 0.3, best validation epoch", None, "whisper_tiny_probe_norefit_dropout03", None, "no"),
    ("L-BFGS probe, no dropout, best validation epoch", "whisper_tiny_probe_norefit", "whisper_tiny_probe_norefit",
     None, "yes (dropout chosen on validation UA)"),
    ("checkpoint (epoch count) chosen by validation loss instead of UA, no refit",
     "whisper_tiny_probe_select_val_loss", None, "loss", "no (no gain)"),
    ("checkpoint (epoch count) chosen by the trailing 3-epoch mean of validation UA (`callbacks=smoothed_selection`), "
     "class-weighted default + refit", "whisper_tiny_probe_smoothed3", "whisper_tiny_probe_smoothed3", "smoothed",
     "no: validation cannot favour it (its best smoothed value equals the single-epoch best, 85.2 / 80.3, to 0.1); "
     "it chose later epochs (refit 6–11 instead of 4–7); option"),
    ("hidden states 1–4 only (without the stem's output), dropout 0.3, refit", "whisper_tiny_probe_layers_1234", None,
     None, "no: every hidden state has the higher validation UA (83.1)"),
    ("every hidden state, dropout 0.3, refit", "whisper_tiny_probe_layers_all", None, None, "superseded by no dropout"),
    ("+ refit on training + validation actors, L2 weight 1e-2", "whisper_tiny_probe_wd1e-2",
     "whisper_tiny_probe_wd1e-2", None, "refit: yes; L2 weight: see below"),
    ("same, L2 weight 1e-3", "whisper_tiny_probe_wd1e-3", "whisper_tiny_probe_wd1e-3", None, "no"),
    ("same, L2 weight 0.1", "whisper_tiny_probe_refit", "whisper_tiny_probe_refit", None,
     "yes: highest mean validation UA over both fold sets' 12 runs (82.20 vs 82.07 and 82.06)"),
    ("**same + loss weighted by inverse class frequency (`loss.class_weights=balanced`; the default)**",
     "whisper_tiny_probe_balanced_loss", "whisper_tiny_probe_balanced_loss", None,
     "yes: higher validation UA on both fold sets (9 of 12 folds up, none down); second table"),
    ("default + silence trimming (`data.trim_silence=true`: leading/trailing 25 ms frames more than 40 dB below the "
     "loudest cut before the clip is cached)", "whisper_tiny_trim_silence", None, None,
     "no (validation UA lower on 5 of 6 folds)"),
    ("default + test-time crops alone (training on whole clips; each validation/test clip scored by 4 evenly spaced "
     "2.5 s windows, probabilities averaged)", "whisper_tiny_test_crops2.5s_x4", None, None,
     "no: windows the head never saw in training"),
    ("default + crops in training and test (4 fixed 2.5 s windows per clip, embedded once, each a training item; the "
     "same 4 averaged at test)", "whisper_tiny_crops2.5s_train4_test4", None, None,
     "no: validation UA level with the default (84.4 vs 84.6); kept as an option, not measured on EmoBox's folds"),
]


def recipes() -> str:
    """The default probe's recipe ablations, chosen on validation actors."""
    src = Sources()
    rows = []
    for label, contiguous, emobox, note, kept in RECIPES:
        cvs = [CV(f"{stem}_{folds}", src) if stem else None for stem, folds in ((contiguous, "contiguous"),
                                                                               (emobox, "emobox"))]
        bold = "**" if label.startswith("**") else ""
        ua = [f"{bold}{cv.metric('ua')}{bold}" if cv else "–" for cv in cvs]
        if note == "loss":
            val = "(loss)"
        else:
            val = " / ".join(cv.val_ua() if cv else "–" for cv in cvs)
            val = f"(smoothed) {val}" if note == "smoothed" else val
        rows.append([label, *ua, val, kept])
    table = md_table(["recipe", "contiguous UA", "EmoBox UA", "mean val UA (contiguous / EmoBox)", "kept?"], rows)
    return f"{table}\n\n{src.render()}"


#: Per-step training recipes on the two first-order heads and class weights on the probe: (head, recipe, row,
#: EmoBox measured too, kept?).
TRAINING_RECIPES: list[tuple[str, str, str, bool, str]] = [
    ("Whisper, AdamW", "baseline", "whisper_tiny_adamw_head", False, "–"),
    ("Whisper, AdamW", "mixup (`loss.mixup_alpha=0.2`)", "whisper_tiny_adamw_head_mixup02", False, "no"),
    ("Whisper, AdamW", "EMA (`callbacks=ema callbacks.ema.decay=0.99`)", "whisper_tiny_adamw_head_ema099", False, "no"),
    ("Whisper, AdamW", "balanced sampler (`data.sampler=balanced`)", "whisper_tiny_adamw_head_sampler_balanced",
     False, "no"),
    ("Whisper, AdamW", "balanced class weights (`loss.class_weights=balanced`)",
     "whisper_tiny_adamw_head_balanced_loss", False, "option (contiguous only)"),
    ("BYOL-S, MLP", "baseline", "byol_s_head", True, "–"),
    ("BYOL-S, MLP", "mixup (`loss.mixup_alpha=0.2`)", "byol_s_head_mixup02", False, "no"),
    ("BYOL-S, MLP", "EMA (`callbacks=ema callbacks.ema.decay=0.99`)", "byol_s_head_ema099", True,
     "option: higher val on both fold sets (9 of 12 folds up, 1 down), but test UA −3.9 on EmoBox; not made "
     "`model=byol_s`'s recipe"),
    ("BYOL-S, MLP", "balanced sampler (`data.sampler=balanced`)", "byol_s_head_sampler_balanced", False, "no"),
    ("BYOL-S, MLP", "balanced class weights (`loss.class_weights=balanced`)", "byol_s_head_balanced_loss", False,
     "no (no validation gain)"),
    ("Whisper, L-BFGS probe + refit", "baseline (unweighted; the default before this table)",
     "whisper_tiny_probe_refit", True, "–"),
    ("Whisper, L-BFGS probe + refit", "balanced class weights (`loss.class_weights=balanced`)",
     "whisper_tiny_probe_balanced_loss", True,
     "**yes: the default** (higher validation UA on both fold sets, 9 of 12 folds up, none down)"),
]


def training_recipes() -> str:
    """Mixup, EMA, class-balanced sampling and class weights, with the change of mean validation UA."""
    src = Sources()
    rows = []
    base: dict[str, float] = {}
    for head, recipe, stem, emobox, kept in TRAINING_RECIPES:
        c = CV(f"{stem}_contiguous", src)
        e = CV(f"{stem}_emobox", src) if emobox else None
        val = float(c.val_ua())
        if recipe.startswith("baseline"):
            base[head] = val
            delta = ""
        else:
            delta = f" ({val - base[head]:+.1f})".replace("-", "−")
        rows.append([head, recipe, f"`{stem}`", c.val_ua() + delta + (f" ({e.val_ua()})" if e else ""),
                     c.metric("ua") + (f" ({e.metric('ua')})" if e else ""), kept])
    table = md_table(["head", "recipe (settings added)", "row", "mean val UA contiguous (change) (EmoBox)",
                      "test UA contiguous (EmoBox)", "kept?"], rows)
    return f"{table}\n\n{src.render()}"


def speaker_norm() -> str:
    """The transductive per-speaker normalisation protocol (its own table, never beside the plain rows)."""
    src = Sources()
    rows = []
    for folds, label in (("contiguous", "Whisper tiny.en frozen, linear probe, refit "
                                        "(`model=whisper_tiny data.speaker_norm=true`)"), ("emobox", "same")):
        cv = CV(f"whisper_tiny_speaker_norm_{folds}", src)
        rows.append([label, "speaker_norm (transductive)", "EmoBox" if folds == "emobox" else folds,
                     cv.metric("ua"), cv.metric("wa"), cv.metric("macro_f1"), cv.minutes(), cv.val_ua()])
    table = md_table(["model (settings)", "protocol", "folds", "UA", "WA", "macro-F1", "min / fold", "mean val UA"],
                     rows)
    return f"{table}\n\n{src.render()}"


def cv_row(stem: str) -> str:
    """One cross-validation row (for a table of one run named in the text)."""
    src = Sources()
    cv = CV(stem, src)
    table = md_table(["row", "folds", "UA", "WA", "macro-F1", "min / fold", "mean val UA", "extraction s"],
                     [[f"`{cv.data['name']}`", cv.data["folds"], cv.metric("ua"), cv.metric("wa"),
                       cv.metric("macro_f1"), cv.minutes(), cv.val_ua(), f"{cv.data.get('extract_s') or 0:.0f}"]])
    return f"{table}\n\n{src.render()}"


#: The model-zoo table: (results file, model in it, label), in page order.
MODEL_ZOO: list[tuple[str, str, str]] = [
    ("model_zoo_report000_bilstm.json", "report000_bilstm", "report000_bilstm ¹"),
    ("model_zoo.json", "homebrew_cnn", "homebrew_cnn"),
    ("model_zoo.json", "report002_cnn", "report002_cnn"),
    ("model_zoo.json", "report001_parallel_cnn", "report001_parallel_cnn"),
    ("model_zoo.json", "report001_cnn", "report001_cnn"),
    ("model_zoo_report001_cnn_transformer.json", "report001_cnn_transformer", "report001_cnn_transformer ¹"),
    ("model_zoo.json", "attention_fcn", "attention_fcn"),
    ("model_zoo.json", "attention_fcn_2d", "attention_fcn_2d"),
    ("lite0_pretrained.json", "efficientnet_lite0", "efficientnet_lite0, ImageNet-pretrained "
                                                    "(`model.pretrained=offline`), input 64×188"),
    ("lite0_scratch.json", "efficientnet_lite0", "efficientnet_lite0, from scratch, input 64×188"),
]


def model_zoo() -> str:
    """Ten epochs of each network on the default split (``benchmarks/model_zoo.py``)."""
    src = Sources()
    rows = []
    for name, model, label in MODEL_ZOO:
        d, path = load(name)
        cmd = "python -m benchmarks.model_zoo --epochs 10 --models " + " ".join(
            r["model"] for r in d["results"])
        if name.startswith("lite0"):
            cmd = "EPOCHS=10 bash benchmarks/lite0_pretrained.sh"
        src.add(path, d, command=cmd)
        r = next(r for r in d["results"] if r["model"] == model)
        epoch_s = r["train_epoch_s"]
        rows.append([label, f"{r['parameters']:,}", "×".join(map(str, r["input_shape"])),
                     f"{epoch_s:.0f}" if epoch_s >= 100 else f"{epoch_s:.1f}", pct(r["ua"]), pct(r["wa"]),
                     pct(r["macro_f1"])])
    table = md_table(["model", "parameters", "input (C×F×T)", "s / epoch", "test UA", "test WA", "macro-F1"], rows)
    return f"{table}\n\n{src.render()}"


def _input(shape: Sequence[int]) -> str:
    return f"{shape[0]} samples" if len(shape) == 1 else "×".join(map(str, shape))


def _latency_rows(results: list[dict], threads: Sequence[int], clip: str | None = None,
                  order: bool = False) -> list[list[str]]:
    """One row per model: median (p90) ms per backend and thread count, runs, largest |Δp|; with ``order``,
    models by input size (spectrogram sizes, then waveforms), then by PyTorch's one-thread median."""
    models = list(dict.fromkeys(r["model"] for r in results))
    if order:
        def key(m: str) -> tuple:
            mine = [r for r in results if r["model"] == m]
            shape = mine[0]["input_shape"]
            pt = [r["median_ms"] for r in mine if r["backend"] == "pytorch" and r.get("threads") == threads[0]
                  and "median_ms" in r]
            return (len(shape) == 1, shape[-1] * shape[-2] if len(shape) > 1 else 0, min(pt or [0]))
        models.sort(key=key)
    rows = []
    for model in models:
        mine = [r for r in results if r["model"] == model]
        cells = [model, f"{mine[0]['parameters']:,}", clip or _input(mine[0]["input_shape"])]
        for backend in ("pytorch", "onnxruntime"):
            for t in threads:
                hit = [r for r in mine if r["backend"] == backend and r.get("threads") == t and "median_ms" in r]
                cells.append(f"{hit[0]['median_ms']:.1f} ({hit[0]['p90_ms']:.1f})" if hit else "–")
        runs = [str(r["runs"]) for b in ("pytorch", "onnxruntime") for t in threads
                for r in mine if r["backend"] == b and r.get("threads") == t and "runs" in r]
        cells.append(runs[0] if len(set(runs)) == 1 else "/".join(runs))
        diffs = [r["max_abs_diff_vs_pytorch"] for r in mine if "max_abs_diff_vs_pytorch" in r]
        cells.append(f"{max(diffs):.1e}" if diffs else "–")
        rows.append(cells)
    return rows


def latency() -> str:
    """Batch-1 CPU latency of every zoo network, PyTorch vs ONNX Runtime, 1 and 2 threads."""
    d, path = load("latency.json")
    src = Sources()
    src.add(path, d, machine=f"{d['machine']}, load average {d.get('load_avg_1min_start')} → "
                             f"{d.get('load_avg_1min_end')}")
    head = ["model", "parameters", "input", "PyTorch 1 thr", "PyTorch 2 thr", "ONNX Runtime 1 thr",
            "ONNX Runtime 2 thr", "runs", r"max \|Δp\|"]
    return f"{md_table(head, _latency_rows(d['results'], d['threads'], order=True))}\n\n{src.render()}"


def latency_encoders() -> str:
    """The speech-encoder models' latency, 3 s and 30 s clips, one intra-op thread."""
    src = Sources()
    rows = []
    for name, label in (("latency_encoders.json", None), ("latency_whisper_base.json", "¹"),
                        ("latency_encoders_30s.json", None)):
        d, path = load(name)
        src.add(path, d, machine=f"{d['machine']}, load average {d.get('load_avg_1min_start')} → "
                                 f"{d.get('load_avg_1min_end')}" + (f" ({d['note']})" if d.get("note") else ""))
        clip = re.search(r"(\d+(?:\.\d+)?) s at", d["clip"]).group(1) + " s"
        results = [r for r in d["results"] if not (name == "latency_whisper_base.json" and r["model"] != "whisper_base")]
        for r in _latency_rows(results, [1], clip):
            if r[0] == "homebrew_cnn":
                r[0] = "homebrew_cnn (yardstick)"
            if r[0] == "whisper_tiny" and clip == "3 s":
                r[0] = "whisper_tiny (`make train`'s default)"
            if r[0] == "whisper_base" and clip == "3 s":
                r[0] = "whisper_base (the shipped default's network)"
            if label:
                r[0] += f" {label}"
            rows.append(r)
    head = ["model", "parameters", "clip", "PyTorch 1 thr", "ONNX Runtime 1 thr", "runs (PyTorch/ONNX)",
            r"max \|Δp\|"]
    return f"{md_table(head, rows)}\n\n{src.render()}"


def eval_example() -> str:
    """``eval.py calibrate=true`` on fold 0 of the homebrew CNN's cross-validation."""
    d, path = load("eval_example_fold0.json")
    src = Sources()
    src.add(path, d, machine="2-core CPU, no GPU")
    c, cal = d["confidence"], d["calibration"]
    row = [f"{pct(d['ua'])} %", f"{pct(d['wa'])} %", f"{pct(d['macro_f1'])} %", f"{pct(d['weighted_f1'])} %",
           f"{pct(c['mean_confidence_correct'])} % / {pct(c['mean_confidence_wrong'])} %", f"{c['ece']:.3f}",
           f"{cal['temperature']:.2f}", f"{cal['ece_after']:.3f}", f"{cal['nll_before']:.3f} → {cal['nll_after']:.3f}"]
    table = md_table(["UA", "WA", "macro-F1", "weighted-F1", "mean confidence right / wrong", "ECE", "T",
                      "ECE after T", "NLL before → after"], [row])
    recall = ", ".join(f"{k} {100 * v:.0f} %" for k, v in d["per_class_recall"].items())
    pairs = ", ".join(f"{p['true']} → {p['predicted']} ({p['count']})" for p in d["top_confused"])
    return (f"{table}\n\nPer-class recall: {recall}. Most confused pairs (true → predicted, clips): {pairs}.\n\n"
            f"{src.render()}")


def xcorpus() -> str:
    """The cross-corpus development protocol: ``xcorpus_table.md`` (which ``xcorpus_cv.py`` writes from every
    ``xcorpus_*.json``) and each recipe's cells."""
    path = RESULTS / "xcorpus_table.md"
    src = Sources()
    src.add(path, {}, date="rewritten by every `benchmarks/xcorpus_cv.py` run", machine="see the JSON files")
    parts = [path.read_text(encoding="utf-8").strip()]
    for p in sorted(RESULTS.glob("xcorpus_*.json")):
        d = json.loads(p.read_text(encoding="utf-8"))
        src.add(p, d)
        rows = [[c["cell"].replace(">", " → "), c["n"], len(c["classes"]), f"{c['restricted']['ua']:.1f}",
                 f"{c['restricted']['wa']:.1f}", f"{c['restricted']['macro_f1']:.1f}", f"{c['full']['ua']:.1f}",
                 f"{100 * c['best_val_ua']:.1f}" if c.get("best_val_ua") is not None else "–", c.get("epochs", "–"),
                 f"{c['wall_s']:.0f}" if c.get("wall_s") is not None else "–"] for c in d["cells"]]
        extra = f"; in-corpus cells also train on {', '.join(d['incorpus_extra'])}" if d.get("incorpus_extra") else ""
        parts.append(f"**`{d['name']}`** per cell ({d['date']}; overrides `{' '.join(d.get('overrides', []))}`{extra}):\n\n"
                     + md_table(["cell", "clips", "classes", "UA %", "WA %", "macro-F1 %", "UA % full output",
                                 "val UA", "epochs", "wall s"], rows, "lrrrrrrrrr"))
    return "\n\n".join(parts) + f"\n\n{src.render()}"


#: The recipes of the robustness summary (README, docs/cross-corpus.md): the former default, the same trained and
#: tested with each speaker's own statistics (a transductive protocol), the multilingual encoder, and the shipped
#: model's recipe (multi-corpus folds).
ROBUSTNESS_RECIPES = ("whisper_tiny_probe", "whisper_tiny_speaker_norm", "whisper_base_probe", "whisper_base_speaker_norm",
                      "whisper_base_multicorpus")
#: The cells in the summary's column order, with their headers.
ROBUSTNESS_CELLS = (("ravdess>tess", "RAVDESS → TESS"), ("tess>ravdess", "TESS → RAVDESS"),
                    ("ravdess+tess>turev", "RAVDESS + TESS → TurEV-DB"), ("tess+turev>ravdess", "TESS + TurEV-DB → RAVDESS"),
                    ("ravdess+turev>tess", "RAVDESS + TurEV-DB → TESS"), ("ravdess_6fold", "RAVDESS 6-fold"))
#: The adapted rows shown, with their names (all transductive: they read the unlabelled test clips).
ROBUSTNESS_ADAPTED = (("set", "adapted to the test set's statistics (transductive)"),
                      ("speaker", "adapted to each test speaker's statistics (transductive)"))


def robustness() -> str:
    """The development protocol's summary: a few recipes, plain and adapted rows (UA % on the target's classes)."""
    src = Sources()
    rows = []
    for name in ROBUSTNESS_RECIPES:
        path = RESULTS / f"xcorpus_{name}.json"
        if not path.is_file():
            continue
        d = json.loads(path.read_text(encoding="utf-8"))
        src.add(path, d, date=d.get("date"), command=d.get("command"))
        summ = d["summary"]
        plain = []
        for cell, _ in ROBUSTNESS_CELLS:
            c = summ.get(cell)
            if c is None:
                plain.append("–")
            elif cell == "ravdess_6fold":
                plain.append(f"{c['ua']:.1f} ± {c['sd']:.1f}")
            else:
                plain.append(f"{c['ua']:.1f}")
        transductive = d.get("protocol", ["plain"]) != ["plain"]
        rows.append([f"`{name}`, {'every speaker standardised with its own statistics (transductive)' if transductive else 'plain'}",
                     *plain, f"{d.get('minutes', '–')}"])
        for key, label in ROBUSTNESS_ADAPTED:
            if not any(key in summ[c].get("adapted", {}) for c, _ in ROBUSTNESS_CELLS if c in summ):
                continue
            rows.append([f"`{name}`, {label}",
                         *[f"{summ[c]['adapted'][key]:.1f}" if c in summ and key in summ[c].get("adapted", {}) else "–"
                           for c, _ in ROBUSTNESS_CELLS], ""])
    table = md_table(["recipe, rows", *[h for _, h in ROBUSTNESS_CELLS], "minutes (2 cores)"], rows,
                     "l" + "r" * (len(ROBUSTNESS_CELLS) + 1))
    return (f"{table}\n\nUA % over the target's own classes (the output restricted to them); RAVDESS 6-fold: mean ± sd "
            "over the contiguous actor folds (adapted rows: mean). Plain rows use nothing from the test clips; "
            "adapted rows standardise the frozen features with the unlabelled test clips' statistics.\n\n"
            f"{src.render()}")


def encoder_extraction() -> str:
    """One-time frozen-feature extraction cost of the Whisper encoders."""
    d, path = load("encoder_extraction.json")
    src = Sources()
    rows = []
    for name, r in d["runs"].items():
        src.add(path, r, command=r.get("command"))
        rows.append([f"`{name}`", f"{r['encoder_parameters']:,}", r["clips"], f"{r['cpu_s_per_clip']:.3f}",
                     f"{r['s_per_clip']:.3f}", f"{r['audio_s_per_s']:.1f}", f"{r['peak_rss_mb']:.0f}",
                     f"{r['peak_rss_mb_before_model']:.0f}", f"{r['loadavg_before']} / {r['loadavg_after']}"])
    table = md_table(["model", "encoder parameters", "clips", "CPU s / clip", "wall s / clip", "audio s per s",
                      "peak RSS MiB", "of which before the model", "load average before / after"], rows)
    return f"{table}\n\n{src.render()}"


def views_extraction() -> str:
    """Cost of making and embedding the augmented views (``augment=robust``)."""
    d, path = load("views_extraction.json")
    src = Sources()
    src.add(path, d)
    r = d["result"]
    by_k = md_table(["K", "views extraction (s)", "(min)", "all views fresh"],
                    [[k["K"], f"{k['views_extract_s']:.1f}", f"{k['views_extract_min']:.2f}", k["all_fresh"]]
                     for k in r["by_k"]], "rrrl")
    stages = md_table(["stage", "p in the chain", "s per clip (p = 1)"],
                      [[s["stage"], s["p"], f"{s['s_per_clip']:.4f}"] for s in r["stage_costs"]
                       if s.get("p") is not None] +
                      [[s["stage"], "", f"{s['s_per_clip']:.3f}"] for s in r["stage_costs"] if s.get("p") is None],
                      "lrr")
    head = (f"`{r['model']}` on {', '.join(r['corpora'])}: {r['view_clips']} clips get views; chain "
            f"`{r['chain']}`, views seed {r['views_seed']}; load average {r['load_before']} before / "
            f"{r['load_after']} after (shared cores).")
    return f"{head}\n\n{by_k}\n\n{stages}\n\n{src.render()}"


def mutants() -> str:
    """The sampled mutation-testing run, before and after the tests of issue 22."""
    src = Sources()
    rows = []
    for name, label in (("mutants_before_issue22.json", "before (tests at 0a8786c)"), ("mutants.json", "now")):
        d, path = load(name)
        src.add(path, d)
        t = d["total"]
        run = d.get("sampled", sum(t.get(k, 0) for k in ("killed", "survived", "no tests")))
        rows.append([label, run, t.get("killed", 0), t.get("survived", 0), t.get("no tests", 0),
                     f"{d['score']:.1f} %" if "score" in d else "–"])
    table = md_table(["tests", "mutants run", "killed", "survived", "not reached (no test runs the line)", "score"],
                     rows, "lrrrrr")
    return f"{table}\n\n{src.render()}"


def pipeline() -> str:
    """Input pipeline throughput, reference style vs ser_lightning, by DataLoader workers."""
    d, path = load("pipeline.json")
    before, before_path = load("pipeline_workers0.json")
    src = Sources()
    src.add(path, d)
    src.add(before_path, before)
    by = d["by_workers"]
    head = ["input pipeline, samples/s delivered to the model per epoch", *(f"{w['workers']} worker"
                                                                             f"{'' if w['workers'] == 1 else 's'}"
                                                                             for w in by)]
    rows = [["(a) reference style: `librosa.load` + resample + mel spectrogram per item, every epoch",
             *(f"{w['reference_a']['samples_per_s']:.0f}" for w in by)],
            ["(b) ser_lightning: float16 memmap cache + augmentation + batched log-mel + SpecAugment",
             *(f"{w['ser_lightning_b']['samples_per_s']:.0f}" for w in by)],
            ["**ratio b/a**", *(f"**{w['ratio_b_over_a']:.1f}×**" for w in by)],
            [f"(b) before the changes below (`{_rel(before_path)}`)",
             *(f"{before['ser_lightning_b']['samples_per_s']:.0f}" if w["workers"] == before["settings"]["workers"]
               else "–" for w in by)]]
    stages = d["stage_ms_per_batch"], d["stage_ms_per_batch_1thread"]
    names = [("loader", "loader"), ("wave_augment", "waveform augmentation"), ("frontend", "log-mel frontend"),
             ("frontend_torchaudio", "torchaudio's `MelSpectrogram` (same features)"),
             ("spec_augment", "SpecAugment")]
    stage_table = md_table(["stage, ms per 32-clip batch", "2 threads", "1 thread"],
                           [[label, f"{stages[0][k]:.1f}", f"{stages[1][k]:.1f}"] for k, label in names], "lrr")
    scaling = md_table(["workers", "batch", "samples/s (median of rounds)"],
                       [[s["workers"], s["batch_size"], f"{s['samples_per_s']:.0f}"] for s in d["scaling"]], "rrr")
    best = d["best_b_over_best_a"]
    text = (f"Best (b) over best (a): **{best['ratio_b_over_a']:.1f}×** ({best['b_samples_per_s']:.0f} vs "
            f"{best['a_samples_per_s']:.0f} samples/s, both at {best['a_workers']} workers). Resampling a 48 kHz "
            f"original costs {d['resample_48k_to_16k_ms_per_clip']:.1f} ms per clip in (a) "
            f"(estimate with 48 kHz originals: {d['ratio_b_over_a_48k_estimate']:.1f}× at "
            f"{d['headline_workers']} workers). The batched log-mel frontend alone: "
            f"{d['frontend_only_samples_per_s']:.0f} samples/s; the host's loader alone: "
            f"{d['host_only_loader_samples_per_s_estimate']:.0f} samples/s (estimate).")
    return f"{md_table(head, rows)}\n\n{text}\n\n{stage_table}\n\n{scaling}\n\n{src.render()}"


def cache_build() -> str:
    """Decoding RAVDESS into the memory-mapped cache, reopening it, and how the build scales."""
    d, path = load("cache_build.json")
    src = Sources()
    src.add(path, d)
    cold, reopen = d["cold_build"], d["reopen"]
    scale = d["scaling"]
    rows = [[f"cold decode + cache of all RAVDESS ({d['decode_workers']} decode threads, files in the page cache)",
             f"{cold['seconds']:.1f} s ({cold['files_per_s']:.0f} files/s)"],
            [f"size ({cold['dtype']})", f"{cold['cache_bytes'] / 1e6:.0f} MB"],
            ["reopen (new data module: scan + key + open + SHA-256 check)",
             f"{reopen['datamodule_prepare_data_s']:.2f} s ({reopen['build_or_load_no_checksum_s']:.3f} s without "
             "the checksum)"],
            ["build time for RAVDESS " + " / ".join(f"×{s['repeat']}" for s in scale) + " ("
             + " / ".join(str(s["files"]) for s in scale) + " files)",
             " / ".join(f"{s['seconds']:.1f}" for s in scale) + " s"]]
    return f"{md_table(['cache', ''], rows)}\n\n{src.render()}"


def train_throughput() -> str:
    """CPU training throughput and peak memory (``benchmarks/train_throughput.py``)."""
    d, path = load("train_throughput.json")
    src = Sources()
    src.add(path, d)
    s = d["settings"]
    rows = [[f"{r['config']} ({'×'.join(map(str, r['input_shape']))})", f"{r['samples_per_s']:.1f} "
             f"({r['step_samples_per_s']:.1f})", f"{r['peak_rss_mb'] / 1000:.2f} GB"] for r in d["results"]]
    head = [f"CPU training, batch {s['batch_size']}, fp{s['precision']}, {s['workers']} workers",
            "samples/s (model step alone)", "peak RSS"]
    return f"{md_table(head, rows)}\n\n{src.render()}"


TABLES: dict[str, Callable[[], str]] = {f.__name__: f for f in (
    shipped_folds, shipped_cross, shipped_file, shipped_reference, default_model, homebrew_split, homebrew_cv, encoder_cv,
    recipes, training_recipes, speaker_norm, model_zoo, latency, latency_encoders, eval_example, xcorpus, robustness,
    encoder_extraction, views_extraction, mutants, pipeline, cache_build, train_throughput)}


# ---------------------------------------------------------------------------------------------------------------
# Rewriting the pages


def render(name: str) -> str:
    """The generated text of one marked block (the table and its sources).

    Raises:
        KeyError: ``name`` is not a table of :data:`TABLES` (``cv:<row>_<folds>`` is one row of a CV file).
    """
    if name.startswith("cv-"):
        return cv_row(name[3:])
    if name not in TABLES:
        raise KeyError(f"unknown table {name!r}; known: {', '.join(TABLES)} (or cv-<row>_<folds>)")
    return TABLES[name]()


def rewrite(text: str, where: str = "") -> str:
    """``text`` with every marked block regenerated.

    Raises:
        ValueError: a block names an unknown table or a results file is missing (the message names the page).
    """
    def sub(m: re.Match) -> str:
        try:
            body = render(m.group("name"))
        except (KeyError, FileNotFoundError) as err:
            raise ValueError(f"{where}: table {m.group('name')}: {err.args[0]}") from None
        return f"{m.group(1)}{body}\n{m.group(4)}"

    return BLOCK.sub(sub, text)


def pages(docs: Path = DOCS) -> list[Path]:
    """The Markdown pages under ``docs``, and the README (the front page) when ``docs`` is the project's."""
    found = sorted(docs.rglob("*.md"))
    readme = docs.parent / "README.md"
    return found + [readme] if docs == DOCS and readme.is_file() else found


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or ``--check``) the generated tables of ``docs/``; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="rewrite nothing; exit 1 if a page is out of date")
    ap.add_argument("--show", metavar="TABLE", help="print one table and exit")
    ap.add_argument("--docs", type=Path, default=DOCS)
    a = ap.parse_args(argv)
    if a.show:
        print(render(a.show))
        return 0
    stale, blocks = [], 0
    for page in pages(a.docs):
        text = page.read_text(encoding="utf-8")
        blocks += len(BLOCK.findall(text))
        new = rewrite(text, str(page.relative_to(a.docs.parent) if page.is_relative_to(a.docs.parent) else page))
        if new != text:
            stale.append(page)
            if not a.check:
                page.write_text(new, encoding="utf-8")
    verb = "out of date" if a.check else "rewritten"
    print(f"{blocks} generated tables in {len(pages(a.docs))} pages; {len(stale)} {verb}"
          + (": " + ", ".join(p.name for p in stale) if stale else ""))
    return 1 if a.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
