"""benchmarks/gpu_check.sh: its CPU rehearsal (--dry-run) and the parsing of what nvidia-smi samples."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from benchmarks.gpu_check import device_slug, parse_smi
from tests.conftest import REPO


def test_nvidia_smi_samples_are_summarised_per_gpu():
    lines = ["0, 97, 30210\n", "1, 40, 1200\n", "0, 53, 30500\n", "garbage\n", "1, [N/A], 1300\n", "1, 60, 1250\n"]
    got = parse_smi(lines)
    assert got["samples"] == 2
    assert got["per_gpu"]["0"] == {"util_mean_pct": 75.0, "util_max_pct": 97.0, "mem_max_mib": 30500.0}
    assert got["per_gpu"]["1"] == {"util_mean_pct": 50.0, "util_max_pct": 60.0, "mem_max_mib": 1250.0}
    assert parse_smi([]) == {"samples": 0, "per_gpu": {}}


def test_results_are_named_by_the_device():
    assert device_slug(["NVIDIA H100 80GB HBM3"], False) == "nvidia_h100_80gb_hbm3"
    assert device_slug(["NVIDIA H200", "NVIDIA H200"], False) == "2x_nvidia_h200"
    assert device_slug([], True) == "cpu_dry_run"


def test_dry_run_runs_every_step_on_the_cpu(tmp_path):
    """The prepared GPU script end to end on the CPU with tiny settings: the headline command for 2 epochs and
    the default model's feature extraction, with the numbers the GPU run reports."""
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--dry-run", "--out", str(tmp_path)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    res = json.loads((tmp_path / "gpu_check_cpu_dry_run.json").read_text())
    assert (tmp_path / "gpu_check_cpu_dry_run.md").is_file() and res["dry_run"] and res["gpus"] == 0
    head, ext = res["steps"]["headline"], res["steps"]["extraction"]
    assert "model=inception_v3" in head["command"] and head["hardware"]["devices"] == 1
    assert len(head["epoch_s"]) == 2 and all(s > 0 for s in head["epoch_s"])
    assert head["train_samples_per_epoch"] == 8  # 2 batches of 4 per epoch in the dry run
    assert head["samples_per_s"] == round(8 / head["epoch_s"][-1], 1)
    assert head["weights"].startswith("file: ") and head["gpu"] is None  # no nvidia-smi here
    assert "model=whisper_tiny" in ext["command"] and ext["extracted_clips"] == 64  # every generated clip
    assert ext["clips_per_s"] == round(64 / ext["extract_s"], 1)
    assert set(res["steps"]["ddp_default"]) == {"skipped"} and set(res["steps"]["ddp_inception_v3"]) == {"skipped"}
