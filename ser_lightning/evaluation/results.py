"""Results a person can look at: training curves of a run, the summary table and per-fold chart
of a sweep, and one table across runs and sweeps.

* :func:`plot_curves` — ``curves.png`` of a run (loss and UA per epoch, train and validation),
  drawn from the run's CSV log (``csv/metrics.csv``); ``train.py`` writes it after ``fit``.
* :func:`write_summary` — ``summary.csv``, ``summary.md`` and ``per_fold.png`` of a Hydra
  multirun (per-job test metrics, their mean ± sample standard deviation, and one bar group per
  job); the Hydra callback :class:`~ser_lightning.callbacks.sweep_summary.SweepSummary` calls it
  when a multirun ends.
* :func:`compare` / :func:`format_table` — one row per run directory (its ``metrics.json``) or
  per sweep directory (mean ± sd over its finished jobs), e.g. the same model on the contiguous
  folds and on EmoBox's folds::

      python -m ser_lightning.cli.results compare multirun/train/cv_a multirun/train/cv_b outputs/train/run1
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

log = logging.getLogger(__name__)

#: Test metrics summarised, as (metrics.json key, column name).
METRICS = (("ua", "UA"), ("wa", "WA"), ("macro_f1", "macro-F1"), ("best_val_ua", "val UA"))
#: Curves drawn by :func:`plot_curves`: panel title → ((CSV column, legend label), ...).
CURVES = {
    "loss": (("train/loss_epoch", "train"), ("val/loss", "validation")),
    "UA": (("train/ua", "train"), ("val/ua", "validation")),
}


def _pyplot():
    """matplotlib's pyplot on the Agg backend, imported when a figure is drawn (not by every run that imports this
    module: Hydra's sweep callback does, for ``predict.py`` too)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ---------------------------------------------------------------------------------------- curves
def read_epoch_log(metrics_csv: str | Path) -> dict[str, dict[int, float]]:
    """Per-epoch values of every column of a Lightning CSV log.

    Args:
        metrics_csv: ``<run>/csv/metrics.csv`` (Lightning's ``CSVLogger``: one row per logging
            call, columns ``epoch``, ``step`` and the metric names, empty where not logged).

    Returns:
        ``{column: {epoch: value}}``; where a column has several values in one epoch (a resumed
        run's log), the last one.

    Raises:
        FileNotFoundError: if ``metrics_csv`` does not exist.
    """
    metrics_csv = Path(metrics_csv)
    if not metrics_csv.is_file():
        raise FileNotFoundError(f"training log {metrics_csv} does not exist")
    out: dict[str, dict[int, float]] = {}
    with metrics_csv.open(newline="") as f:
        for row in csv.DictReader(f):
            epoch = row.get("epoch") or ""
            if not epoch.strip():
                continue
            for key, value in row.items():
                if key in ("epoch", "step") or value is None or not value.strip():
                    continue
                out.setdefault(key, {})[int(float(epoch))] = float(value)
    return out


def plot_curves(metrics_csv: str | Path, path: str | Path, title: str = "") -> Path | None:
    """Draw loss and UA per epoch, train and validation, from a run's CSV log.

    Args:
        metrics_csv: The run's ``csv/metrics.csv``.
        path: Output PNG (``<run>/curves.png``).
        title: Figure title (e.g. the model name).

    Returns:
        ``path``, or ``None`` (logged) when the log holds no per-epoch train or validation value
        (e.g. ``fast_dev_run``).

    Raises:
        FileNotFoundError: if ``metrics_csv`` does not exist.
    """
    series = read_epoch_log(metrics_csv)
    if not any(col in series for curves in CURVES.values() for col, _ in curves):
        log.info("no per-epoch train or validation metric in %s: no curves drawn", metrics_csv)
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(CURVES), figsize=(5.2 * len(CURVES), 3.6))
    best = series.get("val/ua")
    best_epoch = max(best, key=lambda e: (best[e], -e)) if best else None
    for ax, (panel, curves) in zip(axes, CURVES.items()):
        for col, label in curves:
            if col in series:
                epochs = sorted(series[col])
                ax.plot(epochs, [series[col][e] for e in epochs], marker="o", markersize=3, label=label)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", linestyle=":", linewidth=1,
                       label=f"best val UA (epoch {best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(panel)
        if panel == "UA":
            ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


# ---------------------------------------------------------------------------------------- sweeps
def _overrides(job_dir: Path) -> str:
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return ""
    items = OmegaConf.to_container(OmegaConf.load(path)) or []
    return " ".join(str(x) for x in items)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n − 1; 0 for a single value) of a non-empty sequence."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def _job_dirs(sweep_dir: Path) -> list[Path]:
    jobs = [d for d in sweep_dir.iterdir() if d.is_dir() and (d / ".hydra").is_dir()]
    return sorted(jobs, key=lambda d: (0, int(d.name)) if d.name.isdigit() else (1, d.name))


def collect_jobs(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Read every ``<sweep_dir>/<job>/metrics.json``, jobs in numeric order.

    Args:
        sweep_dir: A Hydra sweep directory (``hydra.sweep.dir``).

    Returns:
        One dict per finished job: ``job``, ``overrides``, the keys of :data:`METRICS`,
        ``epochs``, ``wall_time_s`` and ``model``; jobs without ``metrics.json`` (failed or
        still running) are left out and logged.

    Raises:
        FileNotFoundError: if ``sweep_dir`` is not a directory.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep directory {sweep_dir} does not exist")
    rows = []
    for d in _job_dirs(sweep_dir):
        path = d / "metrics.json"
        if not path.is_file():
            log.warning("sweep job %s has no metrics.json (failed or unfinished): left out of the summary", d)
            continue
        m = json.loads(path.read_text())
        row = {"job": d.name, "overrides": _overrides(d)}
        for key, _ in METRICS:
            row[key] = m.get(key)
        row["epochs"] = m.get("epochs")
        row["wall_time_s"] = m.get("wall_time_s")
        row["model"] = m.get("model")
        rows.append(row)
    return rows


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * float(v):.1f}"


def plot_folds(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Bar chart of each job's test UA, WA and macro-F1 with the mean UA as a dashed line.

    Args:
        rows: Jobs as :func:`collect_jobs` returns them (``overrides`` label the bars; the
            job number where they are empty).
        path: Output PNG (``<sweep>/per_fold.png``).
        title: Figure title.

    Returns:
        ``path``.

    Raises:
        ValueError: if ``rows`` is empty.
    """
    if not rows:
        raise ValueError("plot_folds needs at least one job")
    shown = [(k, name) for k, name in METRICS if k != "best_val_ua"]
    n = len(rows)
    width = 0.8 / len(shown)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 + 0.9 * n), 3.8))
    for i, (key, name) in enumerate(shown):
        xs = [j + (i - (len(shown) - 1) / 2) * width for j in range(n)]
        ys = [100 * float(r[key]) if r[key] is not None else 0.0 for r in rows]
        ax.bar(xs, ys, width=width, label=name)
    uas = [float(r["ua"]) for r in rows if r["ua"] is not None]
    if uas:
        mean, std = mean_std(uas)
        ax.axhline(100 * mean, color="black", linestyle="--", linewidth=1,
                   label=f"mean UA {100 * mean:.1f} ± {100 * std:.1f}")
    labels = [r["overrides"] or f"job {r['job']}" for r in rows]
    ax.set_xticks(range(n), labels, rotation=30 if max(len(s) for s in labels) > 12 else 0, ha="right"
                  if max(len(s) for s in labels) > 12 else "center", fontsize=8)
    ax.set_ylabel("test metric (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def write_summary(sweep_dir: str | Path) -> tuple[Path, Path] | None:
    """Write ``summary.csv`` (one row per job plus ``mean`` and ``std`` rows), ``summary.md`` and
    the per-job chart ``per_fold.png`` (:func:`plot_folds`) into a sweep directory.

    Args:
        sweep_dir: A Hydra sweep directory.

    Returns:
        ``(csv_path, md_path)``, or ``None`` when no job finished.

    Raises:
        FileNotFoundError: if ``sweep_dir`` is not a directory.
    """
    sweep_dir = Path(sweep_dir)
    rows = collect_jobs(sweep_dir)
    if not rows:
        log.warning("no finished jobs in %s: no summary written", sweep_dir)
        return None
    stats = {}
    for key, _ in METRICS:
        vals = [float(r[key]) for r in rows if r[key] is not None]
        stats[key] = mean_std(vals) if vals else (None, None)

    # Show only the overrides that differ between jobs; the shared ones go under the table.
    split = [r["overrides"].split() for r in rows]
    common = [o for o in split[0] if all(o in s for s in split[1:])] if len(rows) > 1 else []
    for r, s in zip(rows, split):
        r["overrides"] = " ".join(o for o in s if o not in common)

    fields = ["job", "overrides", *(k for k, _ in METRICS), "epochs"]
    csv_path = sweep_dir / "summary.csv"
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
        for i, label in enumerate(("mean", "std")):
            w.writerow({"job": label, "overrides": "", "epochs": "",
                        **{k: (None if stats[k][i] is None else round(stats[k][i], 6)) for k, _ in METRICS}})

    lines = [
        f"# Sweep summary: {sweep_dir}",
        "",
        "| job | overrides | " + " | ".join(name for _, name in METRICS) + " | epochs |",
        "|---|---|" + "---:|" * (len(METRICS) + 1),
    ]
    for r in rows:
        lines.append(f"| {r['job']} | `{r['overrides']}` | "
                     + " | ".join(_pct(r[k]) for k, _ in METRICS) + f" | {r['epochs']} |")
    lines.append("| **mean ± std** | " + f"{len(rows)} jobs | "
                 + " | ".join("–" if stats[k][0] is None else f"{_pct(stats[k][0])} ± {_pct(stats[k][1])}"
                              for k, _ in METRICS) + " | |")
    lines += ["", "Test-split metrics in %, std = sample standard deviation (n − 1) over jobs.",
              "", "Per-job chart: `per_fold.png`."]
    if common:
        lines += ["", "Overrides shared by every job: `" + " ".join(common) + "`"]
    md_path = sweep_dir / "summary.md"
    md_path.write_text("\n".join(lines) + "\n")
    plot_folds(rows, sweep_dir / "per_fold.png", title=" ".join(common) or str(sweep_dir))
    log.info("sweep summary: %s (chart: per_fold.png)", md_path)
    return csv_path, md_path


# --------------------------------------------------------------------------------------- compare
def _run_config(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A run's composed config (``.hydra/config.yaml``, else ``config_resolved.yaml``) and Hydra's
    group choices (``.hydra/hydra.yaml``), as plain dicts (empty where absent)."""
    cfg: dict[str, Any] = {}
    for name in (".hydra/config.yaml", "config_resolved.yaml"):
        if (run_dir / name).is_file():
            cfg = OmegaConf.to_container(OmegaConf.load(run_dir / name), resolve=False) or {}
            break
    choices: dict[str, Any] = {}
    if (run_dir / ".hydra" / "hydra.yaml").is_file():
        hydra_cfg = OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra" / "hydra.yaml"), resolve=False) or {}
        choices = ((hydra_cfg.get("hydra") or {}).get("runtime") or {}).get("choices") or {}
    return cfg, choices


def split_label(run_dir: str | Path, with_fold: bool = True) -> str:
    """How a run split its speakers, e.g. ``kfold emobox_ravdess fold 2``, ``kfold 6 contiguous fold 0``,
    ``speaker`` (from the run's saved config; ``?`` where it has none).

    Args:
        run_dir: A run directory (or a sweep's job directory).
        with_fold: Append the test fold (``data.fold``) where the split has one.
    """
    cfg, choices = _run_config(Path(run_dir))
    data = cfg.get("data") or {}
    split = data.get("split")
    if split is None:
        return "?"
    label = str(split)
    if split == "kfold":
        preset = choices.get("folds")
        if preset and preset != "null":
            label += f" {preset}"
        elif data.get("speaker_folds"):
            label += f" {len(data['speaker_folds'])} groups"
        else:
            label += f" {data.get('n_folds')} contiguous"
    if with_fold and data.get("fold") is not None and split in ("kfold", "session", "partition"):
        label += f" fold {data['fold']}"
    return label


def _fold_list(folds: Sequence[str]) -> str:
    """``0, 1, 2, 3`` → ``0–3`` (consecutive integers); anything else joined with commas."""
    if len(folds) > 2 and all(f.lstrip("-").isdigit() for f in folds):
        nums = [int(f) for f in folds]
        if nums == list(range(nums[0], nums[0] + len(nums))):
            return f"{nums[0]}–{nums[-1]}"
    return ", ".join(folds)


def _cell(values: Sequence[float | None], scale: float = 100.0, digits: int = 1) -> str:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return "–"
    if len(vals) == 1:
        return f"{scale * vals[0]:.{digits}f}"
    mean, std = mean_std(vals)
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def summarize_dir(path: str | Path) -> dict[str, Any]:
    """One comparison row for a run directory or a sweep directory.

    Args:
        path: A run directory (holding ``metrics.json``) or a Hydra sweep directory (job
            folders holding ``metrics.json``; unfinished jobs are left out and logged).

    Returns:
        ``{"path", "kind", "jobs", "model", "split", "ua", "wa", "macro_f1", "best_val_ua",
        "minutes", "epochs"}``; metric values are lists (one per job) for :func:`format_table`.

    Raises:
        FileNotFoundError: ``path`` is neither a run nor a sweep with a finished job.
    """
    path = Path(path)
    if (path / "metrics.json").is_file():
        m = json.loads((path / "metrics.json").read_text())
        jobs, kind, split = [m], "run", split_label(path)
    elif path.is_dir() and (rows := collect_jobs(path)):
        jobs, kind = rows, "sweep"
        labels = {split_label(path / r["job"], with_fold=False) for r in rows}
        folds = [str(_run_config(path / r["job"])[0].get("data", {}).get("fold")) for r in rows]
        split = " / ".join(sorted(labels))
        if any(f != "None" for f in folds) and any(lbl.startswith(("kfold", "session")) for lbl in labels):
            split += f" (folds {_fold_list(folds)})"
    else:
        raise FileNotFoundError(f"{path} is neither a run directory (with metrics.json) nor a sweep directory "
                                "(job folders with metrics.json)")
    models = sorted({str(j.get("model")) for j in jobs if j.get("model")})
    return {
        "path": str(path),
        "kind": kind,
        "jobs": len(jobs),
        "model": ", ".join(models) or "?",
        "split": split,
        **{key: [j.get(key) for j in jobs] for key, _ in METRICS},
        "minutes": [None if j.get("wall_time_s") is None else float(j["wall_time_s"]) / 60 for j in jobs],
        "epochs": [j.get("epochs") for j in jobs],
    }


def compare(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Rows of :func:`summarize_dir` for run and sweep directories, in the given order.

    A directory that is neither a run nor a sweep but holds runs or sweeps (``outputs/train``,
    ``multirun/train``) stands for each of them, in name order.

    Args:
        paths: Run directories, sweep directories or folders of them.

    Returns:
        One row per run or sweep.

    Raises:
        FileNotFoundError: a path that does not exist, or holds no finished run or sweep.
    """
    rows = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise FileNotFoundError(f"{p} does not exist or is not a directory")
        try:
            rows.append(summarize_dir(p))
            continue
        except FileNotFoundError:
            pass
        found = []
        for child in sorted(d for d in p.iterdir() if d.is_dir()):
            try:
                found.append(summarize_dir(child))
            except FileNotFoundError:
                continue
        if not found:
            raise FileNotFoundError(f"{p} holds no finished run (metrics.json) or sweep (job folders with "
                                    "metrics.json)")
        rows += found
    return rows


#: Columns of :func:`format_table`: (row key, header).
TABLE = (("path", "run"), ("kind", "kind"), ("model", "model"), ("split", "split"), ("ua", "UA"), ("wa", "WA"),
         ("macro_f1", "macro-F1"), ("best_val_ua", "val UA"), ("minutes", "min/job"), ("epochs", "epochs"))


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of :func:`compare` rows: test UA, WA, macro-F1 and best validation UA in %
    (mean ± sample sd over a sweep's jobs), minutes and epochs per job.

    Args:
        rows: :func:`compare` rows.

    Returns:
        The table and a one-line legend.
    """
    lines = ["| " + " | ".join(h for _, h in TABLE) + " |", "|" + "---|" * 4 + "---:|" * (len(TABLE) - 4)]
    for r in rows:
        kind = r["kind"] if r["kind"] == "run" else f"sweep ({r['jobs']} jobs)"
        cells = [f"`{r['path']}`", kind, r["model"], r["split"],
                 *(_cell(r[k]) for k in ("ua", "wa", "macro_f1", "best_val_ua")),
                 _cell(r["minutes"], scale=1.0), _cell(r["epochs"], scale=1.0, digits=0)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Test-split metrics in %; a sweep shows mean ± sample standard deviation (n − 1) over its "
                  "finished jobs; min/job = wall minutes per job."]
    return "\n".join(lines)


def write_compare_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write :func:`compare` rows as CSV: one line per run or sweep, means and sample sds as numbers.

    Args:
        rows: :func:`compare` rows.
        path: Output CSV.

    Returns:
        ``path``.
    """
    keys = ("ua", "wa", "macro_f1", "best_val_ua", "minutes", "epochs")
    with Path(path).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "kind", "jobs", "model", "split", *(f"{k}_{s}" for k in keys for s in ("mean", "std"))])
        for r in rows:
            stats = []
            for k in keys:
                vals = [float(v) for v in r[k] if v is not None]
                stats += [round(x, 6) for x in mean_std(vals)] if vals else ["", ""]
            w.writerow([r["path"], r["kind"], r["jobs"], r["model"], r["split"], *stats])
    return Path(path)
