"""Results to look at: ``curves.png`` of every run, the per-fold chart of a sweep, and the
``compare`` table across run and sweep directories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ser_lightning.evaluation.results import (
    compare,
    format_table,
    plot_curves,
    read_epoch_log,
    write_summary,
)
from tests.conftest import TINY_DATA, run_module_in_process, run_script_in_process

QUICK = ["model=homebrew_cnn", *TINY_DATA, "data.duration_s=0.5", "trainer.max_epochs=2",
         "trainer.limit_train_batches=2", "callbacks.progress_bar=null", "callbacks.model_summary=null"]


def _png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _fake_run(d: Path, ua: float, model: str = "m", fold: int | None = None, with_hydra: bool = True) -> Path:
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"ua": ua, "wa": ua + 0.02, "macro_f1": ua - 0.02, "best_val_ua": ua,
                                                "epochs": 5, "wall_time_s": 60.0, "model": model}))
    if with_hydra:
        (d / ".hydra").mkdir()
        (d / ".hydra" / "overrides.yaml").write_text(f"- data.fold={fold}\n")
        (d / ".hydra" / "config.yaml").write_text(f"data:\n  split: kfold\n  n_folds: 6\n  fold: {fold}\n"
                                                  "  speaker_folds: null\n")
    return d


def test_epoch_log_keeps_the_last_value_of_an_epoch_and_curves_need_one(tmp_path):
    log = tmp_path / "metrics.csv"
    log.write_text("epoch,step,train/loss_step,train/loss_epoch,train/ua,val/loss,val/ua\n"
                   ",0,,,,,\n0,3,2.0,,,,\n0,3,,,,1.9,0.2\n0,3,,1.8,0.3,,\n1,7,,,,1.5,0.4\n1,7,,,,1.4,0.5\n")
    series = read_epoch_log(log)
    assert series["val/ua"] == {0: 0.2, 1: 0.5} and series["train/loss_epoch"] == {0: 1.8}
    assert _png(plot_curves(log, tmp_path / "curves.png"))
    empty = tmp_path / "empty.csv"
    empty.write_text("epoch,step,train/loss_step\n0,1,2.0\n")
    assert plot_curves(empty, tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
    with pytest.raises(FileNotFoundError, match="training log"):
        read_epoch_log(tmp_path / "missing.csv")


def test_compare_rows_for_runs_sweeps_and_folders_of_runs(tmp_path):
    sweep = tmp_path / "sweep"
    for i, ua in enumerate([0.4, 0.6]):
        _fake_run(sweep / str(i), ua, fold=i)
    runs = tmp_path / "outputs"
    _fake_run(runs / "a", 0.7, model="x", with_hydra=False)
    _fake_run(runs / "b", 0.5, model="y", with_hydra=False)
    rows = compare([sweep, runs])
    assert [(r["kind"], r["jobs"], r["model"]) for r in rows] == [("sweep", 2, "m"), ("run", 1, "x"), ("run", 1, "y")]
    assert rows[0]["split"] == "kfold 6 contiguous (folds 0, 1)"
    table = format_table(rows)
    assert "50.0 ± 14.1" in table and "| 70.0 |" in table and "sweep (2 jobs)" in table
    (tmp_path / "empty" / "unfinished" / ".hydra").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="holds no finished run"):
        compare([tmp_path / "empty"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        compare([tmp_path / "nope"])


def test_summary_writes_a_per_fold_chart(tmp_path):
    for i, ua in enumerate([0.4, 0.5, 0.6]):
        _fake_run(tmp_path / str(i), ua, fold=i)
    write_summary(tmp_path)
    assert _png(tmp_path / "per_fold.png") and "per_fold.png" in (tmp_path / "summary.md").read_text()


@pytest.mark.slow
def test_two_fold_multirun_writes_curves_per_job_a_per_fold_chart_and_compares(tiny_ravdess, tmp_path):
    """A 2-job cross-validation over explicit speaker groups: every job has curves.png, the sweep a
    per-fold chart, and ``compare`` puts two run dirs and the sweep in one table."""
    sweep = tmp_path / "cv"
    r = run_script_in_process("train.py", "-m", f"hydra.sweep.dir={sweep}",
                              f"data.root={tiny_ravdess}", f"data.cache_dir={tmp_path / 'cache'}", *QUICK,
                              "data.split=kfold", "data.speaker_folds=[[1,3,5,7],[2,4,6,8]]", "data.fold=0,1")
    assert r.returncode == 0, r.stderr[-3000:]
    for job in ("0", "1"):
        assert _png(sweep / job / "curves.png")
        tested = {line.split(",")[2] for line in (sweep / job / "split.csv").read_text().splitlines()[1:]
                  if line.rstrip().endswith(",test")}
        odd = job == "0"
        assert tested == {f"ravdess_{a:02d}" for a in ((1, 3, 5, 7) if odd else (2, 4, 6, 8))}
    assert _png(sweep / "per_fold.png") and (sweep / "summary.md").is_file()

    out = run_module_in_process("ser_lightning.cli.results", "compare", str(sweep / "0"),
                                str(sweep / "1"), str(sweep), "--csv", str(tmp_path / "cmp.csv"))
    assert out.returncode == 0, out.stderr[-2000:]
    uas = [json.loads((sweep / j / "metrics.json").read_text())["ua"] for j in ("0", "1")]
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("| `")]
    assert len(lines) == 3
    assert f"| {100 * uas[0]:.1f} |" in lines[0] and "kfold 2 groups fold 0" in lines[0]
    assert f"{100 * (uas[0] + uas[1]) / 2:.1f} ±" in lines[2] and "sweep (2 jobs)" in lines[2]
    assert len((tmp_path / "cmp.csv").read_text().splitlines()) == 4

    bad = run_module_in_process("ser_lightning.cli.results", "compare", str(tmp_path / "cache"))
    assert bad.returncode == 2 and "holds no finished run" in bad.stderr
