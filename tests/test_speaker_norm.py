"""Per-speaker normalisation (``data.speaker_norm=true``): the maths, the datamodule, the refusal on the
waveform path, the protocol in ``metrics.json``, eval.py re-applying it and prediction with a speaker reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hydra import compose, initialize_config_dir

from ser_lightning.cli.validate import validate_config
from ser_lightning.data.datamodule import SERDataModule
from ser_lightning.data.speaker_norm import (
    PROTOCOL_PLAIN,
    PROTOCOL_SPEAKER_NORM,
    standardise_per_speaker,
)
from ser_lightning.inference.api import EmotionModel
from ser_lightning.inference.checkpoint import ProbabilityModel
from ser_lightning.inference.predictor import (
    LoadedModel,
    SpeakerStats,
    _speaker_norm_model,
    find_audio,
    make_window,
    predict_files,
    speaker_reference_statistics,
)
from ser_lightning.modules.classifier import SERClassifier
from tests.conftest import REPO, make_ravdess, run_script

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """4 actors × 8 emotions × 2 statements, 16 kHz, 0.6–0.7 s."""
    return make_ravdess(tmp_path_factory.mktemp("spk"), actors=range(1, 5), sample_rate=16000, duration_s=0.6)


def _per_speaker_moments(x: np.ndarray, speakers: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    speakers = np.asarray(speakers)
    return [(x[speakers == s].mean(axis=0), x[speakers == s].std(axis=0)) for s in sorted(set(speakers))]


# ------------------------------------------------------------------------------------------ maths
def test_each_speakers_rows_have_mean_0_and_sd_1_per_feature():
    rng = np.random.default_rng(0)
    speakers = [f"s{i % 3}" for i in range(30)]
    offset = {"s0": 5.0, "s1": -3.0, "s2": 0.5}
    scale = {"s0": 0.1, "s1": 4.0, "s2": 1.0}
    x = np.stack([offset[s] + scale[s] * rng.standard_normal((2, 4)) for s in speakers]).astype(np.float32)
    out, table = standardise_per_speaker(x, speakers)
    assert out.shape == x.shape and out.dtype == np.float32
    for mean, sd in _per_speaker_moments(out, speakers):
        np.testing.assert_allclose(mean, 0.0, atol=1e-5)
        np.testing.assert_allclose(sd, 1.0, atol=1e-4)
    assert table == [("s0", 10, "own"), ("s1", 10, "own"), ("s2", 10, "own")]
    # a feature constant for a speaker is centred (sd floor), not turned into inf/NaN
    x[np.asarray(speakers) == "s0", 0, 0] = 7.0
    out, _ = standardise_per_speaker(x, speakers)
    assert np.isfinite(out).all() and np.all(out[np.asarray(speakers) == "s0", 0, 0] == 0.0)


def test_a_single_clip_speaker_gets_the_statistics_of_all_clips_with_a_warning(caplog):
    x = np.arange(12, dtype=np.float32).reshape(4, 3) ** 1.5
    speakers = ["a", "a", "a", "lonely"]
    with caplog.at_level("WARNING"):
        out, table = standardise_per_speaker(x, speakers)
    assert ("lonely", 1, "all clips (single clip)") in table and "lonely" in caplog.text
    np.testing.assert_allclose(out[3], (x[3] - x.mean(axis=0)) / x.std(axis=0), rtol=1e-5)
    with pytest.raises(ValueError, match="3 speakers for 4 embedding rows"):
        standardise_per_speaker(x, speakers[:3])


# ------------------------------------------------------------------------------------- datamodule
def _dm(corpus: Path, cache: Path, run_dir: Path | None = None, **kw) -> SERDataModule:
    dm = SERDataModule(root=str(corpus), cache_dir=str(cache), duration_s=1.0, clip_length="whole", split="speaker",
                       val_speakers=1, test_speakers=1, batch_size=8, progress=False,
                       run_dir=str(run_dir) if run_dir else None, **kw)
    dm.setup("fit")
    return dm


def _served(dm: SERDataModule) -> tuple[np.ndarray, list[str]]:
    """Every split's embeddings as the loaders serve them, with each row's speaker."""
    rows, speakers = [], []
    assign = np.asarray(dm.assignment)
    for name, ds in dm.datasets.items():
        rows.append(ds.__getitems__(list(range(len(ds)))).features.numpy())
        speakers += [dm.utterances[i].speaker for i in np.flatnonzero(assign == name)]
    return np.concatenate(rows), speakers


def _fake_features(dm: SERDataModule, path: Path) -> np.ndarray:
    """A stand-in frozen-feature cache (one row per cache row) with a strong offset per speaker."""
    rows, _ = dm.cache_rows()
    rng = np.random.default_rng(1)
    data = rng.standard_normal((len(rows), 2, 3)).astype(np.float32)
    speaker_of_row = {}
    assign = np.asarray(dm.assignment)
    for name, ds in dm.datasets.items():
        for r, i in zip(ds.rows, np.flatnonzero(assign == name)):
            speaker_of_row[int(r)] = dm.utterances[i].speaker
    for k, r in enumerate(rows):
        data[k] += 10.0 * int(speaker_of_row[int(r)].split("_")[-1])
    np.save(path, data)
    return rows


def test_datamodule_standardises_every_speaker_over_all_splits_without_reading_labels(corpus, tmp_path):
    plain = _dm(corpus, tmp_path / "cache")
    rows = _fake_features(plain, tmp_path / "emb.npy")
    plain.use_feature_cache(tmp_path / "emb.npy", rows)
    raw, speakers = _served(plain)
    assert plain.protocol == PROTOCOL_PLAIN
    assert abs(_per_speaker_moments(raw, speakers)[3][0].mean()) > 30  # the plain path serves the raw rows

    normed = _dm(corpus, tmp_path / "cache", run_dir=tmp_path / "run", speaker_norm=True)
    normed.use_feature_cache(tmp_path / "emb.npy", rows)
    out, speakers = _served(normed)
    assert normed.protocol == PROTOCOL_SPEAKER_NORM and "transductive" in normed.protocol
    assert {normed.utterances[i].speaker for i in np.flatnonzero(np.asarray(normed.assignment) == "test")}
    for mean, sd in _per_speaker_moments(out, speakers):  # test and validation speakers included
        np.testing.assert_allclose(mean, 0.0, atol=1e-5)
        np.testing.assert_allclose(sd, 1.0, atol=1e-4)
    assert (tmp_path / "run" / "speaker_norm.csv").read_text().splitlines()[1:] == [
        f"ravdess_0{a},16,own" for a in range(1, 5)]

    # labels are never read: the same data with shuffled labels gives the same features
    shuffled = _dm(corpus, tmp_path / "cache", speaker_norm=True)
    rng = np.random.default_rng(3)
    for ds in shuffled.datasets.values():
        ds.labels = rng.permutation(ds.labels)
    shuffled.use_feature_cache(tmp_path / "emb.npy", rows)
    np.testing.assert_array_equal(_served(shuffled)[0], out)


def test_waveform_batches_are_refused_with_speaker_norm(corpus, tmp_path):
    dm = _dm(corpus, tmp_path / "cache", speaker_norm=True)
    with pytest.raises(ValueError, match=r"data.speaker_norm=true .* feeds waveforms"):
        dm.train_dataloader()
    with pytest.raises(ValueError, match="data.speaker_norm='yes' must be true or false"):
        SERDataModule(speaker_norm="yes")


def _config(*overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "ser_lightning" / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize("overrides, why", [
    (["model=homebrew_cnn"], "the network is not an encoder model"),
    (["model=byol_s", "model.feature_cache=off"], "model.feature_cache=off"),
    (["model=byol_s", "model.freeze=full"], "the encoder trains"),
])
def test_validate_config_refuses_speaker_norm_without_the_frozen_feature_path(overrides, why):
    with pytest.raises(ValueError, match=r"^data.speaker_norm=true .*needs the frozen-feature path.*" + why):
        validate_config(_config(*overrides, "data.speaker_norm=true"))
    validate_config(_config("model=byol_s", "data.speaker_norm=true"))  # the frozen-feature path: accepted


# ------------------------------------------------------------------------------------- prediction
def _byol_classifier() -> SERClassifier:
    torch.manual_seed(0)
    return SERClassifier({"name": "byol_s", "pool_each_layer": True}, {"name": "raw"},
                         [f"c{i}" for i in range(8)]).eval()


def test_prediction_standardises_with_the_reference_and_refuses_without_it(corpus):
    from ser_lightning.data.audio import AudioConfig

    cfg = AudioConfig(duration_s=1.0)
    classifier = _byol_classifier()
    loaded = _speaker_norm_model(classifier, cfg, Path("spk.ckpt"), torch.device("cpu"))
    model = EmotionModel(loaded, vad=False)
    clip = corpus / "ravdess" / "Actor_02" / "03-01-05-01-01-01-02.wav"
    with pytest.raises(ValueError, match="data.speaker_norm=true and needs the speaker's statistics: pass speaker_reference"):
        model.predict(clip)
    ref_dir = corpus / "ravdess" / "Actor_02"
    got = model.predict(clip, speaker_reference=ref_dir)
    # by hand: the reference windows' pooled states → mean/sd → the clip's standardised states → head
    ref = [make_window(sf.read(p, dtype="float32")[0], 0, cfg) for p in sorted(ref_dir.glob("*.wav"))]
    with torch.no_grad():
        pooled = classifier.network.pooled_states(torch.from_numpy(np.stack(ref))).numpy().astype(np.float64)
        mean, sd = pooled.mean(axis=0), np.maximum(pooled.std(axis=0), 1e-5)
        x = classifier.network.pooled_states(torch.from_numpy(make_window(sf.read(clip, dtype="float32")[0], 0, cfg))[None])
        z = torch.from_numpy(((x.numpy() - mean) / sd).astype(np.float32))
        want = torch.softmax(classifier.network.forward_pooled(z), dim=-1)[0].numpy()
    np.testing.assert_allclose(list(got.probabilities.values()), want, atol=1e-5)
    # another speaker's statistics give other probabilities
    other = model.predict(clip, speaker_reference=corpus / "ravdess" / "Actor_03")
    assert not np.allclose(list(other.probabilities.values()), want, atol=1e-4)
    with pytest.raises(ValueError, match="at least 2"):
        model.predict(clip, speaker_reference=[clip])
    with pytest.raises(FileNotFoundError, match="speaker_reference=.*no such file"):
        model.predict(clip, speaker_reference=[corpus / "missing.wav"])


def test_a_plain_model_refuses_a_speaker_reference(corpus):
    from ser_lightning.data.audio import AudioConfig

    classifier = _byol_classifier()
    module = ProbabilityModel.from_classifier(classifier)

    def run(batch):
        with torch.no_grad():
            return module(torch.from_numpy(batch)).numpy()

    plain = LoadedModel(run, list(classifier.class_names), AudioConfig(duration_s=1.0), "byol_s", "pytorch", "plain.ckpt")
    clip = corpus / "ravdess" / "Actor_02" / "03-01-05-01-01-01-02.wav"
    assert EmotionModel(plain, vad=False).predict(clip).status == "ok"
    with pytest.raises(ValueError, match="trained without it .protocol: plain.: leave speaker_reference out"):
        EmotionModel(plain, vad=False).predict(clip, speaker_reference=corpus / "ravdess" / "Actor_02")
    with pytest.raises(ValueError, match="leave speaker_reference out"):
        speaker_reference_statistics(find_audio(corpus / "ravdess" / "Actor_02"), plain)
    stats = SpeakerStats(np.zeros((1, 1)), np.ones((1, 1)), 1, 2)
    with pytest.raises(ValueError, match="leave speaker_reference out"):
        predict_files(find_audio(clip), plain, vad=False, speaker_stats=stats)


# ----------------------------------------------------------------------------- train → eval → predict
@pytest.mark.slow
def test_train_records_the_protocol_and_eval_and_predict_reapply_it(corpus, tmp_path):
    common = ["model=byol_s", f"data.root={corpus}", f"data.cache_dir={tmp_path / 'cache'}", "data.val_speakers=1",
              "data.test_speakers=1", "data.duration_s=1.0", "trainer.max_epochs=2", "callbacks.progress_bar=null"]
    run = tmp_path / "run"
    r = run_script("train.py", *common, "data.speaker_norm=true", cwd=run)
    assert r.returncode == 0, r.stderr[-3000:]
    trained = json.loads((run / "metrics.json").read_text())
    assert trained["protocol"] == PROTOCOL_SPEAKER_NORM and trained["training_input"].startswith("frozen-feature")
    assert (run / "speaker_norm.csv").is_file()
    ckpt = run / "checkpoints" / "best.ckpt"
    assert torch.load(ckpt, weights_only=True)["datamodule_hyper_parameters"]["speaker_norm"] is True

    ev = tmp_path / "eval"
    r = run_script("eval.py", f"ckpt_path={ckpt}", f"data.root={corpus}", f"data.cache_dir={tmp_path / 'cache'}", cwd=ev)
    assert r.returncode == 0, r.stderr[-3000:]
    evaluated = json.loads((ev / "metrics.json").read_text())
    assert evaluated["protocol"] == PROTOCOL_SPEAKER_NORM and "protocol: speaker_norm" in (ev / "report.md").read_text()
    assert evaluated["confusion_matrix"] == trained["confusion_matrix"] and evaluated["ua"] == trained["ua"]

    # predict.py: refused without a reference, answers with one
    clip = corpus / "ravdess" / "Actor_04" / "03-01-05-01-01-01-04.wav"
    r = run_script("predict.py", f"ckpt_path={ckpt}", f"input={clip}", "vad.enabled=false", cwd=tmp_path / "p1")
    assert r.returncode == 1 and "pass speaker_reference" in r.stderr
    r = run_script("predict.py", f"ckpt_path={ckpt}", f"input={clip}", "vad.enabled=false",
                   f"speaker_reference={corpus / 'ravdess' / 'Actor_04'}", f"output={tmp_path / 'p2'}", cwd=tmp_path / "p2")
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((tmp_path / "p2" / "predictions.json").read_text())
    assert doc["model"]["protocol"] == PROTOCOL_SPEAKER_NORM and doc["model"]["speaker_reference"]["files"] == 16
    assert doc["files"][0]["status"] == "ok"
    r = run_script("export.py", f"ckpt_path={ckpt}", cwd=tmp_path / "x")
    assert r.returncode == 1 and "data.speaker_norm=true" in r.stderr

    # the plain protocol is recorded too
    plain = tmp_path / "plain"
    r = run_script("train.py", *common, "trainer.max_epochs=1", cwd=plain)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((plain / "metrics.json").read_text())["protocol"] == PROTOCOL_PLAIN
