"""Smoke runs of the performance benchmarks on generated audio: they run, print and
write well-formed JSON. Full runs on real RAVDESS are by hand (``make bench``)."""

from __future__ import annotations

import json

import pytest


def _load(path):
    data = json.loads(path.read_text())
    assert data["smoke"] is True
    assert len(data["machine"]["loadavg_1_5_15"]) == 3
    return data


def test_pipeline_smoke(tmp_path, capsys):
    pytest.importorskip("librosa")  # the reference pipeline (a); in the dev extra
    from benchmarks import pipeline

    out = tmp_path / "pipeline.json"
    assert pipeline.main(["--smoke", "--out", str(out)]) == 0
    data = _load(out)
    a, b = data["reference_a"], data["ser_lightning_b"]
    assert a["items"] == 16 and a["of_items"] == data["settings"]["train_clips"] > 16
    assert a["extrapolated"] is True
    # (b) delivers every training clip once per epoch
    assert [e["samples"] for e in b["epochs"]] == [data["settings"]["train_clips"]]
    assert a["samples_per_s"] > 0 and b["samples_per_s"] > 0
    assert data["ratio_b_over_a"] == pytest.approx(b["samples_per_s"] / a["samples_per_s"], rel=0.01)
    assert set(data["stage_ms_per_batch"]) >= {"loader", "wave_augment", "frontend", "spec_augment"}
    assert [(s["workers"], s["batch_size"]) for s in data["scaling"]] == [(0, 16)]
    # one a-vs-b comparison per worker count (smoke: 0 only); the headline is the last one
    assert [c["workers"] for c in data["by_workers"]] == [0] and data["headline_workers"] == 0
    assert data["by_workers"][0]["ratio_b_over_a"] == data["ratio_b_over_a"]
    best = data["best_b_over_best_a"]
    assert best["ratio_b_over_a"] == pytest.approx(best["b_samples_per_s"] / best["a_samples_per_s"], rel=0.01)
    assert data["frontend_only_samples_per_s"] > 0 and data["host_only_loader_samples_per_s_estimate"] > 0
    assert "ratio b/a" in capsys.readouterr().out


def test_reference_dataset_matches_frontend_shape(tiny_ravdess):
    pytest.importorskip("librosa")
    from benchmarks.pipeline import ReferenceMelDataset
    from ser_lightning.features.frontend import LogMelFrontend

    path = next((tiny_ravdess / "ravdess").rglob("*.wav"))
    feats, label = ReferenceMelDataset([str(path)], [3])[0]
    # (a) and (b) deliver the same feature geometry: (1, n_mels, frames) for 3 s at 16 kHz
    assert tuple(feats.shape) == LogMelFrontend().output_shape(48000) and label == 3
    assert abs(float(feats.mean())) < 1e-3  # standardised per utterance


def test_cache_build_smoke(tmp_path):
    from benchmarks import cache_build

    out = tmp_path / "cache_build.json"
    assert cache_build.main(["--smoke", "--out", str(out)]) == 0
    data = _load(out)
    n = data["audio"]["files"]
    assert data["cold_build"]["files"] == n and data["cold_build"]["seconds"] > 0
    assert data["reopen"]["build_or_load_s"] > 0
    assert [(s["repeat"], s["files"]) for s in data["scaling"]] == [(1, n), (2, 2 * n)]
    # float16 cache: 2 bytes per sample, 3 s at 16 kHz per file (plus a small index)
    assert data["scaling"][1]["cache_bytes"] >= 2 * n * 48000 * 2


def test_train_throughput_smoke(tmp_path):
    from benchmarks import train_throughput

    out = tmp_path / "train_throughput.json"
    assert train_throughput.main(["--smoke", "--out", str(out)]) == 0
    data = _load(out)
    (row,) = data["results"]
    assert row["config"] == "homebrew_cnn" and "error" not in row
    assert row["steps"] >= 2 and row["samples_per_s"] > 0 and row["step_samples_per_s"] >= row["samples_per_s"]
    assert row["peak_rss_mb"] > 50
    assert row["gpu_util_mean_pct"] is None or 0 <= row["gpu_util_mean_pct"] <= 100


def test_bad_arguments_exit_with_a_message(capsys):
    from benchmarks import cache_build, train_throughput

    with pytest.raises(SystemExit):
        cache_build.main(["--repeats", "0"])
    assert "--repeats" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_throughput.main(["--configs", "nope"])
    assert "nope" in capsys.readouterr().err


# ---- the fast paths the benchmarks motivated keep the results unchanged
@pytest.mark.parametrize("name, kwargs", [("logmel", {}), ("logmel", {"normalize": "none"}), ("mfcc", {"deltas": 2})])
def test_fast_frontend_matches_torchaudio_forward(name, kwargs, monkeypatch):
    import torch

    import ser_lightning.features.frontend as frontend_mod

    torch.manual_seed(0)
    wave = torch.randn(4, 16000) * torch.tensor([[1.0], [0.1], [1e-3], [0.0]])  # includes a silent item
    fe = frontend_mod.build_frontend(name, **kwargs)
    fast = fe(wave)
    monkeypatch.setattr(frontend_mod, "_capturing_graph", lambda: True)  # torchaudio's own forward
    reference = fe(wave)
    assert fast.dtype == reference.dtype == torch.float32 and fast.shape == reference.shape
    # same features to float32 rounding (dB values span ~80 dB; standardised values ~±5)
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-4)


def test_batched_item_fetch_matches_per_item(tmp_path):
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from ser_lightning.data.datamodule import CachedWaveDataset, WaveBatch, collate_batch

    waves = np.lib.format.open_memmap(tmp_path / "waves.npy", mode="w+", dtype=np.float16, shape=(10, 50))
    waves[:] = np.random.default_rng(0).standard_normal((10, 50))
    waves.flush()
    ds = CachedWaveDataset(tmp_path / "waves.npy", rows=np.array([7, 2, 9, 0]), labels=np.array([1, 2, 3, 4]))
    batch = ds.__getitems__([3, 1, 2])
    assert isinstance(batch, WaveBatch) and batch.target.tolist() == [4, 2, 3]
    assert batch.waves.dtype == torch.float32 and batch.target.dtype == torch.int64
    assert torch.equal(batch.waves, torch.stack([ds[i][0] for i in [3, 1, 2]]))
    assert collate_batch(batch) is batch  # already a batch: not split and copied back together
    # the datamodule's loader settings: the same batch as default collation of per-item fetches
    (x, y), = list(DataLoader(ds, batch_size=4, shuffle=False, collate_fn=collate_batch))
    assert torch.equal(x, torch.stack([ds[i][0] for i in range(4)])) and y.tolist() == [1, 2, 3, 4]
    per_item = collate_batch([ds[i] for i in range(4)])  # anything but a WaveBatch: default_collate
    assert torch.equal(per_item[0], x) and per_item[1].tolist() == [1, 2, 3, 4]


def test_pin_memory_setting():
    from types import SimpleNamespace

    import torch

    from ser_lightning.data.datamodule import SERDataModule

    dm = SERDataModule()  # default pin_memory="auto"
    assert dm._pin_memory() is False  # no trainer
    dm.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cpu")))
    assert dm._pin_memory() is False
    dm.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cuda", 0)))
    assert dm._pin_memory() is True
    assert SERDataModule(pin_memory=True)._pin_memory() is True
    with pytest.raises(ValueError, match="data.pin_memory"):
        SERDataModule(pin_memory="yes")
    with pytest.raises(ValueError, match="data.num_workers"):
        SERDataModule(num_workers=-1)


def test_cv_results_writer_names_the_row_and_its_command(tmp_path):
    from benchmarks.encoder_cv import write_results

    payload = {"name": "probe", "folds": "emobox", "date": "2026-11-29", "command": "python -m benchmarks.encoder_cv"}
    md = write_results(tmp_path, payload, {"ua": (75.04, 4.8), "wa": (75.0, 4.7), "macro_f1": (74.6, 4.3)}, 6,
                       ["0.62", "0"], "minutes per fold, extraction s")
    assert md.startswith("| probe | emobox | 75.0 ± 4.8 | 75.0 ± 4.7 | 74.6 ± 4.3 | 0.62 | 0 |")
    assert "over 6 folds" in md and "`python -m benchmarks.encoder_cv`" in md
    assert (tmp_path / "cv_probe_emobox.md").read_text() == md
    assert json.loads((tmp_path / "cv_probe_emobox.json").read_text()) == payload
    write_results(tmp_path, {**payload, "name": "crops2.5s"}, {"ua": (1, 0), "wa": (1, 0), "macro_f1": (1, 0)}, 6)
    assert (tmp_path / "cv_crops2.5s_emobox.json").is_file() and (tmp_path / "cv_crops2.5s_emobox.md").is_file()


def test_cv_runs_folds_in_parallel_and_keeps_the_folds_that_finished(tmp_path, monkeypatch):
    import threading
    import time

    import benchmarks.encoder_cv as cv

    running, peak, lock = [0], [0], threading.Lock()

    def fake_fold(k, a):  # stands in for one fold's train.py subprocess
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        if k == 2:
            return None  # a failed fold
        return {"fold": k, "ua": 0.5 + k / 100, "wa": 0.5, "macro_f1": 0.5, "best_val_ua": 0.6, "epochs": 3,
                "wall_s": 1.0, "extract_s": 0.0, "train_min": 0.02, "training_input": "waveform"}

    monkeypatch.setattr(cv, "run_fold", fake_fold)
    rc = cv.main(["--name", "par", "--folds", "contiguous", "--jobs", "3", "--out-dir", str(tmp_path), "--", "x=1"])
    assert rc == 1  # one fold failed: the exit status says so
    assert peak[0] == 3  # three folds at a time
    out = json.loads((tmp_path / "cv_par_contiguous.json").read_text())
    assert [r["fold"] for r in out["per_fold"]] == [0, 1, 3, 4, 5] and out["failed_folds"] == [2]
    assert out["jobs"] == 3 and "--jobs 3" in out["command"]
    assert "over 5 folds" in (tmp_path / "cv_par_contiguous.md").read_text()
    with pytest.raises(SystemExit):
        cv.main(["--name", "bad", "--jobs", "0"])
