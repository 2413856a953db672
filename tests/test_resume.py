"""Resume: a run SIGKILLed mid-epoch, resumed with ``ckpt_path=last`` in its own
directory, ends with exactly the metrics and per-epoch log of the uninterrupted run (CPU)."""

import csv
import json

import pytest
import torch

from ser_lightning.callbacks.resume import prepare_csv_log, resolve_ckpt_path
from tests.conftest import TINY_DATA, run_script

COMMON = ["model=homebrew_cnn", *TINY_DATA, "trainer.max_epochs=4", "callbacks.progress_bar=null",
          "callbacks.model_summary=null", "data.duration_s=0.5"]


def _log_rows(run_dir):
    """Per-epoch CSV log without the wall-clock column (timings differ between runs)."""
    with (run_dir / "csv" / "metrics.csv").open(newline="") as f:
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in csv.DictReader(f)]


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_result(tiny_ravdess, tmp_path):
    base = [f"data.root={tiny_ravdess}", f"data.cache_dir={tmp_path / 'cache'}", *COMMON]
    full, killed = tmp_path / "full", tmp_path / "killed"
    r = run_script("train.py", *base, cwd=full)
    assert r.returncode == 0, r.stderr[-3000:]

    # SIGKILL at the second batch of epoch 2: no cleanup, like a pre-empted node.
    r = run_script("train.py", *base, "+callbacks.kill._target_=tests.killer.KillMidEpoch",
                   "+callbacks.kill.epoch=2", cwd=killed, fresh_process=True)  # it kills its process
    assert r.returncode == -9
    assert not (killed / "metrics.json").exists()
    last = torch.load(killed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 1  # the last finished epoch, whether or not it improved validation UA

    r = run_script("train.py", *base, "ckpt_path=last", cwd=killed)
    assert r.returncode == 0, r.stderr[-3000:]

    a = json.loads((full / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    for key in ("ua", "wa", "macro_f1", "loss", "best_val_ua", "epochs", "confusion_matrix"):
        assert a[key] == b[key], key  # exact: same RNG stream, same deterministic CPU kernels
    # The log continues without gaps or duplicated steps: row for row the uninterrupted log.
    rows_full, rows_resumed = _log_rows(full), _log_rows(killed)
    assert [r["step"] for r in rows_resumed] == [r["step"] for r in rows_full]
    assert rows_resumed == rows_full


def test_ckpt_path_last_needs_an_existing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="hydra.run.dir"):
        resolve_ckpt_path("last", tmp_path)
    assert resolve_ckpt_path(None, tmp_path) is None


def test_prepare_csv_log_keeps_finished_steps_only(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,val/ua\n0,3,0.5\n1,7,0.6\n,8,\n2,9,\n")
    prepare_csv_log(path, resume_step=8)
    assert path.read_text().splitlines() == ["epoch,step,val/ua", "0,3,0.5", "1,7,0.6"]
    prepare_csv_log(path, resume_step=None)  # a fresh run in a used directory starts a new log
    assert not path.exists()
