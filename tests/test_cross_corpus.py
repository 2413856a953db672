"""Cross-corpus runs: the plan, scores over scorable classes, and a run over two generated corpora."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

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
    assert scorable_scores(np.zeros((2, 2)), ["a", "b"]) == {"n": 0, "ua": None, "wa": None, "macro_f1": None,
                                                              "scorable_classes": []}


def test_f1_of_a_class_never_predicted_or_rarely_right():
    """F1 is 0 for a class never predicted (precision 0/0 taken as 0), and 2pr/(p+r) when p + r < 1."""
    # a: 1 of 5 right, predicted 5 times (p = r = 0.2); b: never predicted; c: all 3 right, predicted 7 times
    cm = np.array([[1, 0, 4], [4, 0, 0], [0, 0, 3]])
    s = scorable_scores(cm, ["a", "b", "c"])
    f1_a, f1_c = 2 * 0.2 * 0.2 / 0.4, 2 * (3 / 7) * 1.0 / (3 / 7 + 1.0)
    assert s["macro_f1"] == pytest.approx((f1_a + 0.0 + f1_c) / 3) and np.isfinite(s["macro_f1"])
    assert s["ua"] == pytest.approx((0.2 + 0.0 + 1.0) / 3) and s["wa"] == pytest.approx(4 / 12)


def _hand_scores(predicted: list[int], target: list[int], n_classes: int) -> dict:
    """UA, WA and macro-F1 over the classes present, from a confusion matrix counted here clip by clip."""
    cm = [[0] * n_classes for _ in range(n_classes)]
    for t, p in zip(target, predicted):
        cm[t][p] += 1
    present = [c for c in range(n_classes) if sum(cm[c]) > 0]
    recall = {c: cm[c][c] / sum(cm[c]) for c in present}
    f1 = []
    for c in present:
        column = sum(cm[r][c] for r in range(n_classes))
        precision = cm[c][c] / column if column else 0.0
        f1.append(2 * precision * recall[c] / (precision + recall[c]) if precision + recall[c] else 0.0)
    n = len(target)
    return {"n": n, "ua": sum(recall.values()) / len(present), "wa": sum(cm[c][c] for c in present) / n,
            "macro_f1": sum(f1) / len(f1), "n_scorable_classes": len(present)}


def test_leave_one_corpus_out_over_two_generated_corpora(tmp_path, monkeypatch):
    from ser_lightning.modules.classifier import SERClassifier

    tested = []  # every test pass of the run, in order: its clips' predicted and true classes
    original = SERClassifier.on_test_epoch_end

    def record(self):
        original(self)
        r = self.test_results
        tested.append((r["logits"].clone(), r["targets"].tolist(), len(self.class_names)))

    monkeypatch.setattr(SERClassifier, "on_test_epoch_end", record)
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
    # every row's scores are those of a confusion matrix counted here from its test pass's predictions (the
    # passes run in row order: each training set's in-corpus test, then its target, whose pass gives the
    # full-output row and the restricted row: the arg-max re-taken over the classes the target has)
    assert [(x["kind"], x["output"]) for x in rows] == [("in-corpus test", "full"), ("cross", "full"),
                                                        ("cross", "restricted")] * 2 and len(tested) == 4
    hand = []
    for k, (logits, target, n_classes) in enumerate(tested):
        hand.append(_hand_scores(logits.argmax(1).tolist(), target, n_classes))
        if k % 2 == 1:  # a cross pass (passes alternate in-corpus, cross): its restricted row too
            present = sorted(set(target))
            mask = torch.full((n_classes,), float("-inf"))
            mask[present] = 0.0
            hand.append(_hand_scores((logits + mask).argmax(1).tolist(), target, n_classes))
    for x, h in zip(rows, hand, strict=True):
        assert int(x["n"]) == h["n"] and int(x["n_scorable_classes"]) == h["n_scorable_classes"]
        for key in ("ua", "wa", "macro_f1"):
            assert float(x[key]) == pytest.approx(h[key], abs=1e-9), (x["train"], x["target"], key)
    assert any(abs(h["ua"] - h["wa"]) > 0.01 for h, x in zip(hand, rows) if x["kind"] == "cross")  # UA ≠ WA here
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
