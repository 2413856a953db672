"""eval.py report: metrics, calibration helpers, report files, cross-corpus."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ser_lightning.cli.eval import eval_data_settings
from ser_lightning.evaluation.calibration import (
    expected_calibration_error,
    fit_temperature,
    nll,
    reliability_bins,
)
from ser_lightning.evaluation.report import classification_report, top_confused_pairs
from tests.conftest import run_script, tone


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


# ----------------------------------------------------------------------------- unit: helpers
def test_ece_matches_a_hand_computation():
    # (max probability, correct?) per clip; 3 classes; no confidence on a bin edge (15 bins).
    table = [(0.95, True), (0.95, False), (0.96, True), (0.55, True), (0.55, False), (0.36, False), (0.70, True)]
    probs, targets = [], []
    for conf, right in table:
        rest = (1 - conf) / 2
        probs.append([conf, rest, rest])
        targets.append(0 if right else 1)
    bins: dict[int, list] = {}
    for conf, right in table:
        bins.setdefault(int(conf * 15), []).append((conf, right))
    hand = sum(len(b) / len(table) * abs(np.mean([r for _, r in b]) - np.mean([c for c, _ in b])) for b in bins.values())
    assert expected_calibration_error(probs, targets, n_bins=15) == pytest.approx(hand, abs=1e-6)
    rel = reliability_bins(probs, targets, n_bins=15)
    assert sum(b["count"] for b in rel) == len(table)
    assert rel[14]["count"] == 3 and rel[14]["accuracy"] == pytest.approx(2 / 3)
    assert hand == pytest.approx(sum(b["count"] / len(table) * abs(b["accuracy"] - b["confidence"]) for b in rel))


def test_reliability_bins_edges_and_an_exact_one():
    """Bin ``b`` is ``[b/n, (b+1)/n)``; a confidence of exactly 1 falls in the last bin; empty bins are zeros."""
    rel = reliability_bins([[1.0, 0.0], [0.5, 0.5], [0.74, 0.26]], [0, 1, 1], n_bins=4)
    assert [(b["lower"], b["upper"]) for b in rel] == [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)]
    assert [b["count"] for b in rel] == [0, 0, 2, 1]
    assert rel[2]["confidence"] == pytest.approx(0.62) and rel[2]["accuracy"] == 0.0  # argmax of a tie is class 0
    assert rel[3] == {"lower": 0.75, "upper": 1.0, "count": 1, "confidence": 1.0, "accuracy": 1.0}
    assert rel[0] == {"lower": 0.0, "upper": 0.25, "count": 0, "confidence": 0.0, "accuracy": 0.0}


@pytest.mark.parametrize(("probs", "targets"), [(torch.ones(3, 2), [0, 1, 0]), (torch.ones(3, 3, 1), [0, 1, 0]),
                                                (torch.ones(3, 3), [0, 1]), (torch.ones(0, 3), [])])
def test_classification_report_refuses_shapes_that_disagree_with_the_labels(probs, targets):
    with pytest.raises(ValueError, match="do not match"):
        classification_report(probs, torch.tensor(targets, dtype=torch.long), ["a", "b", "c"])


def test_temperature_scaling_softens_overconfident_logits():
    g = torch.Generator().manual_seed(0)
    n, k = 600, 4
    targets = torch.randint(0, k, (n,), generator=g)
    right = torch.rand(n, generator=g) < 0.6  # 60 % accuracy ...
    pred = torch.where(right, targets, (targets + 1) % k)
    logits = 8.0 * torch.nn.functional.one_hot(pred, k).float() + 0.5 * torch.randn(n, k, generator=g)  # ... ~100 % confidence
    t = fit_temperature(logits[:300], targets[:300])
    assert t > 1.5
    assert nll(logits[300:], targets[300:], t) < nll(logits[300:], targets[300:])
    before = expected_calibration_error(logits[300:].softmax(1), targets[300:])
    after = expected_calibration_error((logits[300:] / t).softmax(1), targets[300:])
    assert after < before / 2
    with pytest.raises(ValueError, match="calibrate"):
        fit_temperature(torch.zeros(0, 4), torch.zeros(0))


def test_top_confused_pairs_and_support_aware_averages():
    labels = ["a", "b", "c", "d"]
    cm = np.array([[5, 3, 0, 1], [1, 6, 4, 0], [0, 3, 2, 0], [0, 0, 0, 0]])
    pairs = top_confused_pairs(cm, labels, k=3)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [("b", "c", 4), ("c", "b", 3), ("a", "b", 3)]
    assert pairs[1]["rate"] == pytest.approx(3 / 5)  # tie on count: larger share of the true class first
    assert len(top_confused_pairs(cm, labels, k=50)) == 5  # zero cells left out
    # rebuild clips from the matrix: class d has support 0 (the model outputs it, the data lacks it)
    targets = np.repeat(np.arange(4), cm.sum(1))
    preds = np.concatenate([np.repeat(np.arange(4), r) for r in cm])
    rep = classification_report(np.eye(4)[preds], targets, labels)
    assert rep["confusion_matrix"] == cm.tolist()
    assert [rep["per_class"][c]["support"] for c in labels] == [9, 11, 5, 0]
    assert rep["absent_classes"] == ["d"]
    assert rep["ua"] == pytest.approx(np.mean([5 / 9, 6 / 11, 2 / 5]))  # d not averaged in
    assert rep["wa"] == pytest.approx(13 / 25)


def test_eval_keeps_the_checkpoints_audio_settings_and_label_set():
    stored = {"corpora": ["ravdess"], "label_set": "quad4", "sample_rate": 16000, "duration_s": 1.0, "split": "kfold"}
    request = {"_target_": "x", "corpora": ["cremad"], "label_set": "ekman7", "sample_rate": 16000, "duration_s": 3.0,
               "split": "speaker", "test_split": "test"}
    settings, ignored = eval_data_settings(stored, request)
    assert settings == {"corpora": ["cremad"], "label_set": "quad4", "sample_rate": 16000, "duration_s": 1.0,
                        "split": "speaker"}
    assert ignored == {"label_set": "ekman7", "duration_s": 3.0}
    with pytest.raises(ValueError, match="data.duration_s=3.0: eval.py keeps the checkpoint's"):
        eval_data_settings(stored, request, explicit={"duration_s"})


# --------------------------------------------------------------------------- end to end
def _split_logits(ckpt: Path, root: Path, cache_dir: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and targets of ``ckpt`` on ``split`` of its own data, through the datamodule's batch path."""
    from ser_lightning.data.datamodule import SERDataModule
    from ser_lightning.inference.checkpoint import load_checkpoint, stored_datamodule_hparams

    model, _ = load_checkpoint(ckpt)
    hp = {**stored_datamodule_hparams(ckpt), "root": str(root), "cache_dir": str(cache_dir)}
    dm = SERDataModule(**{**hp, "test_split": split, "progress": False})
    dm.setup("test")
    dm.set_frontend(model.frontend)
    logits, targets = [], []
    with torch.no_grad():
        for batch in dm.test_dataloader():
            feats, target = dm.on_after_batch_transfer(batch, training=False)
            logits.append(model.network(feats).float())
            targets.append(target)
    return torch.cat(logits), torch.cat(targets)


def test_eval_writes_report_tables_and_figures(trained_members, tiny_ravdess, tmp_path):
    ckpt = trained_members[0]
    out = tmp_path / "eval"
    r = run_script("eval.py", f"ckpt_path={ckpt}", "calibrate=true", f"data.root={tiny_ravdess}",
                   f"data.cache_dir={ckpt.parents[2] / 'cache'}", cwd=out)
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("report.md", "metrics.json", "confusion_matrix.png", "reliability.png", "confusion_matrix.csv",
                 "confusion_matrix_normalized.csv", "per_class.csv", "top_confused.csv"):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    for key in ("ua", "wa", "macro_f1", "per_class_recall", "confusion_matrix", "labels", "n", "weighted_f1",
                "per_class", "top_confused", "confidence", "calibration", "unscorable"):
        assert key in m, key
    counts = _rows(out / "confusion_matrix.csv")
    assert counts[0][1:] == m["labels"]
    row_sums = {row[0]: sum(map(int, row[1:])) for row in counts[1:]}
    assert row_sums == {c: v["support"] for c, v in m["per_class"].items()}
    assert sum(row_sums.values()) == m["n"] == sum(r["split"] == "test" for r in csv.DictReader((out / "split.csv").open()))
    norm = _rows(out / "confusion_matrix_normalized.csv")
    assert all(abs(sum(map(float, row[1:])) - 1) < 1e-3 for row in norm[1:])
    cal = m["calibration"]
    # The temperature is the one fitted on the checkpoint's validation logits (not on the test's).
    split_logits = {s: _split_logits(ckpt, tiny_ravdess, ckpt.parents[2] / "cache", s) for s in ("val", "test")}
    t_val, t_test = (fit_temperature(*split_logits[s]) for s in ("val", "test"))
    assert abs(t_val - t_test) > 1e-3  # the two fits differ, so the check below can tell them apart
    assert cal["temperature"] == pytest.approx(t_val, rel=1e-4, abs=1e-4)
    assert cal["temperature"] > 0 and cal["nll_after"] <= cal["nll_before"] + 0.05 and m["confidence"]["ece_bins"] == 15
    assert m["unscorable"]["n"] == 0
    # predictions.csv: one row per test clip, in the split's order, with the model's probabilities
    clips = list(csv.DictReader((out / "predictions.csv").open()))
    test_paths = [row["path"] for row in csv.DictReader((out / "split.csv").open()) if row["split"] == "test"]
    assert [c["path"] for c in clips] == test_paths and len(clips) == m["n"]
    logits, targets = split_logits["test"]
    probs = logits.softmax(dim=1).numpy()
    got = np.array([[float(c[f"p_{k}"]) for k in m["labels"]] for c in clips])
    np.testing.assert_allclose(got, probs, atol=1e-5)
    assert [c["true_label"] for c in clips] == [m["labels"][int(t)] for t in targets]
    assert [c["predicted_label"] for c in clips] == [m["labels"][int(k)] for k in probs.argmax(axis=1)]
    assert sum(int(c["correct"]) for c in clips) == round(m["wa"] * m["n"])
    report = (out / "report.md").read_text()
    for text in ("UA (%)", "confusion_matrix.png", "reliability.png", "confusion_matrix.csv", "Top confused pairs",
                 "15 equal-width bins", f"T = {cal['temperature']:.3f}"):
        assert text in report, text


def _quad4_checkpoint(ravdess8_ckpt: Path, path: Path) -> Path:
    """A quad4 checkpoint from a ravdess8 one: same network and audio settings, new 4-class head."""
    from ser_lightning.modules.classifier import SERClassifier

    ck = torch.load(ravdess8_ckpt, map_location="cpu", weights_only=True)
    ck["hyper_parameters"] = {**ck["hyper_parameters"], "class_names": ["angry", "happy", "neutral", "sad"],
                              "class_counts": None}
    ck["datamodule_hyper_parameters"] = {**ck["datamodule_hyper_parameters"], "label_set": "quad4", "calm": "neutral"}
    torch.manual_seed(0)
    model = SERClassifier(**ck["hyper_parameters"])
    state = model.state_dict()
    state.update({k: v for k, v in ck["state_dict"].items() if k in state and state[k].shape == v.shape})
    ck["state_dict"] = state
    torch.save(ck, path)
    return path


def test_cross_corpus_manifest_reports_unscorable_clips_and_absent_classes(trained_members, tmp_path):
    ckpt = _quad4_checkpoint(trained_members[0], tmp_path / "quad4.ckpt")
    audio = tmp_path / "audio"
    audio.mkdir()
    labels = {"angry": 4, "happy": 4, "neutral": 3, "calm": 1, "fear": 3, "surprise": 2}  # no sad; fear, surprise unscorable
    rows = []
    for e, (label, n) in enumerate(labels.items()):
        for i in range(n):
            p = audio / f"{label}_{i}.wav"
            sf.write(p, tone(220 + 50 * e, 0.8, 16000, seed=10 * e + i), 16000)
            rows.append([f"audio/{p.name}", label, f"s{i % 2}"])
    manifest = tmp_path / "mine.csv"
    with manifest.open("w", newline="") as fh:
        csv.writer(fh).writerows([["path", "label", "speaker"], *rows])
    out = tmp_path / "eval"
    r = run_script("eval.py", f"ckpt_path={ckpt}", "data=manifest", f"data.corpora=[{manifest}]", "split=all",
                   f"data.cache_dir={tmp_path / 'cache'}", cwd=out)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["labels"] == ["angry", "happy", "neutral", "sad"]
    assert m["unscorable"]["per_emotion"] == {"fear": 3, "surprise": 2} and m["unscorable"]["n"] == 5
    assert m["n"] == 12  # the rest is scored; calm -> neutral through the checkpoint's calm policy
    assert {c: v["support"] for c, v in m["per_class"].items()} == {"angry": 4, "happy": 4, "neutral": 4, "sad": 0}
    assert m["absent_classes"] == ["sad"]
    assert len(_rows(out / "unscorable.csv")) == 1 + 5
    report = (out / "report.md").read_text()
    assert "| fear | 3 |" in report and "| surprise | 2 |" in report and "support 0): sad" in report
