"""Issue 21 items 1-2 end to end: cross_corpus.py and eval.py on two generated corpora whose target sits 20 dB
below the training corpus, with the output restricted and adapted without labels, checked by hand."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ser_lightning.data.audio import load_clip
from ser_lightning.evaluation.views import confusion
from ser_lightning.inference.adaptation import (
    ADAPT_SET,
    ADAPT_SPEAKER,
    PLAIN,
    PRIOR_EM,
    em_prior_correction,
    restrict_probabilities,
    training_prior,
)
from ser_lightning.inference.checkpoint import load_checkpoint
from tests.conftest import make_ravdess, run_script
from tests.test_unknown_labels import EMODB_SPEAKERS, make_emodb

pytestmark = pytest.mark.usefixtures("one_thread")

EMODB_CLASSES = ["neutral", "happy", "sad", "angry", "fear", "disgust"]  # of ravdess8; boredom is unscorable


@pytest.fixture(scope="module")
def two_corpora(tmp_path_factory) -> Path:
    """RAVDESS-named clips at full level, EmoDB-named clips 20 dB below (all scaled by 0.1)."""
    root = tmp_path_factory.mktemp("xc")
    make_ravdess(root, actors=range(1, 5), statements=(1, 2), sample_rate=16000, duration_s=0.5)
    make_emodb(root, speakers=EMODB_SPEAKERS[:6])
    for path in (root / "emodb" / "wav").glob("*.wav"):
        x, sr = sf.read(path, dtype="float32")
        sf.write(path, 0.1 * x, sr)  # -20 dB
    return root


@pytest.fixture(scope="module")
def cross_run(two_corpora, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("xc_run")
    r = run_script("cross_corpus.py", "model=byol_s", "cross.train=[ravdess]", "cross.corpora=[ravdess,emodb]",
                   "cross.adapt=set", "cross.adapt_prior=em", "data.label_set=ravdess8", "data.normalize=none",
                   f"data.root={two_corpora}", f"data.cache_dir={out / 'cache'}", "data.duration_s=1.0",
                   "data.val_speakers=1", "data.test_speakers=1", "trainer.max_epochs=3", "callbacks.progress_bar=null",
                   cwd=out)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def _hand_pooled(ckpt: Path, paths: list[str]):
    """The checkpoint's network and the pooled hidden states of each clip, one clip at a time (no padding)."""
    model, cfg = load_checkpoint(ckpt)
    pooled = []
    with torch.no_grad():
        for p in paths:
            wave, n = load_clip(p, cfg, return_length=True)
            x = torch.from_numpy(np.asarray(wave[:n], dtype=np.float32))[None]
            pooled.append(model.network.pooled_states(model.frontend(x), torch.tensor([n]))[0].numpy())
    return model, np.stack(pooled).astype(np.float64)


def _head(net, z: np.ndarray) -> np.ndarray:
    bare = copy.deepcopy(net)
    bare.pooled_norm = None
    with torch.no_grad():
        return bare.forward_pooled(torch.from_numpy(z.astype(np.float32))).numpy()


def _standardise(x: np.ndarray, floor: float) -> np.ndarray:
    return (x - x.mean(0)) / np.maximum(x.std(0), floor)


def _split(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "split.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_cross_corpus_reports_full_restricted_and_adapted_rows_checked_by_hand(cross_run):
    result = json.loads((cross_run / "cross_corpus.json").read_text())
    rows = [r for r in result["rows"] if r["kind"] == "cross" and r["target"] == "emodb"]
    got = [(r["output"], r["adaptation"], r["transductive"]) for r in rows]
    assert got == [("full", PLAIN, False), ("full", PRIOR_EM, True), ("restricted", PLAIN, False),
                   ("restricted", PRIOR_EM, True), ("full", ADAPT_SET, True), ("full", f"{ADAPT_SET} + {PRIOR_EM}", True),
                   ("restricted", ADAPT_SET, True), ("restricted", f"{ADAPT_SET} + {PRIOR_EM}", True)]
    assert all(r["n"] == 36 and r["unscorable"] == 6 for r in rows)
    assert rows[0]["output_name"] == "full 8-way output" and rows[2]["output_name"] == "restricted to the target's classes"
    assert rows[2]["classes"] == EMODB_CLASSES and len(rows[0]["classes"]) == 8
    assert result["adaptation"]["adapt"] == "set" and result["heatmap_restricted"].endswith("_restricted.png")
    with open(cross_run / "cross_corpus.csv", newline="") as fh:
        csv_rows = [r for r in csv.DictReader(fh) if r["target"] == "emodb"]
    assert [(r["output"], r["adaptation"], r["transductive"]) for r in csv_rows] == [(o, a, str(t)) for o, a, t in got]

    # by hand: the target's clips (split.csv of the evaluation), pooled one by one
    ckpt = cross_run / "train" / "ravdess" / "checkpoints" / "best.ckpt"
    clips = _split(cross_run / "eval" / "ravdess__emodb")
    model, pooled = _hand_pooled(ckpt, [c["path"] for c in clips])
    labels = list(model.class_names)
    y = np.asarray([labels.index(c["label"]) for c in clips])
    net = model.network
    mean0, sd0 = (t.numpy().astype(np.float64) for t in net.feature_statistics())
    floor = float(np.sqrt(net.pooled_norm.eps))
    plain_logits = _head(net, (pooled - mean0) / sd0)
    adapted_logits = _head(net, _standardise(pooled, floor))
    # the 20 dB offset puts the target's features many training-corpus sds away; adaptation centres them
    _, source = _hand_pooled(ckpt, [c["path"] for c in _split(cross_run / "train" / "ravdess")])
    varying = source.std(0) > 1e-3
    offset = np.abs(pooled.mean(0) - source.mean(0))[varying] / source.std(0)[varying]
    assert np.mean(offset) > 3.0 and np.abs(_standardise(pooled, floor).mean(0)).max() < 1e-6
    keep = [labels.index(c) for c in EMODB_CLASSES]
    for row, logits, restricted in ((rows[0], plain_logits, False), (rows[4], adapted_logits, False),
                                    (rows[2], plain_logits, True), (rows[6], adapted_logits, True)):
        if restricted:
            pred = np.asarray(keep)[logits[:, keep].argmax(1)]
            cm = confusion([keep.index(t) for t in y], [keep.index(p) for p in pred], len(keep))
        else:
            cm = confusion(y, logits.argmax(1), 8)
        assert row["confusion_matrix"] == cm.tolist(), row["adaptation"]
        assert row["ua"] == pytest.approx(np.mean([cm[i, i] / cm[i].sum() for i in range(len(cm)) if cm[i].sum()]))
    # EM over the restricted, adapted posteriors, from the training prior the checkpoint implies
    prior = training_prior(model.hparams["class_counts"], model.hparams["class_weights"])
    p = restrict_probabilities(torch.softmax(torch.from_numpy(adapted_logits), 1).numpy(), keep)
    fit = em_prior_correction(p, prior[keep] / prior[keep].sum())
    assert rows[7]["prior"] == pytest.approx(dict(zip(EMODB_CLASSES, fit.prior)), abs=1e-3)
    cm = confusion([keep.index(t) for t in y], fit.probs.argmax(1), len(keep))
    assert rows[7]["confusion_matrix"] == cm.tolist()


def test_eval_reports_both_outputs_and_per_speaker_adaptation(cross_run, two_corpora, tmp_path):
    ckpt = cross_run / "train" / "ravdess" / "checkpoints" / "best.ckpt"
    common = [f"ckpt_path={ckpt}", f"data.root={two_corpora}", f"data.cache_dir={cross_run / 'cache'}",
              "data=emodb", "split=all"]
    out = tmp_path / "speaker"
    r = run_script("eval.py", *common, "adapt=speaker", "adapt_min_clips=5", cwd=out)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    views = {(v["output"], v["adaptation"]): v for v in m["views"]}
    assert set(views) == {("full", PLAIN), ("restricted", PLAIN), ("full", ADAPT_SPEAKER), ("restricted", ADAPT_SPEAKER)}
    full = views[("full", PLAIN)]
    assert full["ua"] == pytest.approx(m["ua"]) and full["confusion_matrix"] == m["confusion_matrix"]
    assert m["ua_restricted"] == views[("restricted", PLAIN)]["ua"] and m["restricted_classes"] == EMODB_CLASSES
    assert [s["statistics"] for s in m["adaptation"]["feature_statistics"]] == ["own"] * 6
    report = (out / "report.md").read_text()
    assert "## Output views" in report and "restricted to the evaluated data's classes" in report
    assert f"| full 8-way output | {ADAPT_SPEAKER} |" in report
    # by hand: every speaker's clips standardised with that speaker's statistics
    clips = _split(out)
    model, pooled = _hand_pooled(ckpt, [c["path"] for c in clips])
    labels = list(model.class_names)
    y = np.asarray([labels.index(c["label"]) for c in clips])
    speakers = np.asarray([c["speaker"] for c in clips])
    z = np.empty_like(pooled)
    for s in set(speakers.tolist()):
        z[speakers == s] = _standardise(pooled[speakers == s], float(np.sqrt(model.network.pooled_norm.eps)))
    cm = confusion(y, _head(model.network, z).argmax(1), len(labels))
    assert views[("full", ADAPT_SPEAKER)]["confusion_matrix"] == cm.tolist()

    # too few clips per speaker: the training statistics, a note in the report, the same answers as plain
    out2 = tmp_path / "few"
    r = run_script("eval.py", *common, "adapt=speaker", "labels=[angry,sad]", cwd=out2)
    assert r.returncode == 0, r.stderr[-3000:]
    m2 = json.loads((out2 / "metrics.json").read_text())
    v2 = {(v["output"], v["adaptation"]): v for v in m2["views"]}
    assert v2[("full", ADAPT_SPEAKER)]["confusion_matrix"] == v2[("full", PLAIN)]["confusion_matrix"]
    assert v2[("restricted", PLAIN)]["classes"] == ["sad", "angry"] and v2[("restricted", PLAIN)]["excluded"] == 24
    assert "fewer than adapt_min_clips=20" in (out2 / "report.md").read_text()

    r = run_script("eval.py", *common, "labels=[angry,boredom]", cwd=tmp_path / "bad")
    assert r.returncode == 1 and "has no class ['boredom']" in r.stderr


def test_predict_py_adapts_a_folder_and_keeps_the_plain_answers(cross_run, two_corpora, tmp_path):
    ckpt = cross_run / "train" / "ravdess" / "checkpoints" / "best.ckpt"
    out = tmp_path / "p"
    r = run_script("predict.py", f"ckpt_path={ckpt}", f"input={two_corpora / 'emodb'}", "vad.enabled=false",
                   "labels=quad4", "adapt=set", "adapt_prior=em", "progress=false", f"output={out}", cwd=out)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((out / "predictions.json").read_text())
    info = doc["model"]["adaptation"]
    assert info["adaptation"] == f"{ADAPT_SET} + {PRIOR_EM}" and info["transductive"] and info["adapt"]["clips"] == 42
    assert doc["model"]["labels"] == ["neutral", "happy", "sad", "angry"] and len(doc["model"]["model_labels"]) == 8
    assert info["prior"]["training_prior"] == pytest.approx({c: 0.25 for c in doc["model"]["labels"]})  # equal class counts
    assert all(f["plain"]["label"] in doc["model"]["labels"] for f in doc["files"])
    with open(out / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert "plain_label" in rows[0] and "p_calm" not in rows[0] and "plain label" in r.stdout
    one = tmp_path / "one"  # a single clip: the training statistics, with a note
    clip = sorted((two_corpora / "emodb" / "wav").glob("*.wav"))[0]
    r = run_script("predict.py", f"ckpt_path={ckpt}", f"input={clip}", "vad.enabled=false", "adapt=set",
                   "progress=false", f"output={one}", cwd=one)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((one / "predictions.json").read_text())
    assert doc["model"]["adaptation"]["adaptation"] == PLAIN and "fewer than adapt_min_clips=20" in doc["model"]["adaptation"]["notes"][0]
    assert "plain" not in doc["files"][0]


def test_eval_adapts_the_target_of_a_corpus_split_run(two_corpora, tmp_path):
    """The development protocol's cells (``data.split=corpus``): eval.py scores the test corpus adapted."""
    common = [f"data.root={two_corpora}", f"data.cache_dir={tmp_path / 'cache'}"]
    run = tmp_path / "train"
    r = run_script("train.py", "model=byol_s", "data.corpora=[ravdess,emodb]", "data.split=corpus",
                   "data.test_corpora=[emodb]", "data.train_corpora=[ravdess]", "data.label_set=ekman7",
                   "data.duration_s=1.0", "data.corpus_weights=balanced", "trainer.max_epochs=2",
                   "callbacks.progress_bar=null", *common, cwd=run)
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "eval"
    r = run_script("eval.py", f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", "split=test", "adapt=set", *common, cwd=out)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    rows = {(v["output"], v["adaptation"]): v for v in m["views"]}
    assert set(rows) == {("full", PLAIN), ("restricted", PLAIN), ("full", ADAPT_SET), ("restricted", ADAPT_SET)}
    assert rows[("full", ADAPT_SET)]["n"] == 36 and m["adaptation"]["feature_statistics"][0]["clips"] == 36
    assert m["restricted_classes"] == EMODB_CLASSES
    # the checkpoint keeps each training corpus's class counts, so the training prior (and EM) can be derived
    hp = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["hyper_parameters"]
    assert set(hp["corpus_class_counts"]) == {"ravdess"} and sum(hp["corpus_class_counts"]["ravdess"]) == sum(
        hp["class_counts"])
    r = run_script("eval.py", f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", "split=test", "adapt_prior=em", *common,
                   cwd=tmp_path / "em")
    assert r.returncode == 0, r.stderr[-3000:]
    assert {v["adaptation"] for v in json.loads((tmp_path / "em" / "metrics.json").read_text())["views"]} == {
        PLAIN, PRIOR_EM}
