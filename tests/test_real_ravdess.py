"""Integration test on the real RAVDESS under ``$SER_DATA_DIR`` (skipped when absent)."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest

from ser_lightning.data.scan import scan_corpus
from tests.conftest import run_script

pytestmark = pytest.mark.real_data


def test_real_ravdess_parses_completely(real_data_root):
    scan = scan_corpus(real_data_root, "ravdess")
    assert len(scan.utterances) == 1440 and scan.skipped == []
    assert len({u.speaker for u in scan.utterances}) == 24
    counts = Counter(u.emotion for u in scan.utterances)
    assert counts["neutral"] == 96 and all(counts[e] == 192 for e in counts if e != "neutral")
    assert {u.gender for u in scan.utterances if u.speaker == "ravdess_07"} == {"male"}


def test_real_ravdess_trains_speaker_independently(real_data_root, tmp_path):
    speakers = [f"ravdess_{i:02d}" for i in range(1, 7)]
    run = tmp_path / "run"
    r = run_script(
        "train.py", "model=homebrew_cnn", "debug=fast", f"data.root={real_data_root}", f"data.cache_dir={tmp_path / 'cache'}",
        f"data.speakers=[{','.join(speakers)}]", "data.val_speakers=1", "data.test_speakers=1", cwd=run,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    with open(run / "split.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 360
    split_speakers = {s: {r["speaker"] for r in rows if r["split"] == s} for s in ("train", "val", "test")}
    assert [len(split_speakers[s]) for s in ("train", "val", "test")] == [4, 1, 1]
    assert not (split_speakers["train"] & split_speakers["test"])
    assert json.loads((run / "metrics.json").read_text())["labels"][1] == "calm"
