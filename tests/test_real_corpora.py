"""TESS and TurEV-DB as distributed under ``$SER_DATA_DIR`` (skipped when absent): every file parses, with the
counts of /work/shared/data/README.md (TESS: 2798 of 2800 clips; TurEV-DB: 1735, complete)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from ser_lightning.data.scan import scan_corpus

pytestmark = pytest.mark.real_data


def _root(corpus: str) -> Path:
    root = os.environ.get("SER_DATA_DIR")
    if not root or not (Path(root) / corpus).is_dir():
        pytest.skip(f"real {corpus} not found under $SER_DATA_DIR")
    return Path(root)


def test_real_tess_parses_completely():
    scan = scan_corpus(_root("tess"), "tess")
    assert len(scan.utterances) == 2798 and scan.skipped == []
    assert Counter(u.speaker for u in scan.utterances) == {"tess_OAF": 1399, "tess_YAF": 1399}
    by_name = {Path(u.path).stem: u for u in scan.utterances}
    assert by_name["OA_bite_neutral"].speaker == "tess_OAF"  # the upstream prefix typo
    assert (by_name["YAF_back_angry"].emotion, by_name["OAF_bar_ps"].emotion) == ("angry", "pleasant_surprise")


def test_real_turev_parses_completely():
    scan = scan_corpus(_root("turev"), "turev")
    assert len(scan.utterances) == 1735 and scan.skipped == []
    assert Counter(u.emotion for u in scan.utterances) == {"angry": 487, "calm": 408, "happy": 357, "sad": 483}
    speakers = Counter(u.speaker for u in scan.utterances)
    assert set(speakers) == {f"turev_{s}" for s in (1157, 1234, 1358, 1984, 6783, 7895)}
    assert {u.emotion for u in scan.utterances if u.speaker == "turev_1157"} == {"angry", "sad"}
