"""Sweeps: Hydra multirun grids, the Optuna sweeper, W&B sweep files, and the
summary table written at the end of every multirun."""

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from ser_lightning.callbacks.sweep_summary import collect_jobs, write_summary
from tests.conftest import REPO, TINY_DATA, run_script_in_process

QUICK = ["model=homebrew_cnn", *TINY_DATA, "data.duration_s=0.5", "trainer.max_epochs=1",
         "trainer.limit_train_batches=2", "callbacks.progress_bar=null", "callbacks.model_summary=null"]


def _multirun(sweep_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    return run_script_in_process("train.py", "-m", f"hydra.sweep.dir={sweep_dir}", *overrides)


def _fake_job(sweep: Path, num: int, override: str, ua: float) -> None:
    d = sweep / str(num)
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(f"- data.root=/x\n- {override}\n")
    (d / "metrics.json").write_text(json.dumps({"ua": ua, "wa": ua + 0.1, "macro_f1": ua - 0.1,
                                                "best_val_ua": ua, "epochs": 3}))


def test_summary_mean_and_sample_std(tmp_path):
    for i, ua in enumerate([0.4, 0.5, 0.6]):
        _fake_job(tmp_path, i, f"data.fold={i}", ua)
    (tmp_path / "3" / ".hydra").mkdir(parents=True)  # a failed job: no metrics.json, left out
    csv_path, md_path = write_summary(tmp_path)
    rows = csv_path.read_text().splitlines()
    assert len(rows) == 1 + 3 + 2
    mean = rows[-2].split(",")
    std = rows[-1].split(",")
    assert float(mean[2]) == pytest.approx(0.5) and float(std[2]) == pytest.approx(0.1)  # n-1 std
    md = md_path.read_text()
    assert "50.0 ± 10.0" in md and "`data.fold=1`" in md and "shared by every job: `data.root=/x`" in md


def test_collect_jobs_orders_numerically_and_needs_a_directory(tmp_path):
    for i in (10, 2, 1):
        _fake_job(tmp_path, i, f"optim.lr={i}", 0.5)
    assert [r["job"] for r in collect_jobs(tmp_path)] == ["1", "2", "10"]
    with pytest.raises(FileNotFoundError, match="sweep directory"):
        collect_jobs(tmp_path / "nope")


@pytest.mark.slow
def test_grid_multirun_writes_one_summary(tiny_ravdess, tmp_path):
    sweep = tmp_path / "grid"
    r = _multirun(sweep, f"data.root={tiny_ravdess}", f"data.cache_dir={tmp_path / 'cache'}", *QUICK,
                  "optim.lr=1e-3,3e-3")
    assert r.returncode == 0, r.stderr[-3000:]
    lines = (sweep / "summary.md").read_text()
    assert "`optim.lr=0.001`" in lines and "`optim.lr=0.003`" in lines and "2 jobs" in lines
    assert len((sweep / "summary.csv").read_text().splitlines()) == 1 + 2 + 2


@pytest.mark.slow
def test_optuna_study_in_sqlite_is_shared_and_resumed(tiny_ravdess, tmp_path):
    """A 2-trial study stored in SQLite, then resumed for 1 more trial: 3 trials in the store."""
    import optuna

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    common = ["hparams_search=ravdess_optuna", f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=s",
              "hydra.sweeper.sampler.n_startup_trials=2", f"data.root={tiny_ravdess}",
              f"data.cache_dir={tmp_path / 'cache'}", *QUICK]
    sweep = tmp_path / "optuna"
    r = _multirun(sweep, *common, "hydra.sweeper.n_trials=2")
    assert r.returncode == 0, r.stderr[-3000:]
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert 0.0 <= result["best_value"] <= 1.0 and "optim.lr" in result["best_params"]
    jobs = collect_jobs(sweep)
    assert len(jobs) == 2
    # Optuna maximised what train.py returned: the best trial's best validation UA.
    assert result["best_value"] == pytest.approx(max(j["best_val_ua"] for j in jobs))
    first = optuna.load_study(study_name="s", storage=storage).trials
    assert [t.state.name for t in first] == ["COMPLETE", "COMPLETE"]

    r = _multirun(tmp_path / "optuna_resumed", *common, "hydra.sweeper.n_trials=1")
    assert r.returncode == 0, r.stderr[-3000:]
    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert len(trials) == 3 and all(t.state.name == "COMPLETE" for t in trials)
    assert [t.params for t in trials[:2]] == [t.params for t in first]  # the stored trials were kept


def _example_value(spec: dict):
    if "values" in spec:
        return spec["values"][-1]
    return spec["min"]


@pytest.mark.parametrize("name", ["random.yaml", "bayes.yaml"])
def test_wandb_sweep_files_are_plain_train_overrides(name):
    sweep = yaml.safe_load((REPO / "sweeps" / name).read_text())
    assert sweep["program"] == "train.py" and sweep["method"] in ("random", "bayes", "grid")
    assert sweep["metric"] == {"name": "val/ua_best", "goal": "maximize"}
    assert "${args_no_hyphens}" in sweep["command"] and "logger=wandb" in sweep["command"]
    overrides = [f"{k}={_example_value(v)}" for k, v in sweep["parameters"].items()]
    with initialize_config_dir(str(REPO / "ser_lightning" / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)  # every parameter is a valid override
    for key, spec in sweep["parameters"].items():
        node = cfg.model.name if key == "model" else cfg
        if key != "model":
            for part in key.split("."):
                node = node[part]
        assert node == _example_value(spec), key
