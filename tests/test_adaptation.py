"""Issue 21 items 1-2: label restriction, the training prior, EM prior correction (Saerens et al. 2002), the
network's feature statistics and feature adaptation (AdaBN-style), output views; prediction on a set."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ser_lightning.evaluation.views import (
    output_views,
    present_classes,
    scorable_scores,
    score_view,
)
from ser_lightning.inference.adaptation import (
    ADAPT_SET,
    PLAIN,
    PRIOR_EM,
    adapted_logits,
    check_adapt,
    em_prior_correction,
    label_subset,
    restrict_probabilities,
    training_prior,
)
from ser_lightning.inference.predictor import (
    LoadedModel,
    _pooled_functions,
    find_audio,
    make_window,
    predict_files,
    predict_set,
)
from ser_lightning.modules.classifier import SERClassifier
from tests.conftest import make_ravdess

pytestmark = pytest.mark.usefixtures("one_thread")

RAVDESS8 = ["neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise"]


# ------------------------------------------------------------------------------------- label restriction
def test_restriction_renormalises_over_the_kept_classes_in_model_order():
    probs = np.array([[0.1, 0.4, 0.2, 0.1, 0.1, 0.05, 0.05, 0.0],
                      [0.5, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.0]])
    keep = label_subset(["sad", "ANG", "happy", "neutral"], RAVDESS8)  # any order and spelling
    assert keep == [0, 2, 3, 4]
    got = restrict_probabilities(probs, keep)
    np.testing.assert_allclose(got[0], np.array([0.1, 0.2, 0.1, 0.1]) / 0.5)
    np.testing.assert_allclose(got[1], np.array([0.5, 0.1, 0.1, 0.1]) / 0.8)
    np.testing.assert_allclose(got.sum(axis=1), 1.0)
    assert label_subset("quad4", RAVDESS8) == keep  # a label-set name


def test_a_class_the_model_lacks_is_refused_in_one_line():
    with pytest.raises(ValueError) as err:
        label_subset(["angry", "boredom"], RAVDESS8, "m.ckpt")
    msg = str(err.value)
    assert "\n" not in msg and "has no class ['boredom']" in msg and "m.ckpt" in msg
    with pytest.raises(ValueError, match="sarcasm|not a known|unknown"):
        label_subset(["angry", "sarcasm"], RAVDESS8)


def _fake_model(labels=("neutral", "calm", "happy", "sad")) -> LoadedModel:
    """A model whose window probabilities are a fixed function of the window's RMS level."""
    from ser_lightning.data.audio import AudioConfig

    def run(batch):
        level = np.sqrt((batch.astype(np.float64) ** 2).mean(axis=1))
        logits = np.stack([np.sin(7 * level * (k + 1)) * (k + 1) for k in range(len(labels))], axis=1)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    return LoadedModel(run, list(labels), AudioConfig(duration_s=1.0, normalize="none"), "fake", "pytorch", "fake.ckpt")


def test_predict_restricts_every_window_and_the_file(tmp_path):
    x = 0.3 * np.sin(np.arange(40000) / 9.0).astype(np.float32) * np.linspace(0.2, 1, 40000, dtype=np.float32)
    sf.write(tmp_path / "long.wav", x, 16000)  # 2.5 s: several windows
    model = _fake_model()
    full = predict_files(find_audio(tmp_path / "long.wav"), model, vad=False)[0]
    part = predict_files(find_audio(tmp_path / "long.wav"), model, vad=False, labels=["sad", "neutral"])[0]
    assert list(part["probabilities"]) == ["neutral", "sad"]
    for wf, wp in zip(full["windows"], part["windows"]):
        p = np.array([wf["probabilities"]["neutral"], wf["probabilities"]["sad"]])
        np.testing.assert_allclose([wp["probabilities"]["neutral"], wp["probabilities"]["sad"]], p / p.sum(), rtol=1e-6)
    mean = np.mean([[w["probabilities"]["neutral"], w["probabilities"]["sad"]] for w in part["windows"]], axis=0)
    np.testing.assert_allclose([part["probabilities"]["neutral"], part["probabilities"]["sad"]], mean, rtol=1e-6)
    assert part["label"] == ["neutral", "sad"][int(mean.argmax())]
    with pytest.raises(ValueError, match=r"has no class \['angry'\]"):
        predict_files(find_audio(tmp_path / "long.wav"), model, vad=False, labels=["angry"])


# ------------------------------------------------------------------------------------------ training prior
def test_training_prior_of_each_training_recipe():
    counts = [100, 200, 300, 400]
    np.testing.assert_allclose(training_prior(counts), [0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(training_prior(counts, "balanced"), [0.25] * 4)  # the default model's recipe
    np.testing.assert_allclose(training_prior(counts, None, "balanced"), [0.25] * 4)
    w = np.array([1 / 100, 1 / 200, 1 / 300, 1 / 400])
    np.testing.assert_allclose(training_prior(counts, "balanced", "balanced"), w / w.sum())  # corrected twice
    np.testing.assert_allclose(training_prior(counts, [1.0, 1.0, 2.0, 0.5]), np.array([100, 200, 600, 200]) / 1100)
    # data.corpus_weights=balanced: corpus A (counts 10, 30) and B (90, 10) weigh the same in the loss
    per = {"a": [10, 30], "b": [90, 10]}
    ia, ib = 140 / (2 * 40), 140 / (2 * 100)  # item weights N / (C n_c)
    want = np.array([10 * ia + 90 * ib, 30 * ia + 10 * ib])
    np.testing.assert_allclose(training_prior([100, 40], None, corpus_weights="balanced", corpus_class_counts=per),
                               want / want.sum())
    with pytest.raises(ValueError, match="does not store"):
        training_prior([100, 40], None, corpus_weights="balanced")
    with pytest.raises(ValueError, match="one positive count per class"):
        training_prior([10, 0, 5])
    with pytest.raises(ValueError, match="unknown"):
        training_prior(None)


@pytest.mark.parametrize("weights", [None, "balanced", "corpus"])
def test_weighted_cross_entropy_fits_the_posteriors_of_the_derived_prior(weights):
    """A well-specified model (equal-variance Gaussian classes, linear softmax) trained with (un)weighted
    cross-entropy on imbalanced classes ends up calibrated to the prior :func:`training_prior` derives
    (``corpus``: two corpora with other class mixes, each item weighted ``N / (C n_c)`` as
    ``data.corpus_weights=balanced`` does, and balanced class weights)."""
    rng = np.random.default_rng(0)
    means = np.array([-2.0, 0.0, 2.0])
    per = {"a": [1000, 300, 100], "b": [100, 300, 3000]} if weights == "corpus" else {"a": [600, 1800, 3600]}
    counts = list(np.sum(list(per.values()), axis=0))
    ys = np.concatenate([np.repeat(np.arange(3), c) for c in per.values()])
    x = means[ys] + rng.standard_normal(len(ys))
    y = ys
    item = np.concatenate([np.full(sum(c), len(ys) / (len(per) * sum(c))) for c in per.values()])
    class_w = np.ones(3) if weights is None else sum(counts) / (3 * np.asarray(counts, dtype=float))
    w = class_w[y] * (item if weights == "corpus" else 1.0)
    lin = torch.nn.Linear(1, 3).double()
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=500, tolerance_grad=1e-10, line_search_fn="strong_wolfe")
    xt, yt = torch.from_numpy(x)[:, None], torch.from_numpy(y)

    wt = torch.from_numpy(w)

    def closure():
        opt.zero_grad()
        loss = (torch.nn.functional.cross_entropy(lin(xt), yt, reduction="none") * wt).sum() / wt.sum()
        loss.backward()
        return loss

    opt.step(closure)
    grid = np.linspace(-3, 3, 61)
    with torch.no_grad():
        fitted = torch.softmax(lin(torch.from_numpy(grid)[:, None]), dim=1).numpy()

    def bayes(prior):
        logit = np.log(prior)[None] - 0.5 * (grid[:, None] - means[None]) ** 2
        e = np.exp(logit - logit.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    if weights == "corpus":
        derived = training_prior(counts, "balanced", corpus_weights="balanced", corpus_class_counts=per)
        other = training_prior(counts, "balanced")  # the corpus weights ignored
    else:
        derived = training_prior(counts, weights)
        other = training_prior(counts, "balanced" if weights is None else None)  # the other recipe's prior
    assert np.abs(fitted - bayes(derived)).max() < 0.04
    assert np.abs(fitted - bayes(other)).max() > 0.1


# ---------------------------------------------------------------------------------------- EM prior shift
def _gaussian_set(prior_true, train_prior, n=4000, seed=0):
    """Posteriors of a calibrated 4-class Gaussian model (trained under ``train_prior``) on a set drawn with
    ``prior_true``, and the true classes."""
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    y = rng.choice(4, size=n, p=prior_true)
    x = means[y] + rng.standard_normal((n, 2))
    logit = np.log(train_prior)[None] - 0.5 * ((x[:, None, :] - means[None]) ** 2).sum(-1)
    p = np.exp(logit - logit.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True), y


@pytest.mark.parametrize("train_prior", [[0.25, 0.25, 0.25, 0.25], [0.4, 0.3, 0.2, 0.1]])
def test_em_recovers_a_known_prior_shift(train_prior):
    true = np.array([0.7, 0.1, 0.1, 0.1])
    probs, y = _gaussian_set(true, np.array(train_prior))
    fit = em_prior_correction(probs, np.array(train_prior))
    assert fit.converged and np.abs(fit.prior - true).max() < 0.03
    assert np.abs(probs.mean(axis=0) - true).max() > 0.1  # the plain mean posterior is far off: EM is needed
    assert (fit.probs.argmax(1) == y).mean() > (probs.argmax(1) == y).mean() + 0.03  # and pays in accuracy
    np.testing.assert_allclose(fit.probs.sum(axis=1), 1.0)
    if train_prior[0] != 0.25:  # a wrong training prior (the class frequencies ignored) misses the shift
        wrong = em_prior_correction(probs, np.full(4, 0.25))
        assert np.abs(wrong.prior - true).max() > 0.06


def test_em_on_an_unshifted_set_stays_put():
    probs, _ = _gaussian_set(np.full(4, 0.25), np.full(4, 0.25), n=8000, seed=3)
    fit = em_prior_correction(probs, np.full(4, 0.25))
    assert np.abs(fit.prior - 0.25).max() < 0.03


# --------------------------------------------------------------------------------- feature statistics
def _byol(**model) -> SERClassifier:
    torch.manual_seed(0)
    return SERClassifier({"name": "byol_s", "pool_each_layer": True, **model}, {"name": "raw"}, RAVDESS8).eval()


@pytest.fixture(scope="module")
def byol():
    clf = _byol()
    bn = clf.network.pooled_norm  # give the "training statistics" values that are not 0 / 1
    g = torch.Generator().manual_seed(1)
    bn.running_mean.copy_(torch.randn(bn.running_mean.shape, generator=g))
    bn.running_var.copy_(torch.rand(bn.running_var.shape, generator=g) * 3 + 0.5)
    return clf


def _hand_logits(net, pooled: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """(x - mean) / sd, then the rest of the head without its standardisation."""
    bare = copy.deepcopy(net)
    bare.pooled_norm = None
    z = (pooled.astype(np.float64) - mean) / sd
    with torch.no_grad():
        return bare.forward_pooled(torch.from_numpy(z.astype(np.float32))).numpy()


def test_feature_statistics_are_the_heads_standardisation(byol):
    net = byol.network
    mean, sd = net.feature_statistics()
    assert tuple(mean.shape) == tuple(sd.shape) == net.pooled_shape
    bn = net.pooled_norm
    np.testing.assert_allclose(sd.reshape(-1).numpy() ** 2, bn.running_var.numpy() + bn.eps, rtol=1e-5)
    x = np.random.default_rng(0).standard_normal((5, *net.pooled_shape)).astype(np.float32) * 3 + 1
    with torch.no_grad():
        plain = net.forward_pooled(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(plain, _hand_logits(net, x, mean.numpy(), sd.numpy()), atol=1e-4)
    new_mean, new_sd = x.mean(axis=0), x.std(axis=0) + 0.5
    net.set_feature_statistics(new_mean, new_sd)
    with torch.no_grad():
        adapted = net.forward_pooled(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(adapted, _hand_logits(net, x, new_mean, new_sd), atol=1e-4)
    got_mean, got_sd = net.feature_statistics()
    np.testing.assert_allclose(got_mean.numpy(), new_mean, atol=1e-6)
    np.testing.assert_allclose(got_sd.numpy(), new_sd, rtol=1e-5)
    net.set_feature_statistics(mean, sd)  # round trip: back to the training statistics
    with torch.no_grad():
        np.testing.assert_allclose(net.forward_pooled(torch.from_numpy(x)).numpy(), plain, atol=1e-5)
    with pytest.raises(ValueError, match="has shape"):
        net.set_feature_statistics(mean[..., :-1], sd[..., :-1])
    with pytest.raises(ValueError, match="positive"):
        net.set_feature_statistics(mean, -sd)


def test_a_model_without_input_standardisation_cannot_be_adapted():
    net = _byol(pooled_norm=False).network
    with pytest.raises(ValueError, match="no input standardisation"):
        net.feature_statistics()


def test_adapted_logits_against_a_hand_computation(byol):
    net = byol.network
    rng = np.random.default_rng(1)
    n = 40
    speakers = ["a"] * 25 + ["b"] * 12 + ["c"] * 3
    offset = np.where(np.array(speakers)[:, None, None] == "a", 4.0, -2.0)
    pooled = (rng.standard_normal((n, *net.pooled_shape)) * 2 + offset).astype(np.float32)
    mean0, sd0 = (t.numpy() for t in net.feature_statistics())
    logits, table = adapted_logits(net, pooled, None, min_clips=20)  # adapt=set
    want = _hand_logits(net, pooled, pooled.astype(np.float64).mean(0), pooled.astype(np.float64).std(0))
    np.testing.assert_allclose(logits, want, atol=1e-4)
    assert [(t.group, t.clips, t.statistics) for t in table] == [("set", 40, "own")]
    logits, table = adapted_logits(net, pooled, speakers, min_clips=10)  # adapt=speaker
    for spk in ("a", "b"):
        idx = np.flatnonzero(np.array(speakers) == spk)
        x = pooled[idx].astype(np.float64)
        np.testing.assert_allclose(logits[idx], _hand_logits(net, pooled[idx], x.mean(0), x.std(0)), atol=1e-4)
    idx = np.flatnonzero(np.array(speakers) == "c")  # 3 clips < 10: the training statistics
    np.testing.assert_allclose(logits[idx], _hand_logits(net, pooled[idx], mean0, sd0), atol=1e-4)
    assert table[2].statistics.startswith("training")
    np.testing.assert_allclose(net.feature_statistics()[0].numpy(), mean0)  # restored


# ------------------------------------------------------------------------------------------ output views
def test_restricted_views_against_a_hand_computed_confusion_matrix():
    labels = ["neutral", "calm", "happy", "sad"]
    # the data has neutral, happy, sad; calm takes much of the full output's mass
    probs = np.array([
        [0.30, 0.50, 0.10, 0.10],   # neutral: full -> calm, restricted -> neutral
        [0.20, 0.45, 0.25, 0.10],   # neutral: full -> calm, restricted -> happy
        [0.10, 0.20, 0.60, 0.10],   # happy -> happy both
        [0.05, 0.60, 0.15, 0.20],   # happy: full -> calm, restricted -> sad
        [0.10, 0.40, 0.10, 0.40],   # sad: tie calm/sad in full -> calm (first max), restricted -> sad
        [0.40, 0.10, 0.10, 0.40],   # sad: full tie neutral/sad -> neutral; restricted also neutral (first max)
    ])
    targets = np.array([0, 0, 2, 2, 3, 3])
    keep = present_classes(targets, 4)
    assert keep == [0, 2, 3]
    rows = output_views({PLAIN: probs}, targets, labels, keep, "restricted to the target's classes")
    full, restricted = rows
    assert (full["output"], restricted["output"]) == ("full", "restricted")
    assert full["output_name"] == "full 4-way output" and not full["transductive"]
    cm_full = np.zeros((4, 4), int)
    for t, p in [(0, 1), (0, 1), (2, 2), (2, 1), (3, 1), (3, 0)]:
        cm_full[t, p] += 1
    assert full["confusion_matrix"] == cm_full.tolist()
    assert full["ua"] == pytest.approx((0 / 2 + 1 / 2 + 0 / 2) / 3) and full["wa"] == pytest.approx(1 / 6)
    cm_r = np.array([[1, 1, 0],   # neutral -> neutral, happy
                     [0, 1, 1],   # happy -> happy, sad
                     [1, 0, 1]])  # sad -> sad, neutral
    assert restricted["classes"] == ["neutral", "happy", "sad"] and restricted["confusion_matrix"] == cm_r.tolist()
    assert restricted["ua"] == pytest.approx(0.5) and restricted["wa"] == pytest.approx(0.5)
    f1 = 2 * 0.5 * 0.5 / 1.0  # precision = recall = 0.5 for every class
    assert restricted["macro_f1"] == pytest.approx(f1)
    assert restricted["scorable_classes"] == ["neutral", "happy", "sad"]


def test_views_with_given_labels_leave_out_other_clips_and_name_prior_rows():
    labels = ["neutral", "happy", "sad", "angry"]
    probs = np.tile([[0.1, 0.2, 0.3, 0.4]], (30, 1))
    targets = np.array([0, 1, 2, 3] * 7 + [0, 0])
    rows = output_views({PLAIN: probs, ADAPT_SET: probs}, targets, labels, [0, 1], "restricted to labels=[neutral, happy]",
                        prior="em", train_prior=np.full(4, 0.25), min_clips=20)
    names = [(r["output"], r["adaptation"]) for r in rows]
    assert names == [("full", PLAIN), ("full", PRIOR_EM), ("restricted", PLAIN), ("restricted", PRIOR_EM),
                     ("full", ADAPT_SET), ("full", f"{ADAPT_SET} + {PRIOR_EM}"),
                     ("restricted", ADAPT_SET), ("restricted", f"{ADAPT_SET} + {PRIOR_EM}")]
    assert [r["transductive"] for r in rows] == [False, True, False, True, True, True, True, True]
    r = rows[2]
    assert r["n"] == 16 and r["excluded"] == 14 and r["classes"] == ["neutral", "happy"]
    assert set(rows[3]["prior"]) == {"neutral", "happy"}
    few = output_views({PLAIN: probs[:5]}, targets[:5], labels, None, "", prior="em", train_prior=np.full(4, 0.25),
                       min_clips=20)
    assert "fewer than adapt_min_clips=20" in few[1]["note"] and few[1]["confusion_matrix"] == few[0]["confusion_matrix"]


def test_scorable_scores_is_still_importable_from_cross_corpus():
    from ser_lightning.cli.cross_corpus import scorable_scores as from_cli

    assert from_cli is scorable_scores
    s = score_view(np.eye(3), np.array([0, 1, 2]), ["a", "b", "c"], [0, 1, 2])
    assert s["ua"] == 1.0 and s["excluded"] == 0


def test_settings_are_checked():
    assert check_adapt(None, None, 20) == ("none", "none", 20)
    with pytest.raises(ValueError, match="adapt='speaker'.*speakers are unknown"):
        check_adapt("speaker", allowed=("none", "set"))
    with pytest.raises(ValueError, match="adapt_prior='bayes'"):
        check_adapt("set", "bayes")
    with pytest.raises(ValueError, match="adapt_min_clips=1"):
        check_adapt("set", "none", 1)


# ---------------------------------------------------------------------------------- prediction on a set
@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """3 actors × 8 emotions × 1 statement (24 clips, 16 kHz, 0.6 s)."""
    return make_ravdess(tmp_path_factory.mktemp("set"), actors=range(1, 4), statements=(1,), sample_rate=16000,
                        duration_s=0.5)


def _loaded(classifier) -> LoadedModel:
    from ser_lightning.data.audio import AudioConfig
    from ser_lightning.inference.checkpoint import ProbabilityModel
    from ser_lightning.inference.predictor import _torch_runner

    embed, run_pooled = _pooled_functions(classifier, torch.device("cpu"))
    module = ProbabilityModel.from_classifier(classifier)
    return LoadedModel(_torch_runner(module, torch.device("cpu")), list(classifier.class_names), AudioConfig(duration_s=1.0),
                       "byol_s", "pytorch", "byol.ckpt", embed=embed, run_pooled=run_pooled, adapt_refusal=None,
                       training_prior=training_prior([1, 2, 2, 2, 2, 2, 2, 2], "balanced"), prior_refusal=None)


def test_predict_set_adapts_to_the_set_as_computed_by_hand(byol, clips):
    from ser_lightning.data.audio import AudioConfig

    model = _loaded(byol)
    files = find_audio(clips / "ravdess")
    records, info = predict_set(files, model, adapt="set", vad=False, labels="quad4")
    assert info["adaptation"] == ADAPT_SET and info["transductive"] and info["adapt"]["clips"] == 24
    assert info["labels"] == ["neutral", "happy", "sad", "angry"]
    cfg = AudioConfig(duration_s=1.0)
    waves = np.stack([make_window(sf.read(p, dtype="float32")[0], 0, cfg) for p, _ in files])
    with torch.no_grad():
        pooled = byol.network.pooled_states(torch.from_numpy(waves)).numpy().astype(np.float64)
    # BatchNorm's eps (1e-5) floors an sd at sqrt(eps): some features of these tones hardly vary
    mean, sd = pooled.mean(0), np.maximum(pooled.std(0), np.sqrt(byol.network.pooled_norm.eps))
    assert (pooled.std(0) < np.sqrt(1e-5)).any()
    logits = _hand_logits(byol.network, pooled.astype(np.float32), mean, sd)
    want = restrict_probabilities(torch.softmax(torch.from_numpy(logits), 1).numpy(), [0, 2, 3, 4])
    got = np.array([[r["probabilities"][c] for c in info["labels"]] for r in records])
    np.testing.assert_allclose(got, want, atol=2e-4)
    plain = predict_files(files, model, vad=False, labels="quad4")  # the unadapted answers are kept beside
    for r, p in zip(records, plain):
        assert r["plain"]["label"] == p["label"]
        np.testing.assert_allclose(list(r["plain"]["probabilities"].values()), list(p["probabilities"].values()), atol=1e-5)
    assert not np.allclose(got, [list(p["probabilities"].values()) for p in plain], atol=1e-3)

    # EM on top: the restricted, adapted probabilities re-weighted from the (uniform) training prior
    records_em, info_em = predict_set(files, model, adapt="set", adapt_prior="em", vad=False, labels="quad4")
    fit = em_prior_correction(want, np.full(4, 0.25))
    got_em = np.array([[r["probabilities"][c] for c in info["labels"]] for r in records_em])
    np.testing.assert_allclose(got_em, fit.probs, atol=5e-4)
    assert info_em["adaptation"] == f"{ADAPT_SET} + {PRIOR_EM}"
    np.testing.assert_allclose(list(info_em["prior"]["estimated_prior"].values()), fit.prior, atol=5e-4)


def test_a_small_set_keeps_the_training_statistics_with_a_note(byol, clips, caplog):
    model = _loaded(byol)
    files = find_audio(clips / "ravdess" / "Actor_01")[:3]
    records, info = predict_set(files, model, adapt="set", adapt_prior="em", vad=False)
    plain = predict_files(files, model, vad=False)
    assert info["adaptation"] == PLAIN and not info["transductive"] and len(info["notes"]) == 2
    assert "3 file(s) classified, fewer than adapt_min_clips=20" in info["notes"][0]
    assert [r["probabilities"] for r in records] == [p["probabilities"] for p in plain]
    assert all("plain" not in r for r in records)


def test_models_that_cannot_adapt_say_so(clips):
    fake = _fake_model()
    files = find_audio(clips / "ravdess" / "Actor_01")
    with pytest.raises(ValueError, match="only a train.py checkpoint"):
        predict_set(files, fake, adapt="set", vad=False)
    with pytest.raises(ValueError, match="adapt_prior=em needs the training class counts"):
        predict_set(files, fake, adapt_prior="em", vad=False)
