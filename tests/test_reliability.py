"""Reliability: checkpoints written atomically, configuration errors that fail before
any audio is decoded and name the setting, and bit-identical metrics from two runs with one seed.

The SIGKILL-mid-epoch + ``ckpt_path=last`` resume is tested end to end in ``tests/test_resume.py``;
hostile audio in ``tests/test_hostile_audio.py``; the cache in ``tests/test_cache_integrity.py``.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import random
import signal
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from ser_lightning.cli.validate import validate_config
from ser_lightning.hardware import trainer_from_config
from tests.conftest import REPO, TINY_DATA, run_script


def _config(*overrides: str):
    """``conf/train.yaml`` with the homebrew CNN unless ``overrides`` choose another model."""
    with initialize_config_dir(config_dir=str(REPO / "ser_lightning" / "conf"), version_base="1.3"):
        return compose("train", overrides=["model=homebrew_cnn", *overrides])


# ------------------------------------------------------------------------ atomic checkpoints
def _save_and_die_half_way(path: str, checkpoint: dict) -> None:
    """Save a checkpoint the way Lightning does, and get SIGKILLed half-way through writing it."""
    from fsspec.implementations.local import LocalFileOpener

    write = LocalFileOpener.write

    def half_then_die(self, data):
        write(self, bytes(data[: len(data) // 2]))
        self.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    LocalFileOpener.write = half_then_die
    TorchCheckpointIO().save_checkpoint(checkpoint, path)


def test_checkpoint_killed_while_being_written_leaves_the_previous_one_intact(tmp_path):
    """``last.ckpt``/``best.ckpt`` are written by ``ModelCheckpoint`` → ``trainer.save_checkpoint`` →
    ``TorchCheckpointIO.save_checkpoint`` → ``lightning.fabric.utilities.cloud_io._atomic_save``: the
    checkpoint is serialised in memory, written inside an fsspec transaction to a temporary file
    (``tempfile.mkstemp()``, i.e. in ``$TMPDIR``) and moved over the target on commit. A kill during the
    write leaves the previous checkpoint untouched. The final move is an atomic ``rename`` when ``$TMPDIR``
    is on the same filesystem as the run directory; across filesystems ``shutil.move`` falls back to a copy,
    which is not atomic (point ``TMPDIR`` at the output filesystem on such clusters)."""
    trainer = trainer_from_config(_config().trainer, default_root_dir=str(tmp_path), logger=False, callbacks=[])
    assert isinstance(trainer.strategy.checkpoint_io, TorchCheckpointIO)  # the path described above

    path = tmp_path / "checkpoints" / "last.ckpt"
    old = {"epoch": 1, "state_dict": {"w": torch.arange(200_000, dtype=torch.float32)}}
    TorchCheckpointIO().save_checkpoint(old, str(path))
    new = {"epoch": 2, "state_dict": {"w": -torch.arange(200_000, dtype=torch.float32)}}
    proc = multiprocessing.get_context("fork").Process(target=_save_and_die_half_way, args=(str(path), new))
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == -signal.SIGKILL
    kept = torch.load(path, map_location="cpu", weights_only=True)
    assert kept["epoch"] == 1 and torch.equal(kept["state_dict"]["w"], old["state_dict"]["w"])


# ------------------------------------------------------------------------- configuration errors
@pytest.mark.parametrize(
    "group, option, listed",
    [("model", "nope", "homebrew_cnn"), ("data", "nope", "ravdess"), ("features", "nope", "logmel")],
)
def test_unknown_config_group_option_lists_the_choices(group, option, listed):
    with pytest.raises(ConfigCompositionException) as err:
        _config(f"{group}={option}")
    assert f"Could not find '{group}/{option}'" in str(err.value) and f"Available options in '{group}'" in str(err.value)
    assert listed in str(err.value)


def test_unknown_override_key_is_named_and_appended_ones_list_the_valid_keys():
    with pytest.raises(ConfigCompositionException, match=r"(?s)Could not override 'data.nope'.*\+data.nope=1"):
        _config("data.nope=1")
    with pytest.raises(ValueError, match=r"data.nope is not a setting of data .*valid settings: \[.*'duration_s'"):
        validate_config(_config("+data.nope=1"))


@pytest.mark.parametrize(
    "overrides, named",
    [
        (["data.duration_s=-1"], "data.duration_s=-1"),
        (["augment.wave.noise_snr_db=[30,15]"], "augment.wave.noise_snr_db=[30, 15] is reversed"),
        (["features.n_mels=600"], "features.n_mels=600 is larger than the n_fft // 2 + 1 = 513"),
        (["model=inception_v3", "model.input_size=[32,32]"], "model.input_size=[32, 32] is smaller than inception_v3's minimum"),
        (["data.corpora=[nope]"], "unknown corpus 'nope'; choose one of ['aesdd', 'cafe', 'cremad', 'emodb'"),
        (["data.label_set=nope"], "data.label_set='nope' is not a known label set; choose one of ['ravdess8'"),
        (["+model.nope=1"], "model.nope is not a setting of model (homebrew_cnn); valid settings: ['widths'"),
        (["+augment.spec.nope=1"], "augment.spec.nope is not a setting of augment.spec"),
        (["data.split=kfold", "data.fold=6"], "data.fold=6 must be an integer in 0..5"),
        (["optim.lr=-1"], "optim.lr"),
        (["data.duration_s=0.01"], "model.name=homebrew_cnn cannot process a data.duration_s=0.01 s clip"),
    ],
)
def test_invalid_settings_fail_in_validation_naming_the_setting(overrides, named, tmp_path):
    cfg = _config(f"data.root={tmp_path / 'no_data'}", f"data.cache_dir={tmp_path / 'cache'}", *overrides)
    with pytest.raises(ValueError) as err:
        validate_config(cfg)
    assert named in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "cache").exists()


def test_valid_config_passes_without_touching_data_or_the_random_state(tmp_path, monkeypatch):
    import ser_lightning.data.audio as audio

    def no_decoding(*args, **kwargs):
        raise AssertionError("validate_config decoded audio")

    monkeypatch.setattr(audio, "read_audio", no_decoding)
    cfg = _config(f"data.root={tmp_path / 'no_data'}", f"data.cache_dir={tmp_path / 'cache'}")
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    before = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    validate_config(cfg)
    assert torch.equal(torch.get_rng_state(), before[0]) and np.array_equal(np.random.get_state()[1], before[1])
    assert random.getstate() == before[2]
    assert not (tmp_path / "cache").exists() and not (tmp_path / "no_data").exists()


def test_train_stops_before_decoding_with_one_line_naming_the_setting(tiny_ravdess, tmp_path):
    """``train.py`` calls ``validate_config`` before the datamodule: a setting that used to fail only when
    the network was built (after the corpus was decoded) now stops the run before any file is read."""
    run = tmp_path / "run"
    r = run_script("train.py", "model=homebrew_cnn", f"data.root={tiny_ravdess}",
                   f"data.cache_dir={tmp_path / 'cache'}", "features.n_mels=600", cwd=run, timeout=300)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: features.n_mels=600 is larger than") and "Traceback" not in r.stderr
    assert not (tmp_path / "cache").exists()  # nothing was decoded
    assert not (run / "split.csv").exists() and not (run / "checkpoints").exists()


# ------------------------------------------------------------------------------------ determinism
def _epoch_rows(run_dir):
    with (run_dir / "csv" / "metrics.csv").open(newline="") as f:
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in csv.DictReader(f)]


@pytest.mark.slow
def test_same_seed_and_config_give_identical_metrics_twice(tiny_ravdess, tmp_path):
    args = ["model=homebrew_cnn", f"data.root={tiny_ravdess}", f"data.cache_dir={tmp_path / 'cache'}", *TINY_DATA,
            "data.duration_s=0.5", "trainer.max_epochs=2", "callbacks.progress_bar=null",
            "callbacks.model_summary=null", "seed=7"]
    runs = [tmp_path / "a", tmp_path / "b"]
    # Two runs started together (they share the cache): one in a new interpreter, one in this one.
    with ThreadPoolExecutor(1) as pool:
        fresh = pool.submit(run_script, "train.py", *args, cwd=runs[0], fresh_process=True)
        here = run_script("train.py", *args, cwd=runs[1])
        for r in (fresh.result(), here):
            assert r.returncode == 0, r.stderr[-3000:]
    a, b = (json.loads((run / "metrics.json").read_text()) for run in runs)
    for key in ("ua", "wa", "macro_f1", "loss", "per_class_recall", "confusion_matrix", "best_val_ua", "epochs"):
        assert a[key] == b[key], key  # exact equality, not approx: CPU kernels are deterministic here
    assert _epoch_rows(runs[0]) == _epoch_rows(runs[1])
