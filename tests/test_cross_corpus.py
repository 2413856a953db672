"""Cross-corpus runs: the plan, scores over scorable classes, and a run over two generated corpora."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from ser_lightning.cli.cross_corpus import present_corpora, scorable_scores, training_sets
from tests.conftest import make_ravdess, run_script
from tests.test_unknown_labels import make_emodb


def test_training_sets_of_both_plans():
    assert training_sets("train", ["ravdess", ["cremad", "tess"]], ["ravdess", "cremad", "tess", "emodb"]) == [
        ["ravdess"], ["cremad", "tess"]]
    assert training_sets("loco", None, ["a", "b", "c"]) == [["b", "c"], ["a", "c"], ["a", "b"]]
    with pytest.raises(ValueError, match="cross.mode='lopo'"):
        training_sets("lopo", None, ["a", "b"])
    with pytest.raises(ValueError, match="at least two present corpora"):
        training_sets("loco", None, ["a"])
    with pytest.raises(ValueError, match="cross.train is empty"):
        training_sets("train", [], ["a", "b"])


def test_present_corpora_lists_what_is_missing(tmp_path):
    make_emodb(tmp_path, speakers=("03",))
    present, missing = present_corpora(tmp_path, ["emodb", "iemocap", "cafe"])
    assert present == ["emodb"] and set(missing) == {"iemocap", "cafe"} and "no iemocap corpus" in missing["iemocap"]


def test_scores_average_over_the_classes_the_target_has():
    # classes a, b, c; the target has no clip of c, but the model predicts c twice
    cm = np.array([[3, 1, 0], [0, 2, 2], [0, 0, 0]])
    s = scorable_scores(cm, ["a", "b", "c"])
    assert s["scorable_classes"] == ["a", "b"] and s["n"] == 8
    assert s["ua"] == pytest.approx((3 / 4 + 2 / 4) / 2) and s["wa"] == pytest.approx(5 / 8)
    f1_a, f1_b = 2 * 1 * 0.75 / 1.75, 2 * (2 / 3) * 0.5 / (2 / 3 + 0.5)
    assert s["macro_f1"] == pytest.approx((f1_a + f1_b) / 2)
    assert scorable_scores(np.zeros((2, 2)), ["a", "b"])["ua"] is None


def test_leave_one_corpus_out_over_two_generated_corpora(tmp_path):
    root = make_ravdess(tmp_path / "data", actors=range(1, 7), statements=(1,), sample_rate=16000, duration_s=0.5)
    make_emodb(root, speakers=("03", "08", "09", "10", "11", "12"))
    out = tmp_path / "run"
    r = run_script("cross_corpus.py", "model=homebrew_cnn", "cross.mode=loco", "cross.corpora=[ravdess,emodb,iemocap]",
                   f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "data.duration_s=0.5", "data.val_speakers=2",
                   "data.test_speakers=2", "data.batch_size=16", "trainer.max_epochs=1", "callbacks.progress_bar=null",
                   cwd=out)
    assert r.returncode == 0, r.stderr[-3000:]
    with open(out / "cross_corpus.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    cross = {(x["train"], x["target"]): x for x in rows if x["kind"] == "cross" and x["output"] == "full"}
    restricted = {(x["train"], x["target"]): x for x in rows if x["kind"] == "cross" and x["output"] == "restricted"}
    assert set(restricted) == set(cross) and {x["adaptation"] for x in rows} == {"plain"}
    assert set(cross) == {("all-but-ravdess", "ravdess"), ("all-but-emodb", "emodb")}  # iemocap absent: left out
    to_emodb = cross[("all-but-emodb", "emodb")]
    # ekman7 model on EmoDB: 6 speakers x 6 scorable emotions; boredom (6 clips) unscorable
    assert int(to_emodb["n"]) == 36 and int(to_emodb["unscorable"]) == 6
    assert to_emodb["scorable_classes"].split() == ["neutral", "happy", "sad", "angry", "fear", "disgust"]
    to_ravdess = cross[("all-but-ravdess", "ravdess")]
    assert int(to_ravdess["n"]) == 48  # 6 actors x 8 emotions; calm merged into neutral, surprise has no EmoDB clip
    assert int(to_ravdess["n_scorable_classes"]) == 7 and int(to_ravdess["unscorable"]) == 0
    for x in cross.values():
        assert 0.0 <= float(x["ua"]) <= 1.0 and 0.0 <= float(x["wa"]) <= 1.0 and 0.0 <= float(x["macro_f1"]) <= 1.0
    assert {x["train"] for x in rows if x["kind"] == "in-corpus test"} == {"all-but-ravdess", "all-but-emodb"}
    result = json.loads((out / "cross_corpus.json").read_text())
    assert "iemocap" in result["missing"] and result["label_set"] == "ekman7"
    png = out / "cross_corpus_ua.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    h, w = matplotlib.image.imread(png).shape[:2]
    assert h > 100 and w > 100
    md = (out / "cross_corpus.md").read_text()
    assert "| all-but-emodb | emodb | cross | full 7-way output | plain | 36 |" in md
    assert "| all-but-emodb | emodb | cross | restricted to the target's classes | plain | 36 |" in md
    # restricted to the target's six classes: the arg-max re-taken over them, the same 36 clips scored
    r = restricted[("all-but-emodb", "emodb")]
    assert int(r["n"]) == 36 and r["scorable_classes"] == to_emodb["scorable_classes"]
    assert float(r["wa"]) >= float(to_emodb["wa"])  # a prediction of surprise can only become a right or wrong one
    for name in ("all-but-ravdess", "all-but-emodb"):
        assert (out / "train" / name / "checkpoints" / "best.ckpt").is_file()
