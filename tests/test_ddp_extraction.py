"""Frozen-feature extraction spread over DDP processes: a real 2-process gloo run on the CPU against
the single-process extraction, plus the shard plan and merge it relies on.

The corpus has whole clips of varied lengths (0.6-1.5 s), so a batch's padded length would move the
encoder's rounding if the processes batched other clips together than one device does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ser_lightning.data.feature_cache import extraction_shard, merge_shards, shard_files
from tests.conftest import REPO

# argv: data root, cache dir, output dir. Built like train.py: the training trainer (2 gloo processes) first,
# then the extraction, twice (build, then reuse), then one epoch of fit on the cached frozen features with the
# process group the extraction started. Lightning's ddp launcher re-runs this script with LOCAL_RANK=1.
DDP_EXTRACT_SCRIPT = """
import json, sys
import lightning.pytorch as pl
from ser_lightning.data.datamodule import SERDataModule
from ser_lightning.modules.classifier import SERClassifier
from ser_lightning.modules.frozen_features import use_frozen_features

root, cache, out = sys.argv[1:4]
pl.seed_everything(0)
trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
dm = SERDataModule(root=root, cache_dir=cache, duration_s=2.0, clip_length="whole", split="speaker",
                   val_speakers=1, test_speakers=1, batch_size=8, progress=False)
if trainer.local_rank == 0:
    dm.prepare_data()
dm.setup("fit")
settings = {"name": "byol_s", "pool_each_layer": True, "extract_batch_size": 3}
model = SERClassifier(settings, {"name": "logmel"}, dm.class_names)
dm.set_frontend(model.frontend)
runs = []
for _ in range(2):
    c = use_frozen_features(model.network, dm, settings, progress=False, trainer=trainer)
    runs.append({"built": c.built, "directory": str(c.directory), "processes": c.extract_processes,
                 "clips_per_process": c.clips_per_process})
trainer.fit(model, datamodule=dm)
json.dump({"rank": trainer.global_rank, "world_size": trainer.world_size, "runs": runs,
           "epochs": trainer.current_epoch}, open(f"{out}/rank{trainer.global_rank}.json", "w"))
"""

SETTINGS = {"name": "byol_s", "pool_each_layer": True, "extract_batch_size": 3}


def _single_process(root: Path, cache: Path):
    """The same extraction in this process, on one device: ``(datamodule, opened cache)``."""
    import torch

    from ser_lightning.data.datamodule import SERDataModule
    from ser_lightning.modules.classifier import SERClassifier
    from ser_lightning.modules.frozen_features import use_frozen_features

    dm = SERDataModule(root=str(root), cache_dir=str(cache), duration_s=2.0, clip_length="whole", split="speaker",
                       val_speakers=1, test_speakers=1, batch_size=8, progress=False)
    dm.prepare_data()
    dm.setup("fit")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = SERClassifier(SETTINGS, {"name": "logmel"}, dm.class_names)
        dm.set_frontend(model.frontend)
        return dm, use_frozen_features(model.network, dm, SETTINGS, progress=False)
    finally:
        torch.set_num_threads(threads)


def test_two_process_extraction_equals_one_process_and_reuses_the_cache(varied_ravdess, tmp_path):
    script = tmp_path / "extract.py"
    script.write_text(DDP_EXTRACT_SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, str(script), str(varied_ravdess), str(tmp_path / "ddp_cache"), str(out)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (r.stdout + r.stderr).count("distributed_backend=gloo") == 1  # one process group, for both
    ranks = [json.loads((out / f"rank{k}.json").read_text()) for k in (0, 1)]
    assert [rk["rank"] for rk in ranks] == [0, 1] and all(rk["world_size"] == 2 for rk in ranks)
    # first call: computed by both processes; second call: reused; both agree on everything
    first, second = ranks[0]["runs"]
    assert first["built"] and not second["built"] and first["directory"] == second["directory"]
    assert ranks[1]["runs"] == ranks[0]["runs"] and first["processes"] == 2
    assert all(rk["epochs"] == 1 for rk in ranks)  # fit ran on the extraction's process group

    ddp_dir = Path(first["directory"])
    ddp = np.load(ddp_dir / "embeddings.npy")
    index = json.loads((ddp_dir / "index.json").read_text())
    n = len(index["rows"])
    # every clip once: each process embedded a share (merge_shards checks no clip is missed or repeated)
    assert sum(first["clips_per_process"]) == n and min(first["clips_per_process"]) > 0
    assert first["clips_per_process"] == [len(extraction_shard(n, 3, k, 2)) for k in (0, 1)]
    assert np.isfinite(ddp).all() and not list(ddp_dir.parent.glob("*.tmp-*"))

    # one process, fresh cache: same key, same rows (same batches, so the same padding)
    dm, single = _single_process(varied_ravdess, tmp_path / "one_cache")
    assert single.built and single.directory.name == ddp_dir.name and n == len(dm.cache_rows()[0])
    np.testing.assert_allclose(ddp, np.load(single.path), rtol=1e-6, atol=1e-7)
    # and one process reuses the cache the two processes built
    _, reused = _single_process(varied_ravdess, tmp_path / "ddp_cache")
    assert not reused.built and reused.directory == ddp_dir


@pytest.mark.parametrize("n,batch,world", [(64, 3, 2), (10, 4, 3), (5, 8, 2), (1, 1, 4), (97, 16, 8)])
def test_extraction_shards_cover_every_clip_once_in_single_device_batches(n, batch, world):
    shards = [extraction_shard(n, batch, k, world) for k in range(world)]
    assert np.array_equal(np.sort(np.concatenate(shards)), np.arange(n))
    single = [list(range(s, min(s + batch, n))) for s in range(0, n, batch)]
    for k, shard in enumerate(shards):
        # a process's batches, cut by its DataLoader, are the single-device batches k, k + world, ...
        cut = [shard[i:i + batch].tolist() for i in range(0, len(shard), batch)]
        assert cut == single[k::world]
    with pytest.raises(ValueError):
        extraction_shard(n, batch, world, world)


def _write_shard(directory: Path, rank: int, positions: list[int], width: int = 2) -> None:
    data_path, pos_path = shard_files(directory, rank)
    np.save(data_path, np.asarray(positions, dtype=np.float32)[:, None].repeat(width, 1))
    np.save(pos_path, np.asarray(positions, dtype=np.int64))


def test_merge_shards_places_rows_and_refuses_missing_or_repeated_clips(tmp_path):
    out = np.full((5, 2), np.nan, dtype=np.float32)
    _write_shard(tmp_path, 0, [0, 1, 4])
    _write_shard(tmp_path, 1, [2, 3])
    assert merge_shards(out, tmp_path, 2) == [3, 2]
    np.testing.assert_array_equal(out[:, 0], np.arange(5))
    _write_shard(tmp_path, 1, [1, 3])  # clip 1 twice, clip 2 never
    with pytest.raises(RuntimeError, match=r"1 clip\(s\) by no process \(positions \[2\]\) and 1 by more than one"):
        merge_shards(out, tmp_path, 2)
    with pytest.raises(RuntimeError, match="process 2 is missing"):
        merge_shards(out, tmp_path, 3)
