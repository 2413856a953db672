"""Multi-process training: trainer configs, DDP simulated on the CPU with two
gloo processes (``trainer=ddp_sim``), single-device testing, the multirun + DDP guard, the SLURM
launcher config and the decode-once cache under concurrent processes.

The corpus is the tiny generated RAVDESS with one clip removed from actor 1, split by speaker
folds (test = actors 1-2, 31 clips; validation = 2 other actors, 32 clips; train = 64 clips).
The odd test count matters: a 2-process test would pad it to 32 clips (``DistributedSampler``
repeats one), so ``n == 31`` in ``metrics.json`` shows the test ran on one device. The even
validation count (16 per process, nothing padded) makes 1- and 2-process validation comparable.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ser_lightning.hardware import trainer_from_config
from tests.conftest import REPO, TINY_DATA, make_ravdess, run_script, run_script_in_process

QUICK = ["model=homebrew_cnn", *TINY_DATA, "trainer.max_epochs=1", "callbacks.progress_bar=null",
         "callbacks.model_summary=null"]
FOLDS = ["data.split=kfold", "data.n_folds=4", "data.fold=0"]  # test = actors 1-2
REMOVED = "Actor_01/03-01-01-01-01-01-01.wav"

# Validates a checkpoint with the project's trainer config (argv: ckpt, trainer option, out.json).
# Lightning's ddp launcher re-runs this script with LOCAL_RANK=1 for the second process.
VALIDATE_SCRIPT = """
import json, sys
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from ser_lightning.data.datamodule import SERDataModule
from ser_lightning.hardware import trainer_from_config
from ser_lightning.modules.classifier import SERClassifier

ckpt, trainer_option, out, root_dir = sys.argv[1:5]
with initialize_config_dir(config_dir=sys.argv[5], version_base="1.3"):
    cfg = compose("train", overrides=["model=homebrew_cnn", f"trainer={trainer_option}",
                                      f"trainer.default_root_dir={root_dir}"])
dm_hp = torch.load(ckpt, map_location="cpu", weights_only=True)["datamodule_hyper_parameters"]
dm = SERDataModule(**dm_hp, progress=False)
model = SERClassifier.load_from_checkpoint(ckpt, map_location="cpu")
dm.set_frontend(model.frontend)
trainer = trainer_from_config(cfg.trainer, logger=False, callbacks=[], enable_progress_bar=False,
                      enable_model_summary=False)
result = trainer.validate(model, datamodule=dm, verbose=False)[0]
if trainer.is_global_zero:
    json.dump({"world_size": trainer.world_size, **{k: float(v) for k, v in result.items()}}, open(out, "w"))
"""


def _split_counts(run: Path) -> dict[str, int]:
    with (run / "split.csv").open(newline="") as fh:
        splits = [row["split"] for row in csv.DictReader(fh)]
    return {name: splits.count(name) for name in ("train", "val", "test")}


@pytest.fixture(scope="module")
def odd_corpus(tmp_path_factory) -> Path:
    """Tiny RAVDESS (8 actors x 16 clips) minus one clip of actor 1: 31 test clips under FOLDS."""
    root = make_ravdess(tmp_path_factory.mktemp("odd_data"))
    (root / "ravdess" / REMOVED).unlink()
    return root


@pytest.fixture(scope="module")
def ddp_run(odd_corpus, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """Three epochs of ``train.py trainer=ddp_sim`` (2 gloo processes) on the odd corpus: enough
    for predictions that differ between clips (validation UA about 0.5 rather than chance), so
    that metrics computed on one process's half of the clips would differ from the full ones."""
    base = tmp_path_factory.mktemp("ddp")
    run = base / "run"
    r = run_script("train.py", "trainer=ddp_sim", f"data.root={odd_corpus}", f"data.cache_dir={base / 'cache'}",
                   *QUICK, *FOLDS, "trainer.max_epochs=3", cwd=run,
                   fresh_process=True)  # Lightning re-launches the command for rank 1
    assert r.returncode == 0, r.stderr[-3000:]
    return run, r


# ------------------------------------------------------------------------------ trainer configs
def _compose(*overrides: str, hydra: bool = False):
    """``conf/train.yaml`` with the homebrew CNN, whose model config sets no trainer keys."""
    with initialize_config_dir(str(REPO / "ser_lightning" / "conf"), version_base="1.3"):
        return compose("train", overrides=["model=homebrew_cnn", *overrides], return_hydra_config=hydra)


def test_ddp_configs_inherit_their_single_device_base():
    ddp = _compose("trainer=ddp").trainer
    assert (ddp.accelerator, ddp.strategy, ddp.devices, ddp.num_nodes) == ("gpu", "ddp", 2, 1)
    assert ddp.precision == "16-mixed" and ddp.sync_batchnorm is False
    assert ddp.max_epochs == _compose().trainer.max_epochs  # the rest comes from cpu.yaml
    sim = _compose("trainer=ddp_sim").trainer
    assert (sim.accelerator, sim.strategy, sim.devices, sim.precision) == ("cpu", "ddp", 2, 32)


def test_strategy_auto_with_two_devices_is_script_launched_ddp(tmp_path):
    """``trainer=gpu trainer.devices=2`` becomes DDP: Lightning's "auto" picks ``ddp`` for more than
    one device of any accelerator (checked here on CPU devices; GPUs take the same branch)."""
    from lightning.pytorch.strategies import DDPStrategy
    from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher

    from ser_lightning.cli.common import single_device_overrides

    cfg = _compose("trainer.devices=2", f"trainer.default_root_dir={tmp_path}").trainer
    assert cfg.strategy == "auto"
    trainer = trainer_from_config(cfg, logger=False, callbacks=[])
    assert isinstance(trainer.strategy, DDPStrategy) and trainer.world_size == 2
    assert isinstance(trainer.strategy.launcher, _SubprocessScriptLauncher)
    one = trainer_from_config(cfg, logger=False, callbacks=[], **single_device_overrides(trainer))
    assert one.world_size == 1 and one.strategy.root_device.type == "cpu"


# ------------------------------------------------------------------------ DDP simulated on CPU
def test_ddp_sim_trains_end_to_end_and_tests_every_clip_once(ddp_run):
    run, r = ddp_run
    out = r.stdout + r.stderr
    # rank 0's banner once (before issue 24's console work Lightning's own handler printed it a second time)
    assert out.count("distributed_backend=gloo") == 1 and "MEMBER: 2/2" in out
    metrics = json.loads((run / "metrics.json").read_text())
    counts = _split_counts(run)
    assert counts == {"train": 64, "val": 32, "test": 31}
    # Tested on one device: 31 clips, not the 32 a 2-process DistributedSampler would produce.
    assert metrics["n"] == counts["test"] == 31 and metrics["world_size"] == 2
    assert metrics["epochs"] == 3 and 0.0 <= metrics["best_val_ua"] <= 1.0
    # Rank 0 alone writes metrics.json, tests and decodes; rank 1 only reads the cache.
    assert out.count("test UA") == 1 and out.count("decoding 127 files") == 1
    rank1 = (run / "train_ddp_process_1.log").read_text()
    assert "reusing audio cache" in rank1 and "test UA" not in rank1 and "decoding" not in rank1
    with (run / "csv" / "metrics.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sum(1 for row in rows if row.get("test/ua")) == 1 and any(row.get("val/ua") for row in rows)


def _validate(ckpt: Path, trainer_option: str, tmp_path: Path) -> dict:
    """Run VALIDATE_SCRIPT: in a new interpreter for the 2-process trainer (Lightning re-launches the
    script for rank 1), in this one for the single-process trainer."""
    script = tmp_path / "validate.py"
    script.write_text(VALIDATE_SCRIPT)
    out = tmp_path / f"val_{trainer_option}.json"
    args = [str(ckpt), trainer_option, str(out), str(tmp_path), str(REPO / "ser_lightning" / "conf")]
    if trainer_option == "cpu":
        r = run_script_in_process(str(script), *args)
    else:
        r = subprocess.run([sys.executable, str(script), *args], cwd=tmp_path, capture_output=True, text=True,
                           timeout=300, env={**os.environ,
                                             "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])})
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(out.read_text())


def test_validation_metrics_match_between_one_and_two_processes(ddp_run, tmp_path):
    """Same checkpoint, same 32 validation clips: 1 process vs 2 gloo processes (16 clips each).

    UA, WA and macro-F1 come from torchmetrics states (integer counts) summed over processes, so
    they must agree exactly (1e-6 covers float32 division). ``val/loss`` is a batch-size-weighted
    mean synchronised with ``sync_dist=True``; the per-clip losses are the same up to float32
    rounding (batches of 16 instead of 16 + 16 in another order), hence a relative 1e-5.
    Un-synchronised, rank 0 reports its own 16 clips: on this checkpoint that was checked to move
    val/loss by about 1e-3 relative and val/ua from 0.53 to 0.50, so the tolerances discriminate.
    """
    run, _ = ddp_run
    assert _split_counts(run)["val"] % 2 == 0  # no DistributedSampler padding
    ckpt = run / "checkpoints" / "best.ckpt"
    one = _validate(ckpt, "cpu", tmp_path)
    two = _validate(ckpt, "ddp_sim", tmp_path)
    assert (one["world_size"], two["world_size"]) == (1, 2)
    for key in ("val/ua", "val/wa", "val/f1"):
        assert two[key] == pytest.approx(one[key], abs=1e-6), key
    assert two["val/loss"] == pytest.approx(one["val/loss"], rel=1e-5)


def test_eval_with_a_ddp_trainer_runs_on_one_device(ddp_run, odd_corpus, tmp_path):
    run, _ = ddp_run
    r = run_script("eval.py", f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", "trainer=ddp_sim",
                   f"data.root={odd_corpus}", f"data.cache_dir={tmp_path / 'cache'}", cwd=tmp_path / "eval")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "eval.py runs on one device, not the 2 processes" in r.stdout + r.stderr
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    trained = json.loads((run / "metrics.json").read_text())
    assert evaluated["n"] == 31
    for key in ("ua", "wa", "macro_f1", "loss"):
        assert evaluated[key] == pytest.approx(trained[key], rel=1e-6), key


# ---------------------------------------------------------------------------- multirun + DDP
def _multirun(sweep: Path, *overrides: str, fresh_process: bool = True) -> subprocess.CompletedProcess:
    if not fresh_process:
        return run_script_in_process("train.py", "-m", f"hydra.sweep.dir={sweep}", *overrides)
    return subprocess.run([sys.executable, str(REPO / "train.py"), "-m", f"hydra.sweep.dir={sweep}", *overrides],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def test_multirun_with_script_launched_ddp_is_refused(odd_corpus, tmp_path):
    r = _multirun(tmp_path / "sweep", "trainer=ddp_sim", f"data.root={odd_corpus}",
                  f"data.cache_dir={tmp_path / 'cache'}", *QUICK, "optim.lr=1e-3,3e-3", fresh_process=False)
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.stderr[-3000:]
    assert "trainer.strategy=ddp with 2 processes cannot run in a Hydra multirun" in errors[0]
    assert "trainer.strategy=ddp_spawn" in errors[0] and "hydra/launcher=slurm" in errors[0]
    assert not list((tmp_path / "sweep").glob("*/metrics.json"))
    assert not (tmp_path / "cache").exists()  # refused before any data work


@pytest.mark.slow
def test_multirun_with_ddp_spawn_runs_every_job(odd_corpus, tmp_path):
    sweep = tmp_path / "sweep"
    r = _multirun(sweep, "trainer=ddp_sim", "trainer.strategy=ddp_spawn", f"data.root={odd_corpus}",
                  f"data.cache_dir={tmp_path / 'cache'}", *QUICK, *FOLDS, "optim.lr=1e-3,3e-3", fresh_process=False)
    assert r.returncode == 0, r.stderr[-3000:]
    for job in ("0", "1"):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert metrics["world_size"] == 2 and metrics["n"] == 31
        assert metrics["best_val_ua"] is not None  # restored from best.ckpt (not sent back by the workers)
        assert metrics["epochs"] == 1  # read from the workers' last.ckpt (QUICK: trainer.max_epochs=1)
    assert (sweep / "summary.md").is_file()


# -------------------------------------------------------------------------------------- SLURM
def test_slurm_launcher_config_composes():
    r = run_script_in_process("train.py", "hydra/launcher=slurm", "--cfg", "hydra")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher" in r.stdout
    cfg = _compose("hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2", hydra=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (2, 4, 4)
    assert cfg.hydra.runtime.choices["hydra/launcher"] == "slurm"


# ------------------------------------------------------------------------------ decode once
def _build_in_process(paths, cache_dir, barrier, queue) -> None:
    import ser_lightning.data.cache as cache
    from ser_lightning.data.audio import AudioConfig

    decode = cache._decode_all

    def slow_decode(*args, **kwargs):  # keep the build going while the other process arrives
        time.sleep(1.0)
        return decode(*args, **kwargs)

    cache._decode_all = slow_decode
    barrier.wait()
    opened = cache.build_or_load(paths, AudioConfig(sample_rate=16000, duration_s=0.5), cache_dir, progress=False)
    queue.put(opened.built)


def test_concurrent_processes_decode_the_cache_once(tiny_ravdess, tmp_path):
    """Two processes (DDP ranks started together, e.g. by torchrun) open the same cache at the
    same moment: the file lock makes one decode and the other wait and reuse it."""
    paths = sorted(str(p) for p in (tiny_ravdess / "ravdess" / "Actor_01").glob("*.wav"))
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_build_in_process, args=(paths, tmp_path / "cache", barrier, queue))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert sorted(queue.get(timeout=5) for _ in procs) == [False, True]
