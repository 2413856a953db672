"""Shared fixtures: generated corpora in each corpus's naming convention, config composition."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


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
def real_data_root() -> Path:
    """``$SER_DATA_DIR`` holding the real RAVDESS; the test is skipped when it is absent."""
    root = os.environ.get("SER_DATA_DIR")
    if not root or not (Path(root) / "ravdess").is_dir():
        pytest.skip("real RAVDESS not found under $SER_DATA_DIR")
    return Path(root).resolve()


def run_script(script: str, *overrides: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python <script> overrides...`` from the repo root with outputs under ``cwd``."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, str(REPO / script), f"hydra.run.dir={cwd}", *overrides],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )


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
