"""Files a train or eval run leaves behind: ``metrics.json``, the confusion-matrix PNG, the
classification report, reliability diagram and ``report.md`` (calibration maths:
:mod:`ser_lightning.evaluation.calibration`)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def collect_metrics(logged: dict[str, Any], results: dict[str, Any], split: str) -> dict[str, Any]:
    """Merge ``trainer.test`` output and the module's test results into one record.

    Args:
        logged: One dict returned by ``trainer.test`` (keys ``test/ua``, ``test/wa``, ...).
        results: ``SERClassifier.test_results`` (per-class recall, confusion matrix, labels).
        split: Split that was evaluated.

    Returns:
        ``{"split", "ua", "wa", "macro_f1", "loss", "per_class_recall", "confusion_matrix", "labels", "n"}``.
    """
    cm = results["confusion_matrix"]
    return {
        "split": split,
        "ua": float(logged["test/ua"]),
        "wa": float(logged["test/wa"]),
        "macro_f1": float(logged["test/f1"]),
        "loss": float(logged["test/loss"]),
        "n": int(np.asarray(cm).sum()),
        "per_class_recall": results["per_class_recall"],
        "confusion_matrix": cm,
        "labels": results["labels"],
    }


def write_predictions(path: str | Path, utterances: Sequence[Any], class_names: Sequence[str], logits: Any,
                      targets: Any) -> Path:
    """Write one row per clip: ``path, corpus, speaker, label, predicted, p_<class>...`` (probabilities).

    Args:
        path: The CSV file to write (e.g. ``<run>/test_predictions.csv``).
        utterances: The scored clips, in the order of ``logits`` (their ``path``, ``corpus``, ``speaker``).
        class_names: The model's classes, in index order.
        logits: ``(n, n_classes)`` logits (softmax gives the written probabilities).
        targets: ``(n,)`` true class indices.

    Returns:
        ``path``.

    Raises:
        ValueError: the numbers of clips, logits and targets differ.
    """
    logits = np.asarray(logits, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    if not (len(utterances) == len(logits) == len(targets)):
        raise ValueError(f"predictions: {len(utterances)} clips, {len(logits)} logit rows, {len(targets)} targets")
    z = logits - logits.max(axis=1, keepdims=True) if len(logits) else logits
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True) if len(logits) else logits
    path = Path(path)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "corpus", "speaker", "label", "predicted", *(f"p_{c}" for c in class_names)])
        for u, y, p in zip(utterances, targets, probs):
            w.writerow([u.path, u.corpus, u.speaker, class_names[y], class_names[int(p.argmax())],
                        *(f"{v:.6g}" for v in p)])
    return path


def plot_confusion(cm: Sequence[Sequence[int]], labels: Sequence[str], path: str | Path, title: str = "") -> None:
    """Save a row-normalised confusion matrix (counts annotated) as PNG.

    Args:
        cm: Counts ``(n_classes, n_classes)``, rows = true class, columns = predicted class.
        labels: Class names.
        path: Output PNG path.
        title: Figure title.
    """
    cm = np.asarray(cm, dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * n, 0.8 + 0.7 * n))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="recall")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_metrics(metrics: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``metrics.json`` and ``confusion_matrix.png`` into ``out_dir``.

    Returns:
        Path of ``metrics.json``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2))
    plot_confusion(metrics["confusion_matrix"], metrics["labels"], out_dir / "confusion_matrix.png",
                   title=f"{metrics['split']}: UA {metrics['ua']:.3f}  WA {metrics['wa']:.3f}")
    return path


def classification_report(probs: Any, targets: Any, labels: Sequence[str]) -> dict[str, Any]:
    """UA, WA, macro-/weighted-F1, per-class precision/recall/F1/support and the confusion matrix.

    Averages (UA = mean recall, macro-F1) run over the classes present in the data (support > 0),
    so that a class the model can output but the evaluated corpus lacks (cross-corpus
    evaluation) does not count as a recall of 0; predictions of such a class still count as
    errors (they lower WA and the true class's recall). With every class present, UA and
    macro-F1 equal torchmetrics' ``average="macro"`` values logged during training.

    Args:
        probs: Class probabilities (or logits) ``(n, n_classes)``.
        targets: True class indices ``(n,)``.
        labels: Class names, ``n_classes`` of them.

    Returns:
        ``{"ua", "wa", "macro_f1", "weighted_f1", "n", "per_class": {class: {"precision",
        "recall", "f1", "support"}}, "per_class_recall", "confusion_matrix" (counts, rows =
        true), "confusion_matrix_normalized" (rows sum to 1, or 0 for support-0 rows),
        "absent_classes"}``.

    Raises:
        ValueError: shapes that disagree with ``labels``, or no samples.
    """
    import torch
    from torchmetrics.functional.classification import (
        multiclass_confusion_matrix,
        multiclass_f1_score,
        multiclass_precision,
        multiclass_recall,
    )

    probs, targets = torch.as_tensor(probs, dtype=torch.float32), torch.as_tensor(targets, dtype=torch.long)
    k = len(labels)
    if probs.ndim != 2 or probs.shape[1] != k or len(targets) != len(probs) or len(probs) == 0:
        raise ValueError(f"probabilities {tuple(probs.shape)} and targets {tuple(targets.shape)} do not match "
                         f"{k} labels (or are empty)")
    kw = {"num_classes": k, "average": "none"}
    precision = multiclass_precision(probs, targets, **kw).numpy()
    recall = multiclass_recall(probs, targets, **kw).numpy()
    f1 = multiclass_f1_score(probs, targets, **kw).numpy()
    cm = multiclass_confusion_matrix(probs, targets, num_classes=k).numpy().astype(np.int64)
    support = cm.sum(axis=1)
    present = support > 0
    return {
        "ua": float(recall[present].mean()),
        "wa": float(np.trace(cm) / cm.sum()),
        "macro_f1": float(f1[present].mean()),
        "weighted_f1": float((f1 * support).sum() / support.sum()),
        "n": int(cm.sum()),
        "per_class": {c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                          "support": int(support[i])} for i, c in enumerate(labels)},
        "per_class_recall": {c: float(recall[i]) for i, c in enumerate(labels)},
        "confusion_matrix": cm.tolist(),
        "confusion_matrix_normalized": (cm / np.maximum(support[:, None], 1)).tolist(),
        "absent_classes": [c for c, p in zip(labels, present) if not p],
    }


def top_confused_pairs(cm: Sequence[Sequence[int]], labels: Sequence[str], k: int = 5) -> list[dict[str, Any]]:
    """The ``k`` largest off-diagonal cells of a confusion matrix.

    Args:
        cm: Counts ``(n_classes, n_classes)``, rows = true class, columns = predicted class.
        labels: Class names.
        k: How many pairs (fewer when fewer cells are non-zero).

    Returns:
        ``[{"true", "predicted", "count", "rate"}]``, largest count first (ties: larger
        ``rate`` = share of the true class's clips, then label order); zero cells are left out.
    """
    cm = np.asarray(cm, dtype=np.int64)
    support = cm.sum(axis=1)
    pairs = [
        {"true": labels[i], "predicted": labels[j], "count": int(cm[i, j]), "rate": float(cm[i, j] / support[i])}
        for i in range(len(labels)) for j in range(len(labels)) if i != j and cm[i, j] > 0
    ]
    pairs.sort(key=lambda p: (-p["count"], -p["rate"]))
    return pairs[:k]


def plot_reliability(curves: dict[str, Sequence[dict[str, float]]], path: str | Path, title: str = "") -> None:
    """Save a reliability diagram: accuracy vs mean confidence per bin, one line per curve.

    Args:
        curves: Name (e.g. ``"uncalibrated (ECE 0.12)"``) → :func:`reliability_bins` output.
        path: Output PNG path.
        title: Figure title.
    """
    fig, (ax, hx) = plt.subplots(2, 1, figsize=(4.8, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="perfect calibration")
    for name, bins in curves.items():
        used = [b for b in bins if b["count"] > 0]
        ax.plot([b["confidence"] for b in used], [b["accuracy"] for b in used], "o-", ms=4, label=name)
    first = next(iter(curves.values()))
    width = first[0]["upper"] - first[0]["lower"]
    for name, bins in curves.items():
        hx.bar([b["lower"] + width / 2 for b in bins], [b["count"] for b in bins], width=width * 0.9,
               alpha=0.5, label=name)
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy")
    hx.set(xlabel="confidence (max probability)", ylabel="clips")
    ax.legend(fontsize=7, loc="upper left")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_table_csv(path: str | Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    """Write one CSV table (header row + rows) and return its path."""
    import csv

    path = Path(path)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_confusion_csvs(cm: Sequence[Sequence[int]], labels: Sequence[str], out_dir: str | Path) -> list[Path]:
    """Write ``confusion_matrix.csv`` (counts) and ``confusion_matrix_normalized.csv`` (rows / support).

    Rows are true classes (first column ``true``), columns are predicted classes.

    Returns:
        The two paths.
    """
    cm = np.asarray(cm, dtype=np.int64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    out_dir = Path(out_dir)
    header = ["true \\ predicted", *labels]
    return [
        write_table_csv(out_dir / "confusion_matrix.csv", header, [[c, *map(int, r)] for c, r in zip(labels, cm)]),
        write_table_csv(out_dir / "confusion_matrix_normalized.csv", header,
                        [[c, *(f"{v:.4f}" for v in r)] for c, r in zip(labels, norm)]),
    ]


VIEW_COLUMNS = ("output", "output_name", "adaptation", "transductive", "n", "ua", "wa", "macro_f1", "classes",
                "excluded", "note")


def write_views_csv(views: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """One row per output view (:func:`ser_lightning.evaluation.views.output_views`): :data:`VIEW_COLUMNS`."""
    return write_table_csv(path, VIEW_COLUMNS,
                           [[" ".join(v[c]) if c == "classes" else ("" if v.get(c) is None else v.get(c, ""))
                             for c in VIEW_COLUMNS] for v in views])


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def write_report(metrics: dict[str, Any], out_dir: str | Path) -> Path:
    """Write the eval report: ``report.md`` plus the CSV tables and figures it links.

    Files: ``confusion_matrix.png`` (colour = row-normalised, numbers = counts),
    ``confusion_matrix.csv`` / ``confusion_matrix_normalized.csv``, ``per_class.csv``,
    ``top_confused.csv``, ``reliability.png`` (when ``metrics["confidence"]`` holds reliability
    bins) and ``report.md`` tying them together.

    Args:
        metrics: The eval record (``metrics.json`` content): at least ``ua``, ``wa``,
            ``macro_f1``, ``weighted_f1``, ``n``, ``labels``, ``per_class``,
            ``confusion_matrix``, ``top_confused``, ``confidence``; optional ``calibration``,
            ``unscorable``, ``checkpoint``/``members``, ``data``.
        out_dir: Output directory.

    Returns:
        Path of ``report.md``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels, cm = metrics["labels"], metrics["confusion_matrix"]
    plot_confusion(cm, labels, out / "confusion_matrix.png",
                   title=f"{metrics['split']}: UA {metrics['ua']:.3f}  WA {metrics['wa']:.3f}")
    write_confusion_csvs(cm, labels, out)
    pc = metrics["per_class"]
    write_table_csv(out / "per_class.csv", ["class", "precision", "recall", "f1", "support"],
                    [[c, f"{v['precision']:.4f}", f"{v['recall']:.4f}", f"{v['f1']:.4f}", v["support"]]
                     for c, v in pc.items()])
    top = metrics.get("top_confused", [])
    write_table_csv(out / "top_confused.csv", ["true", "predicted", "count", "rate"],
                    [[p["true"], p["predicted"], p["count"], f"{p['rate']:.4f}"] for p in top])
    conf = metrics["confidence"]
    cal = metrics.get("calibration")
    curves = {f"uncalibrated (ECE {conf['ece']:.3f})": conf["reliability"]}
    if cal:
        curves[f"T = {cal['temperature']:.2f} (ECE {cal['ece_after']:.3f})"] = cal["reliability_after"]
    plot_reliability(curves, out / "reliability.png", title=f"{metrics['split']}: reliability, {conf['ece_bins']} bins")

    data = metrics.get("data", {})
    model = metrics.get("members") or [metrics.get("checkpoint", "?")]
    md = [f"# Evaluation report: {metrics['split']} split", ""]
    md += [f"- model: {', '.join(f'`{m}`' for m in model)}" + (f" (ensemble, {metrics['combine']})" if metrics.get("members") else ""),
           f"- data: corpora `{data.get('corpora', '?')}`, split `{metrics['split']}`, label set "
           f"`{data.get('label_set', '?')}` (the model's; corpus labels mapped through the shared vocabulary)",
           f"- clips scored: {metrics['n']}" + (f"; unscorable (true emotion not among the model's classes): "
                                                 f"{metrics['unscorable']['n']}" if metrics.get("unscorable") else ""),
           *([f"- protocol: {metrics['protocol']}"] if metrics.get("protocol") else []),
           "", "## Headline", "",
           _md_table(["UA (%)", "WA (%)", "macro-F1 (%)", "weighted-F1 (%)", "n"],
                     [[_pct(metrics["ua"]), _pct(metrics["wa"]), _pct(metrics["macro_f1"]),
                       _pct(metrics["weighted_f1"]), metrics["n"]]]),
           "", "UA = mean per-class recall, WA = accuracy; UA and macro-F1 average over the classes present in "
           "the data (support > 0).", "",
           "## Per class ([per_class.csv](per_class.csv))", "",
           _md_table(["class", "precision (%)", "recall (%)", "F1 (%)", "support"],
                     [[c, _pct(v["precision"]), _pct(v["recall"]), _pct(v["f1"]), v["support"]] for c, v in pc.items()])]
    if metrics.get("absent_classes"):
        md += ["", f"Classes the model outputs but the data lacks (support 0): {', '.join(metrics['absent_classes'])}."]
    if metrics.get("views"):
        md += ["", "## Output views ([views.csv](views.csv))", "",
               "The headline and the tables around it score the full output, plain. Below, the same clips with the "
               "output restricted to a class subset (probabilities renormalised, arg-max over those classes) and, "
               "where asked for, adapted without labels. Rows marked *transductive* use the other scored "
               "clips (their feature statistics or their predicted class shares) and are not comparable with plain rows.", "",
               _md_table(["output", "adaptation", "n", "UA (%)", "WA (%)", "macro-F1 (%)", "note"],
                         [[v["output_name"], v["adaptation"], v["n"], _pct(v["ua"]), _pct(v["wa"]), _pct(v["macro_f1"]),
                           v.get("note", "")] for v in metrics["views"]])]
        for note in (metrics.get("adaptation") or {}).get("notes", []):
            md += ["", f"Note: {note}"]
        write_views_csv(metrics["views"], out / "views.csv")
    md += ["", "## Confusion matrix", "",
           "![confusion matrix](confusion_matrix.png)", "",
           "Counts: [confusion_matrix.csv](confusion_matrix.csv); row-normalised: "
           "[confusion_matrix_normalized.csv](confusion_matrix_normalized.csv) (rows = true class).", "",
           "## Top confused pairs ([top_confused.csv](top_confused.csv))", ""]
    md += [_md_table(["true", "predicted as", "clips", "% of true class"],
                     [[p["true"], p["predicted"], p["count"], _pct(p["rate"])] for p in top]) if top else "No confusions."]
    md += ["", "## Confidence and calibration", "",
           _md_table(["", "clips", "mean max-probability"],
                     [["right", conf["n_correct"], _pct(conf["mean_confidence_correct"])],
                      ["wrong", conf["n_wrong"], _pct(conf["mean_confidence_wrong"])]]), "",
           f"Expected calibration error (top label, {conf['ece_bins']} equal-width bins, L1): "
           f"**{conf['ece']:.4f}**.", "", "![reliability diagram](reliability.png)"]
    if cal:
        md += ["", f"Temperature scaling (T fitted by L-BFGS on the NLL of {cal['fitted_on']}, "
                   f"{cal['n_fit']} clips): **T = {cal['temperature']:.3f}**.", "",
               _md_table(["", "ECE", "NLL"],
                         [["before", f"{cal['ece_before']:.4f}", f"{cal['nll_before']:.4f}"],
                          ["after", f"{cal['ece_after']:.4f}", f"{cal['nll_after']:.4f}"]]), "",
               "Temperature scaling changes confidence only; predictions (UA, WA, F1) are unchanged."]
    uns = metrics.get("unscorable")
    md += ["", "## Unscorable clips", ""]
    if uns and uns["n"]:
        md += [f"{uns['n']} clip(s) of {uns['scope']} have a true emotion the model cannot output; they are "
               "not in the scores above (listed in [unscorable.csv](unscorable.csv)).", "",
               _md_table(["emotion", "clips"], sorted(uns["per_emotion"].items()))]
    else:
        md += ["None: every clip's emotion is one of the model's classes."]
    path = out / "report.md"
    path.write_text("\n".join(md) + "\n")
    return path
