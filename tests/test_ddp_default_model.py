"""Multi-process runs of the default model that end: ``trainer=ddp_sim`` (2 gloo processes on the CPU) with the
default model (frozen Whisper tiny.en, cached frozen features, full-batch L-BFGS, refit) and with every optimiser
config of ``conf/optim/``, each under a timeout; the settings that cannot run refused before any process
starts; SIGTERM ending every process within seconds; the collective timeout.

Every multi-process run here starts in its own session and is killed as a whole on timeout, so that a hang
fails the test instead of leaving processes behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from tests.conftest import REPO, make_ravdess, run_script_in_process

#: Seconds a 2-process run of the tiny corpus may take (about 40 s on 2 idle cores) before it counts as hung.
RUN_TIMEOUT_S = 420
#: The default model on the tiny corpus: whole clips of ~1.2 s; the default data.batch_size (2048) holds the
#: whole training set, as the default model wants.
QUICK = ["data.duration_s=2.0", "callbacks.progress_bar=null", "callbacks.model_summary=null"]
FOLDS = ["data.split=kfold", "data.n_folds=4", "data.fold=0"]  # test = actors 1-2, validation 2 other actors
#: Every optimiser config but the default model's own (optim=lbfgs: the first test).
OPTIM_CONFIGS = sorted(p.stem for p in (REPO / "ser_lightning" / "conf" / "optim").glob("*.yaml") if p.stem != "lbfgs")
#: How many of those runs go at once. A run's own wall time is mostly two start-ups one after the other (rank 0
#: imports, then rank 1 does while rank 0 waits), one core idle. Measured on 2 cores, the 5 runs took 74 s one
#: at a time, 49 s two at a time, 44 s three at a time.
PARALLEL_RUNS = 3


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Tiny RAVDESS (8 actors x 16 clips)."""
    return make_ravdess(tmp_path_factory.mktemp("ddp_default_data"))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One audio and frozen-feature cache for the module's runs (the first run extracts, the others reuse)."""
    return tmp_path_factory.mktemp("ddp_default_cache")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (ended, not yet reaped by its parent) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _start(*overrides: str, run_dir: Path) -> subprocess.Popen:
    """``python train.py hydra.run.dir=<run_dir> <overrides>`` in a session of its own (the ranks Lightning
    starts belong to it)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), f"hydra.run.dir={run_dir}", *overrides],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _finish(proc: subprocess.Popen, timeout_s: float = RUN_TIMEOUT_S) -> tuple[int | None, str]:
    """Wait for a run started by :func:`_start`; one that has not ended after ``timeout_s`` is killed (the whole
    session). Returns ``(exit code, stdout + stderr)``; the exit code is ``None`` for a run killed as hung."""
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return None, out + err
    return proc.returncode, out + err


def _head(ckpt: Path) -> dict[str, torch.Tensor]:
    """The trained tensors of a checkpoint (the frozen encoder left out)."""
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    return {k: v for k, v in state.items() if not k.startswith("network.encoder.")}


# ------------------------------------------------------------------------------------------- the default model
def test_default_model_trains_under_ddp_exactly_as_on_one_process(corpus, cache_dir, tmp_path):
    """``trainer=ddp_sim`` with the default model ends, and fits what one process fits: every process fits the
    same full batch (the cached frozen features of all training clips), so the metrics are those of the 1-process
    run and the validation-selected head its head up to float rounding (Lightning re-seeds the processes when
    their group starts, so the one batch comes in another order: sums round differently, by about 1e-7). The
    refit runs on rank 0 alone, as on one process: bit for bit. Fitting each process's own shard instead
    (Lightning's DistributedSampler) moves the head by far more, or hangs."""
    common = [f"data.root={corpus}", f"data.cache_dir={cache_dir}", *FOLDS, *QUICK, "trainer.max_epochs=3"]
    # Side by side (each start-up leaves a core idle); the one-process run is fresh too: one intra-op thread
    # each. They share the cache: whichever comes first extracts, the other waits for its lock and reuses it.
    runs = {"ddp": _start("trainer=ddp_sim", *common, run_dir=tmp_path / "ddp"),
            "one": _start("trainer=cpu", *common, run_dir=tmp_path / "one")}
    done = {name: _finish(proc) for name, proc in runs.items()}
    for name, (code, log) in done.items():
        assert code is not None, f"the {name} run hung (no end after {RUN_TIMEOUT_S} s):\n{log[-3000:]}"
        assert code == 0, f"the {name} run: exit code {code}\n{log[-3000:]}"
    log = done["ddp"][1]
    assert "distributed_backend=gloo" in log and "MEMBER: 2/2" in log and "collective_timeout_s=300" in log
    ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    single = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert (ddp["world_size"], single["world_size"]) == (2, 1)
    assert ddp["training_input"].startswith("frozen-feature path") and ddp["refit"]["epochs"] >= 1
    for key in ("ua", "wa", "macro_f1", "loss", "best_val_ua", "epochs"):
        assert ddp[key] == single[key], key
    for key in ("ua", "wa", "macro_f1"):
        assert ddp["selected_model"][key] == single["selected_model"][key], key
    assert ddp["refit"]["epochs"] == single["refit"]["epochs"]
    for name, tolerance in (("best.ckpt", {"rtol": 1e-5, "atol": 1e-5}), ("refit.ckpt", {"rtol": 0, "atol": 0})):
        a, b = _head(tmp_path / "ddp" / "checkpoints" / name), _head(tmp_path / "one" / "checkpoints" / name)
        assert a.keys() == b.keys() and a
        for key in a:
            torch.testing.assert_close(a[key], b[key], **tolerance, msg=lambda m, n=name, k=key: f"{n} {k}: {m}")


def test_every_optimiser_config_is_tested():
    assert len(OPTIM_CONFIGS) >= 5 and (REPO / "ser_lightning" / "conf" / "optim" / "lbfgs.yaml").is_file()


@pytest.fixture(scope="module")
def optimiser_runs(corpus, cache_dir, tmp_path_factory) -> dict[str, tuple[Path, int | None, str]]:
    """``train.py trainer=ddp_sim optim=<config>`` for every config of :data:`OPTIM_CONFIGS`, each its own run
    (its own processes, run directory and exit code), :data:`PARALLEL_RUNS` at a time.

    Returns:
        ``{config: (run directory, exit code or None if killed as hung, stdout + stderr)}``.
    """
    root = tmp_path_factory.mktemp("ddp_optim")

    def one(optim: str) -> tuple[Path, int | None, str]:
        run_dir = root / optim
        proc = _start("trainer=ddp_sim", f"optim={optim}", f"data.root={corpus}", f"data.cache_dir={cache_dir}",
                      *FOLDS, *QUICK, "trainer.max_epochs=2", "refit=false", run_dir=run_dir)
        return (run_dir, *_finish(proc))

    with ThreadPoolExecutor(max_workers=PARALLEL_RUNS) as pool:
        return dict(zip(OPTIM_CONFIGS, pool.map(one, OPTIM_CONFIGS)))


@pytest.mark.parametrize("optim", OPTIM_CONFIGS)
def test_default_model_trains_under_ddp_with_every_optimiser_config(optim, optimiser_runs):
    """The first-order optimisers (each process its shard of the training clips, gradients all-reduced) with
    the default model's frozen encoder and cached frozen features: every config's own ``train.py trainer=ddp_sim``
    run ends (the runs go side by side: :func:`optimiser_runs`)."""
    run_dir, code, log = optimiser_runs[optim]
    assert code is not None, f"train.py optim={optim} hung (no end after {RUN_TIMEOUT_S} s):\n{log[-3000:]}"
    assert code == 0, f"optim={optim}: exit code {code}\n{log[-3000:]}"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["epochs"] == 2 and metrics["n"] == 32, optim
    assert metrics["model"] == "whisper_tiny" and metrics["training_input"].startswith("frozen-feature path"), optim


@pytest.mark.parametrize(("override", "message"), [
    ("trainer.strategy=fsdp", "optim.name=lbfgs cannot train under trainer.strategy=fsdp"),
    ("trainer.strategy=deepspeed_stage_2", "optim.name=lbfgs cannot train under trainer.strategy=deepspeed_stage_2"),
    ("trainer.accumulate_grad_batches=2", "optim.name=lbfgs cannot train with trainer.accumulate_grad_batches=2"),
])
def test_what_cannot_run_distributed_is_refused_in_one_line_before_any_process_starts(override, message, corpus,
                                                                                       tmp_path):
    r = run_script_in_process("train.py", f"hydra.run.dir={tmp_path / 'run'}", "trainer=ddp_sim", override,
                              f"data.root={corpus}", f"data.cache_dir={tmp_path / 'cache'}", *QUICK)
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], r.stderr[-2000:]
    assert "MEMBER" not in r.stdout + r.stderr  # no process group was formed
    assert not (tmp_path / "cache").exists()  # refused before any audio was read


# ---------------------------------------------------------------------------------------------------- SIGTERM
SIGTERM_TARGETS = ["rank 0 alone", "every process"]


@pytest.fixture(scope="module")
def hung_runs(corpus, cache_dir, tmp_path_factory):
    """One hanging run (``tests/hang.py``) per :data:`SIGTERM_TARGETS`, both started at once: the second run's
    start-up goes on while the first is tested (each start-up leaves a core idle), and it then waits, hung,
    for its own test. Yields ``{target: (process, marker dir)}``; whatever is left is killed at the end."""
    root = tmp_path_factory.mktemp("ddp_hung")
    runs = {}
    for k, target in enumerate(SIGTERM_TARGETS):
        markers = root / f"markers{k}"
        runs[target] = (_start("trainer=ddp_sim", f"data.root={corpus}", f"data.cache_dir={cache_dir}", *FOLDS,
                               *QUICK, "+callbacks.hang._target_=tests.hang.HangInFit",
                               f"+callbacks.hang.marker_dir={markers}", run_dir=root / f"run{k}"), markers)
    yield runs
    for proc, _ in runs.values():
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)


@pytest.mark.parametrize("target", SIGTERM_TARGETS)
def test_sigterm_ends_every_process_of_a_hung_run_within_seconds(target, hung_runs):
    """A run hung in ``fit`` (rank 0 blocked in a collective no other process joins, rank 1 asleep;
    ``tests/hang.py``) gets SIGTERM: sent to rank 0 alone (``kill <pid>``) or to every process (``timeout``,
    SLURM). All its processes are gone within seconds, long before the collective timeout (300 s)."""
    (proc, markers), pids = hung_runs[target], []
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not all((markers / f"rank{k}.pid").is_file() for k in (0, 1)):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the run did not reach fit"
            time.sleep(0.2)
        time.sleep(1.0)  # rank 0 is inside the barrier, rank 1 asleep
        pids = [int((markers / f"rank{k}.pid").read_text()) for k in (0, 1)]
        assert pids[0] == proc.pid and all(_alive(p) for p in pids)
        sent = time.monotonic()
        if target == "every process":
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            os.kill(proc.pid, signal.SIGTERM)
        while any(_alive(p) for p in pids) and time.monotonic() - sent < 30:
            time.sleep(0.1)
            proc.poll()
        took_s = time.monotonic() - sent
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None or any(_alive(p) for p in pids):
            os.killpg(proc.pid, signal.SIGKILL)
    assert not any(_alive(p) for p in pids), f"processes left {took_s:.0f} s after SIGTERM:\n{err[-3000:]}"
    assert took_s < 15, f"{took_s:.1f} s"
    assert proc.returncode != 0


def test_the_watchdog_ends_a_process_blocked_in_native_code_and_its_children(tmp_path):
    """A process blocked in C++ (a key that never comes, like a collective that never completes) runs no
    Python signal handler; the watchdog forwards SIGTERM to its child and ends it with exit code 143."""
    script = tmp_path / "blocked.py"
    script.write_text(
        "import datetime, subprocess, sys, time\n"
        "import torch.distributed as dist\n"
        "from ser_lightning.distributed import install_sigterm_watchdog\n"
        "assert install_sigterm_watchdog(grace_s=2.0)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(tmp_path / 'child.pid')!r}, 'w').write(str(child.pid))\n"
        "store = dist.TCPStore('127.0.0.1', 0, 1, True, timeout=datetime.timedelta(seconds=600))\n"
        "store.get('never')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "child.pid").is_file():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
            time.sleep(0.1)
        time.sleep(2.0)  # in store.get
        child = int((tmp_path / "child.pid").read_text())
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
        took_s = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == 128 + signal.SIGTERM and 1.5 < took_s < 8, (code, took_s, proc.stderr.read()[-2000:])
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


# ------------------------------------------------------------------------------------------ collective timeout
def test_the_process_group_gets_the_configured_collective_timeout(tmp_path):
    from ser_lightning.hardware import trainer_from_config

    with initialize_config_dir(str(REPO / "ser_lightning" / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["trainer=ddp_sim", "trainer.collective_timeout_s=42",
                                          f"trainer.default_root_dir={tmp_path}"])
    trainer = trainer_from_config(cfg.trainer, logger=False, callbacks=[])
    assert trainer.world_size == 2 and trainer.strategy._timeout.total_seconds() == 42
    with initialize_config_dir(str(REPO / "ser_lightning" / "conf"), version_base="1.3"):
        bad = compose("train", overrides=["trainer=ddp_sim", "trainer.collective_timeout_s=0",
                                          f"trainer.default_root_dir={tmp_path}"])
    with pytest.raises(ValueError, match=r"trainer\.collective_timeout_s=0 must be a positive number of seconds"):
        trainer_from_config(bad.trainer, logger=False, callbacks=[])


def test_lbfgs_sees_the_mean_objective_of_the_processes_with_its_own_gradient():
    from ser_lightning.modules.optim import same_objective_on_every_process

    class TwoProcesses:  # what DDPStrategy.reduce(..., "mean") returns when the other process's loss is 3.0
        def reduce(self, tensor, reduce_op):
            assert reduce_op == "mean" and not tensor.requires_grad
            return (tensor + 3.0) / 2

    w = torch.tensor(2.0, requires_grad=True)
    out = same_objective_on_every_process(w * w, TwoProcesses())
    assert out.item() == (4.0 + 3.0) / 2
    out.backward()
    assert w.grad.item() == 4.0  # d(w^2)/dw: this process's own gradient (DDP all-reduces it)
