"""Shared fixtures: generated corpora in each corpus's naming convention, config composition."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import runpy
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """Under mutation testing (``make mutants``: mutmut runs the tests in its copy ``mutants/`` and sets
    ``MUTANT_UNDER_TEST``), refuse to run unless the package the tests import is that copy's: a ``ser_lightning``
    found elsewhere first on the path (an editable install, ``PYTHONPATH``) would let every mutant survive."""
    if os.environ.get("MUTANT_UNDER_TEST"):
        import ser_lightning

        imported = Path(ser_lightning.__file__).resolve().parents[1]
        if imported != REPO:
            raise pytest.UsageError(f"mutation testing: the tests in {REPO} import ser_lightning from {imported}, "
                                    "not the mutated copy beside them")


def tone(freq_hz: float, duration_s: float, sample_rate: int, seed: int = 0, channels: int = 1) -> np.ndarray:
    """A noisy sine ``(frames, channels)`` — different emotions get different pitches."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    x = 0.5 * np.sin(2 * np.pi * freq_hz * t) + 0.05 * rng.standard_normal(len(t))
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


def make_ravdess(root: Path, actors=range(1, 9), statements=(1, 2), sample_rate=22050, duration_s=1.0, ext="wav") -> Path:
    """Write RAVDESS-named clips ``root/ravdess/Actor_AA/03-01-EE-01-SS-01-AA.<ext>``."""
    base = root / "ravdess"
    for a in actors:
        d = base / f"Actor_{a:02d}"
        d.mkdir(parents=True, exist_ok=True)
        for e in range(1, 9):
            for s in statements:
                x = tone(200 + 60 * e, duration_s + 0.1 * s, sample_rate, seed=a * 100 + e * 10 + s)
                sf.write(d / f"03-01-{e:02d}-01-{s:02d}-01-{a:02d}.{ext}", x, sample_rate)
    return root


@pytest.fixture(scope="session")
def tiny_ravdess(tmp_path_factory) -> Path:
    """Data root holding 8 actors × 8 emotions × 2 statements (128 clips, 22.05 kHz WAV)."""
    return make_ravdess(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def varied_ravdess(tmp_path_factory) -> Path:
    """4 actors × 8 emotions × 2 statements whose clips last 0.6 s and 1.5 s (16 kHz WAV): whole-clip batches
    of mixed lengths."""
    root = tmp_path_factory.mktemp("varied")
    for s, dur in ((1, 0.5), (2, 1.3)):
        make_ravdess(root, actors=range(1, 5), statements=(s,), sample_rate=16000, duration_s=dur)
    return root


def whole_clip_datamodule(root: Path, cache: Path, **kw):
    """A set-up ``SERDataModule`` of whole clips (≤ 2 s) over ``root``: 1 validation and 1 test speaker, batches of 8."""
    from ser_lightning.data.datamodule import SERDataModule

    dm = SERDataModule(root=str(root), cache_dir=str(cache), duration_s=2.0, clip_length="whole", split="speaker",
                       val_speakers=1, test_speakers=1, batch_size=8, progress=False, **kw)
    dm.setup("fit")
    return dm


@pytest.fixture(scope="session")
def real_data_root() -> Path:
    """``$SER_DATA_DIR`` holding the real RAVDESS; the test is skipped when it is absent."""
    root = os.environ.get("SER_DATA_DIR")
    if not root or not (Path(root) / "ravdess").is_dir():
        pytest.skip("real RAVDESS not found under $SER_DATA_DIR")
    return Path(root).resolve()


def run_script(script: str, *overrides: str, cwd: Path, timeout: int = 600,
               fresh_process: bool = False) -> subprocess.CompletedProcess:
    """Run ``python <script> overrides...`` from the repo root with outputs under ``cwd``.

    By default the script runs in this interpreter (:func:`run_script_in_process`), which saves the
    seconds a new Python spends importing torch, Lightning and Hydra; ``fresh_process=True`` runs it
    in a new interpreter: needed where the run starts processes of its own (``trainer=ddp_sim``
    re-launches ``sys.argv``), kills itself, or runs next to other runs in threads. ``timeout`` (seconds)
    applies to a fresh process only.
    """
    if not fresh_process:
        return run_script_in_process(script, f"hydra.run.dir={cwd}", *overrides)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, str(REPO / script), f"hydra.run.dir={cwd}", *overrides],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )


def _fresh_torch_threads() -> int:
    """torch's intra-op thread count in a new interpreter: ``OMP_NUM_THREADS`` if set, else torch's default."""
    import torch

    return torch.get_num_threads()


_FRESH_TORCH_THREADS = _fresh_torch_threads()  # read before any test changes it


@contextlib.contextmanager
def _isolated_process_state():
    """Run with the torch thread count a fresh interpreter starts with, then put back what a script run
    changes process-wide: the working directory, the environment, the RNGs, torch's thread count and
    deterministic mode, warning filters, logging handlers and levels, and Hydra's global state (so a
    later ``initialize_config_dir`` or ``HydraConfig.initialized()`` sees none)."""
    import random

    import torch
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    cwd, environ, argv = os.getcwd(), dict(os.environ), sys.argv[:]
    rng = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    log_state = {lg: (lg.level, lg.handlers[:], lg.propagate, lg.disabled) for lg in loggers}
    disabled = logging.root.manager.disable
    torch.set_num_threads(_FRESH_TORCH_THREADS)  # e.g. under the one_thread fixture
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # as PYTHONWARNINGS=ignore in a fresh process
            yield
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environ)
        sys.argv[:] = argv
        random.setstate(rng[0])
        np.random.set_state(rng[1])
        torch.set_rng_state(rng[2])
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        for lg, (level, handlers, propagate, was_disabled) in log_state.items():
            for h in lg.handlers:
                if h not in handlers:
                    h.close()
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate, lg.disabled = propagate, was_disabled
        logging.disable(disabled)
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None


def run_script_in_process(script: str, *args: str) -> subprocess.CompletedProcess:
    """``python <script> args...`` run in this interpreter, as ``__main__``, from the repo root.

    The script's Hydra entry point runs exactly as from the command line (argument parsing, run
    directory, job logging, a user error's one line on stderr and exit status 1); its stdout and
    stderr are captured and the exit status is read from ``SystemExit``. Process-wide state the run
    changes is put back afterwards (:func:`_isolated_process_state`).

    Returns:
        A ``CompletedProcess`` with ``returncode``, ``stdout`` and ``stderr`` as a fresh process gives them.
    """
    path = str(REPO / script)
    return _run_main([path, *args], lambda: runpy.run_path(path, run_name="__main__"))


def run_module_in_process(module: str, *args: str) -> subprocess.CompletedProcess:
    """``python -m <module> args...`` run in this interpreter, like :func:`run_script_in_process`."""
    return _run_main([module, *args], lambda: runpy.run_module(module, run_name="__main__", alter_sys=True))


def _run_main(argv: list[str], run) -> subprocess.CompletedProcess:
    """Call ``run()`` with ``sys.argv = argv`` from the repo root, capturing output and the exit status."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with _isolated_process_state(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        os.chdir(REPO)
        sys.argv[:] = argv
        try:
            run()
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            if not isinstance(exit_.code, (int, type(None))):
                print(exit_.code, file=sys.stderr)
        except Exception:  # as an uncaught exception in a fresh interpreter: traceback and status 1
            traceback.print_exc()
            code = 1
    return subprocess.CompletedProcess([sys.executable, *argv], code, out.getvalue(), err.getvalue())


TINY_DATA = ["data.val_speakers=2", "data.test_speakers=2", "data.duration_s=1.0", "data.batch_size=16"]


@pytest.fixture(scope="session")
def trained_members(tiny_ravdess, tmp_path_factory) -> list[Path]:
    """Best checkpoints of two short runs on the tiny corpus: log-mel CNN and MFCC CNN."""
    base = tmp_path_factory.mktemp("members")
    ckpts = []
    for i, extra in enumerate([["features=logmel"], ["features=mfcc", "seed=7"]]):
        run = base / f"run{i}"
        r = run_script("train.py", "model=homebrew_cnn", f"data.root={tiny_ravdess}",
                       f"data.cache_dir={base / 'cache'}", "trainer.max_epochs=2",
                       "callbacks.progress_bar=null", *TINY_DATA, *extra, cwd=run)
        assert r.returncode == 0, r.stderr[-3000:]
        ckpts.append(run / "checkpoints" / "best.ckpt")
    return ckpts


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op torch thread for a module of small-tensor tests (avoids oversubscription)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
