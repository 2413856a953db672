"""train.py / eval.py end to end on generated audio, and the datamodule's run-directory files."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import torch

from ser_lightning.data.datamodule import SERDataModule
from tests.conftest import run_script
from tests.metric_checks import RAVDESS8, assert_test_metrics_match_split, split_rows

SMALL = ["data.val_speakers=2", "data.test_speakers=2", "data.duration_s=1.0", "data.batch_size=16"]


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_fast_dev_run(tiny_ravdess, tmp_path):
    run = tmp_path / "run"
    r = run_script("train.py", "model=homebrew_cnn", "debug=fast", f"data.root={tiny_ravdess}",
                   f"data.cache_dir={tmp_path / 'cache'}", *SMALL, cwd=run)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    rows = split_rows(run)
    assert [sum(r["split"] == s for r in rows) for s in ("train", "val", "test")] == [64, 32, 32]  # 4/2/2 actors × 16
    # fast_dev_run tests one batch: the first 16 (data.batch_size) of the 32 test clips.
    assert_test_metrics_match_split(metrics, rows, RAVDESS8, first=16)
    assert metrics["model"] == "homebrew_cnn" and metrics["epochs"] == 1 and metrics["best_checkpoint"] is None
    # (channels, n_mels, frames): 1.0 s at 16 kHz, hop 256 samples, centred frames -> 1 + 16000 // 256.
    assert metrics["input_shape"] == [1, 64, 1 + 16000 // 256]
    assert (run / "config_resolved.yaml").is_file()
    # The default trainer resolved to this machine's hardware, and says so.
    expected = ("gpu", "16-mixed") if torch.cuda.is_available() else ("cpu", "32-true")
    hw = metrics["hardware"]
    assert (hw["accelerator"], hw["precision"]) == expected
    assert (hw["devices"], hw["world_size"], hw["strategy"]) == (1, 1, "single_device")
    assert "trainer: accelerator=" in r.stderr + r.stdout


def test_train_writes_run_directory_and_eval_reproduces_it(tiny_ravdess, tmp_path):
    run = tmp_path / "run"
    cache = tmp_path / "cache"
    r = run_script("train.py", "model=homebrew_cnn", f"data.root={tiny_ravdess}", f"data.cache_dir={cache}",
                   "trainer.max_epochs=3", *SMALL, cwd=run)
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("split.csv", "skipped.csv", "class_counts.csv", "metrics.json", "confusion_matrix.png",
                 "checkpoints/best.ckpt", "checkpoints/last.ckpt", "csv/metrics.csv", ".hydra/config.yaml"):
        assert (run / name).is_file(), name
    split = _rows(run / "split.csv")
    assert len(split) == 128 and set(split[0]) >= {"path", "speaker", "label", "split"}
    by_split = {s: {r["speaker"] for r in split if r["split"] == s} for s in ("train", "val", "test")}
    assert len(by_split["test"]) == 2 and not (by_split["test"] & by_split["train"])
    metrics = json.loads((run / "metrics.json").read_text())
    n_test = sum(r["split"] == "test" for r in split)
    assert metrics["n"] == n_test and 0.0 <= metrics["ua"] <= 1.0
    assert sum(map(sum, metrics["confusion_matrix"])) == n_test
    epochs = {row["epoch"] for row in _rows(run / "csv" / "metrics.csv") if row.get("val/ua")}
    assert len(epochs) == 3

    ev = tmp_path / "eval"
    r = run_script("eval.py", f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", "split=test",
                   f"data.root={tiny_ravdess}", f"data.cache_dir={cache}", cwd=ev)
    assert r.returncode == 0, r.stderr[-3000:]
    again = json.loads((ev / "metrics.json").read_text())
    assert again["n"] == n_test
    assert again["ua"] == pytest.approx(metrics["ua"], abs=1e-6)
    assert again["confusion_matrix"] == metrics["confusion_matrix"]
    r = run_script("eval.py", f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", "split=val",
                   f"data.root={tiny_ravdess}", f"data.cache_dir={cache}", cwd=tmp_path / "eval_val")
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((tmp_path / "eval_val" / "metrics.json").read_text())["n"] == sum(r["split"] == "val" for r in split)


def test_fast_dev_run_skips_the_refit_with_a_note(tiny_ravdess, tmp_path):
    """``++trainer.fast_dev_run=true`` (Lightning's own smoke test, no checkpoints) with ``refit=true``: the refit is
    skipped with one line, as ``debug=fast`` does, instead of failing for want of a best checkpoint."""
    run = tmp_path / "run"
    r = run_script("train.py", "model=homebrew_cnn", "refit=true", "++trainer.fast_dev_run=true",
                   f"data.root={tiny_ravdess}", f"data.cache_dir={tmp_path / 'cache'}", *SMALL, cwd=run)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["refit"] is None and metrics["best_checkpoint"] is None and metrics["epochs"] == 1
    assert not (run / "checkpoints" / "refit.ckpt").exists()
    notes = [ln for ln in (r.stderr + r.stdout).splitlines() if "refit skipped" in ln]
    assert len(notes) == 1 and "fast_dev_run" in notes[0]


@pytest.mark.slow
def test_fast_dev_run_of_the_default_whisper_model(tiny_ravdess, tmp_path):
    """The Lightning user's first smoke test on the default model (``model=whisper_tiny``, whose config turns the
    refit on): ``++trainer.fast_dev_run=true`` runs."""
    run = tmp_path / "run"
    r = run_script("train.py", "model=whisper_tiny", "++trainer.fast_dev_run=true", f"data.root={tiny_ravdess}",
                   f"data.cache_dir={tmp_path / 'cache'}", *SMALL, cwd=run)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == "whisper_tiny" and metrics["refit"] is None and "refit skipped" in r.stderr + r.stdout


def test_missing_data_root_is_a_clear_error(tmp_path):
    r = run_script("train.py", f"data.root={tmp_path / 'nowhere'}", f"data.cache_dir={tmp_path / 'c'}", cwd=tmp_path / "run")
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert str(tmp_path / "nowhere") in last and "make data" in last
    assert "Traceback" not in r.stderr


def test_unknown_label_set_is_a_clear_error(tiny_ravdess, tmp_path):
    r = run_script("train.py", f"data.root={tiny_ravdess}", "data.label_set=plutchik8", cwd=tmp_path / "run")
    assert r.returncode != 0 and "data.label_set='plutchik8'" in r.stderr and "ravdess8" in r.stderr


def _dm(root, tmp_path, **kw):
    args = dict(root=str(root), cache_dir=str(tmp_path / "cache"), val_speakers=2, test_speakers=2,
                duration_s=1.0, run_dir=str(tmp_path / "run"), progress=False)
    return SERDataModule(**{**args, **kw})


def test_corrupt_file_among_good_ones_is_skipped_and_listed(tiny_ravdess, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_ravdess, root)
    bad = root / "ravdess" / "Actor_01" / "03-01-05-02-01-01-01.wav"
    bad.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt corrupted")
    dm = _dm(root, tmp_path)
    dm.setup("fit")
    assert sum(len(d) for d in dm.datasets.values()) == 128
    skipped = _rows(tmp_path / "run" / "skipped.csv")
    assert [r["path"] for r in skipped] == [str(bad)] and skipped[0]["stage"] == "decode"


def test_label_sets_drop_and_merge_classes(tiny_ravdess, tmp_path):
    dm = _dm(tiny_ravdess, tmp_path, label_set="quad4", calm="drop")
    dm.setup("fit")
    assert dm.class_names == ["angry", "happy", "neutral", "sad"]
    assert sum(len(d) for d in dm.datasets.values()) == 4 * 8 * 2
    counts = _rows(tmp_path / "run" / "class_counts.csv")
    assert sum(int(r["neutral"]) for r in counts) == 16  # calm dropped, not merged
    dm2 = _dm(tiny_ravdess, tmp_path, label_set="ekman7", calm="neutral")
    dm2.setup("fit")
    assert sum(len(d) for d in dm2.datasets.values()) == 128
    assert sum(dm2.train_class_counts()) == len(dm2.datasets["train"])


def test_validation_batches_are_not_augmented_but_training_batches_are(tiny_ravdess, tmp_path):
    from ser_lightning.modules.classifier import SERClassifier

    dm = _dm(tiny_ravdess, tmp_path, augment={"wave": {"shift_max_frac": 0.3, "noise_snr_db": [10, 10], "noise_p": 1.0}})
    dm.setup("fit")
    model = SERClassifier({"name": "homebrew_cnn"}, {"name": "logmel", "sample_rate": 16000}, dm.class_names)
    batch = next(iter(dm.val_dataloader()))
    with pytest.raises(RuntimeError, match="set_frontend"):
        dm.on_after_batch_transfer(batch, training=False)
    dm.set_frontend(model.frontend)

    class FakeTrainer:
        training = False

    dm.trainer = FakeTrainer()
    a, _ = dm.on_after_batch_transfer(batch, 0)
    b, _ = dm.on_after_batch_transfer(batch, 0)
    assert torch.equal(a, b) and torch.equal(a, model.extract_features(batch[0]))
    assert torch.equal(dm.on_after_batch_transfer(batch, training=False)[0], a)
    FakeTrainer.training = True
    c, _ = dm.on_after_batch_transfer(batch, 0)
    assert c.shape == a.shape and not torch.equal(a, c)


def test_jointly_trained_ensemble_reports_its_learned_weights(tiny_ravdess, tmp_path):
    run = tmp_path / "run"
    r = run_script("train.py", "debug=fast", "model=joint_ensemble", f"data.root={tiny_ravdess}",
                   f"data.cache_dir={tmp_path / 'cache'}", *SMALL, cwd=run)
    assert r.returncode == 0, r.stderr[-3000:]
    weights = json.loads((run / "metrics.json").read_text())["member_weights"]
    assert set(weights) == {"cnn", "bilstm", "transformer"} and sum(weights.values()) == pytest.approx(1.0)


def test_refit_trains_on_training_and_validation_speakers_for_the_best_epochs(tiny_ravdess, tmp_path):
    from ser_lightning.inference.checkpoint import read_checkpoint

    run, cache = tmp_path / "run", tmp_path / "cache"
    r = run_script("train.py", "model=homebrew_cnn", "refit=true", f"data.root={tiny_ravdess}",
                   f"data.cache_dir={cache}", "trainer.max_epochs=2", "callbacks.last_checkpoint=null", *SMALL, cwd=run)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    refit = metrics["refit"]
    best = read_checkpoint(metrics["best_checkpoint"])
    assert refit["epochs"] == best["epoch"] + 1 == 2  # seeded: the 2nd epoch is the best, so a short refit shows
    assert (refit["train_speakers"], refit["train_clips"]) == (6, 96)  # 4 training + 2 validation actors × 16
    # What the refit did, read from its checkpoint rather than from its report: the epochs the loop ran, and the
    # optimiser steps Lightning counted and AdamW took (96 clips / batches of 16 = 6 steps an epoch)
    done = read_checkpoint(run / "checkpoints" / "refit.ckpt")
    assert best["global_step"] == (best["epoch"] + 1) * 4  # the first fit: 64 training clips, 4 steps an epoch
    assert done["epoch"] == best["epoch"] + 1 == refit["epochs"]
    assert done["global_step"] == 6 * refit["epochs"]
    steps = {int(state["step"]) for state in done["optimizer_states"][0]["state"].values()}
    assert steps == {6 * refit["epochs"]}
    assert metrics["checkpoint"] == refit["checkpoint"] == str(run / "checkpoints" / "refit.ckpt")
    assert set(metrics["selected_model"]) >= {"ua", "wa", "macro_f1", "checkpoint"}
    assert metrics["n"] == 32  # the same 2 test actors
    r = run_script("eval.py", f"ckpt_path={refit['checkpoint']}", "split=test", f"data.root={tiny_ravdess}",
                   f"data.cache_dir={cache}", cwd=tmp_path / "eval")
    assert r.returncode == 0, r.stderr[-3000:]
    again = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert again["ua"] == pytest.approx(metrics["ua"], abs=1e-6)
    assert again["confusion_matrix"] == metrics["confusion_matrix"]
