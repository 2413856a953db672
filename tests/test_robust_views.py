"""Robustness transforms (``ser_lightning.features.robust``) and the cached augmented views of the
frozen-feature path (``data.train_views``, ``ser_lightning.data.views``): every transform measured on
generated audio, and the views cache built once, keyed on its settings, off at K=0."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ser_lightning.data.views import clip_identity, make_view, view_seed
from ser_lightning.features.robust import (
    Codec,
    Gain,
    Noise,
    Pitch,
    Reverb,
    Speed,
    Telephone,
    ViewChain,
    build_view_chain,
    codec_round_trip,
)
from ser_lightning.modules.classifier import SERClassifier
from ser_lightning.modules.frozen_features import use_frozen_features
from tests.conftest import whole_clip_datamodule

pytestmark = pytest.mark.usefixtures("one_thread")

SR = 16000
BYOL = {"name": "byol_s", "pool_each_layer": True}
#: A cheap chain for the data-side tests (no reverb or pitch: those take longer per clip).
FAST_VIEWS = {"seed": 0, "noise": {"p": 1.0, "snr_db": [10.0, 20.0]}, "gain": {"p": 0.5, "gain_db": [-6.0, 6.0]},
              "telephone": {"p": 0.5}}


def _sine(freq_hz: float, duration_s: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(duration_s * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def _speechlike(duration_s: float = 2.0, seed: int = 0) -> np.ndarray:
    """A 220 Hz tone, amplitude-modulated at 3 Hz, with a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.standard_normal(len(t))
    return x.astype(np.float32)


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.asarray(x, dtype=np.float64) ** 2))


def _band_share(x: np.ndarray, low_hz: float, high_hz: float) -> float:
    """Share of the energy of ``x`` between ``low_hz`` and ``high_hz``."""
    spec = np.abs(np.fft.rfft(np.asarray(x, dtype=np.float64))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return float(spec[(f >= low_hz) & (f < high_hz)].sum() / spec.sum())


def _peak_hz(x: np.ndarray) -> float:
    """Frequency of the largest spectral peak (Hann window, parabolic interpolation)."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(spec[1:-1])) + 1
    a, b, c = np.log(spec[k - 1: k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * SR / len(x)


# --- the transforms, measured ------------------------------------------------------------------------------


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
@pytest.mark.parametrize("color", ["white", "pink", "brown"])
def test_noise_is_added_at_the_asked_snr(snr_db, color):
    x = _speechlike()
    y, drawn = Noise(snr_db=[snr_db, snr_db], colors=[color])(x, SR, seed=3)
    assert drawn == {"snr_db": snr_db, "color": color} and y.shape == x.shape
    measured = 10 * np.log10(_power(x) / _power(y - x))
    assert abs(measured - snr_db) < 0.1


def test_noise_colour_sets_the_spectral_slope():
    x = np.zeros(4 * SR, dtype=np.float32)
    x[::400] = 1.0  # a click train: any signal power will do, the noise is what is measured
    shares = {c: _band_share(Noise(snr_db=[0, 0], colors=[c])(x, SR, 1)[0] - x, 0, 500) for c in ("white", "brown")}
    assert shares["white"] < 0.1 < 0.5 < shares["brown"]  # white: 500 / 8000 of the power; brown: mostly low


def test_telephone_band_leaves_almost_nothing_above_4khz_or_below_200hz():
    x = (0.1 * np.random.default_rng(0).standard_normal(3 * SR)).astype(np.float32)  # white: flat to 8 kHz
    y, _ = Telephone()(x, SR, seed=0)
    assert y.shape == x.shape
    assert _band_share(x, 4000, 8001) > 0.45 and _band_share(x, 0, 200) > 0.02
    assert _band_share(y, 4000, 8001) < 1e-3  # the 8 kHz channel carries nothing above its 4 kHz Nyquist
    assert _band_share(y, 0, 200) < 2e-3  # the 300 Hz high-pass edge, 24 dB per octave
    assert _band_share(y, 300, 3400) > 0.9


@pytest.mark.parametrize("codec", ["mp3", "opus", "aac"])
def test_codec_round_trip_keeps_length_and_timing_and_changes_the_signal(codec):
    from scipy.signal import chirp

    t = np.arange(int(1.7 * SR)) / SR
    x = (0.4 * chirp(t, 200, t[-1], 3000) * (0.6 + 0.4 * np.sin(2 * np.pi * 2.5 * t))).astype(np.float32)  # no period
    y = codec_round_trip(x, SR, codec, 16000)
    assert y.shape == x.shape and y.dtype == np.float32
    assert float(np.max(np.abs(y - x))) > 1e-3  # lossy: changed
    lag = int(np.argmax(np.correlate(x[2000:14000], y[4000:12000], "valid"))) - 2000
    assert lag == 0  # the encoder's priming samples were removed: no delay
    assert _power(y - x) < 0.3 * _power(x)  # and it is still the same signal


def test_codec_stage_draws_codec_and_bitrate_from_its_lists():
    stage = Codec(codecs=["opus", "aac"], bitrate_kbps=[24, 48])
    drawn = [stage(_sine(300, 0.5), SR, seed)[1] for seed in range(12)]
    assert {d["codec"] for d in drawn} == {"opus", "aac"} and {d["bitrate_kbps"] for d in drawn} == {24.0, 48.0}


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_changes_duration_and_frequency_by_the_factor(factor):
    x = _sine(440, 2.0)
    y, drawn = Speed(factor=[factor, factor])(x, SR, seed=0)
    assert drawn == {"factor": factor}
    assert abs(len(y) - len(x) / factor) <= 1
    assert _peak_hz(y) == pytest.approx(440 * factor, rel=2e-3)


@pytest.mark.parametrize("semitones", [-3.0, 2.0, 5.0])
def test_pitch_moves_a_sine_by_the_asked_semitones_and_keeps_the_duration(semitones):
    x = _sine(440, 1.5)
    y, drawn = Pitch(semitones=[semitones, semitones])(x, SR, seed=0)
    assert drawn == {"semitones": semitones} and y.shape == x.shape
    got = _peak_hz(y[2000:-2000])
    assert 12 * np.log2(got / 440) == pytest.approx(semitones, abs=0.1)


@pytest.mark.parametrize("gain_db", [-6.0, 4.5])
def test_gain_scales_by_the_asked_db(gain_db):
    x = _speechlike()
    y, drawn = Gain(gain_db=[gain_db, gain_db])(x, SR, seed=0)
    assert drawn == {"gain_db": gain_db}
    assert 10 * np.log10(_power(y) / _power(x)) == pytest.approx(gain_db, abs=1e-3)


@pytest.mark.parametrize("rt60_s", [0.3, 0.7])
def test_reverb_adds_a_tail_of_the_rooms_rt60(rt60_s):
    import pyroomacoustics as pra

    x = np.zeros(2 * SR, dtype=np.float32)
    x[0] = 1.0  # an impulse: the output is the room's impulse response
    y, drawn = Reverb(rt60_s=[rt60_s, rt60_s])(x, SR, seed=1)
    assert y.shape == x.shape and drawn["rt60_s"] == rt60_s
    energy = np.asarray(y, dtype=np.float64) ** 2
    assert energy[int(0.05 * SR):].sum() > 1e-3 * energy.sum()  # a tail well after the impulse (which has none)
    measured = pra.experimental.measure_rt60(y, fs=SR)
    assert 0.6 * rt60_s < measured < 1.6 * rt60_s


def test_every_transform_gives_the_same_output_for_the_same_seed_and_restores_the_random_states():
    x = _speechlike(1.0)
    stages = [Speed(), Pitch(), Reverb(), Noise(), Gain(), Telephone(), Codec()]
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    for stage in stages:
        a, pa = stage(x, SR, seed=5)
        b, pb = stage(x, SR, seed=5)
        assert np.array_equal(a, b) and pa == pb, stage.name
    assert np.array_equal(np.random.get_state()[1], before)  # the caller's NumPy stream is untouched
    c, _ = Noise()(x, SR, seed=6)
    assert not np.array_equal(c, Noise()(x, SR, seed=5)[0])


def test_chain_applies_stages_by_probability_and_a_stage_keeps_its_draws_when_another_is_switched_off():
    x = _speechlike(1.0)
    both = build_view_chain({"noise": {"p": 1.0}, "codec": {"p": 1.0, "codecs": ["opus"]}})
    noise_only = build_view_chain({"noise": {"p": 1.0}, "codec": {"p": 0.0}})
    _, applied = both(x, SR, seed=9)
    _, alone = noise_only(x, SR, seed=9)
    assert [a["stage"] for a in applied] == ["noise", "codec"] and alone == applied[:1]
    half = build_view_chain({"gain": {"p": 0.5}})
    used = [len(half(x, SR, seed=s)[1]) for s in range(40)]
    assert 8 < sum(used) < 32  # about half the views
    assert len(build_view_chain({})) == 0 and np.array_equal(ViewChain()(x, SR, 0)[0], x)


@pytest.mark.parametrize(("settings", "match"), [
    ({"echo": {"p": 1.0}}, "augment.views.echo is not a view stage"),
    ({"noise": {"p": 1.5}}, r"augment.views.noise.p=1.5 must be a probability"),
    ({"noise": {"p": 1.0, "snr": [1, 2]}}, "augment.views.noise.snr is not a setting of the noise stage"),
    ({"noise": {"p": 1.0, "snr_db": [30, 5]}}, r"augment.views.noise.snr_db=\[30, 5\]"),
    ({"codec": {"p": 1.0, "codecs": ["flac"]}}, "augment.views.codec.codecs"),
    ({"telephone": {"p": 1.0, "rolloff_db": 20}}, "augment.views.telephone.rolloff_db=20"),
    ({"noise": 0.5}, "augment.views.noise=0.5 must be a block"),
])
def test_bad_view_settings_are_refused_in_one_line_naming_the_setting(settings, match):
    with pytest.raises(ValueError, match=match):
        build_view_chain(settings)


# --- the views of the frozen-feature path ------------------------------------------------------------------


def _model(dm):
    model = SERClassifier(BYOL, {"name": "logmel"}, dm.class_names).eval()
    dm.set_frontend(model.frontend)
    return model


def _feature_cache_dirs(cache: Path) -> set[str]:
    return {p.name for p in (cache / "embeddings").iterdir() if p.is_dir()}


def test_views_are_embedded_once_as_training_items_with_their_clips_label_and_speaker(varied_ravdess, tmp_path):
    cache = tmp_path / "c"
    dm = whole_clip_datamodule(varied_ravdess, cache, train_views=2, augment={"views": FAST_VIEWS})
    model = _model(dm)
    train_rows, train_labels = dm.datasets["train"].rows.copy(), dm.datasets["train"].labels.copy()
    n_val = len(dm.datasets["val"])
    all_rows = dm.cache_rows()[0]
    cached = use_frozen_features(model.network, dm, BYOL, progress=False)
    assert cached.views["built"] == [True, True] and cached.views["views"] == 2
    assert cached.views["clips"] == len(all_rows)
    idents = [json.loads((Path(d) / "index.json").read_text())["identity"]["views"]
              for d in cached.views["feature_caches"]]
    assert [i["view"] for i in idents] == [0, 1] and idents[0]["seed"] == 0
    assert [s["stage"] for s in idents[0]["stages"]] == ["noise", "gain", "telephone"]
    train = dm.datasets["train"]
    n = len(train_rows)
    assert len(train) == 3 * n  # every training clip: clean + 2 views
    # each item is a clip's: its label, speaker and corpus; the clean items are the clips themselves
    row_label = dict(zip(train_rows.tolist(), train_labels.tolist()))
    speaker = {r: u.speaker for r, u in zip(all_rows.tolist(), dm.utterances)}
    assert sorted(dm.train_item_rows[:n].tolist()) == sorted(train_rows.tolist())
    assert [row_label[r] for r in dm.train_item_rows.tolist()] == train.labels.tolist()
    train_speakers = {speaker[r] for r in train_rows.tolist()}
    assert {speaker[r] for r in dm.train_item_rows.tolist()} == train_speakers
    assert np.array_equal(np.bincount(dm.train_item_rows, minlength=dm.cache.lengths.shape[0])[train_rows], [3] * n)
    # the views' cached frozen features are the frozen features of the seeded views
    first = int(np.flatnonzero(dm.train_item_rows == train_rows[0])[-1])  # its view 1
    emb = torch.from_numpy(np.asarray(train.__getitems__([first]).features))
    row = int(train_rows[0])
    wave = dm.cache.waves[row, : dm.cache.lengths[row]].astype(np.float32)
    view, _ = make_view(wave, dm.view_chain, SR, view_seed(0, dm.row_clip_id[row], 1), "peak", -20.0, 2 * SR)
    with torch.no_grad():
        want = model.network.pooled_states(torch.from_numpy(view)[None], torch.tensor([len(view)]))
    torch.testing.assert_close(emb, want, atol=1e-4, rtol=1e-4)
    clean = torch.from_numpy(np.asarray(train.__getitems__([int(np.flatnonzero(dm.train_item_rows == row)[0])]).features))
    assert (clean - emb).abs().max() > 1e-3  # a view is not the clean clip
    # validation and test stay clean: one item per clip
    assert len(dm.datasets["val"]) == n_val
    # the refit trains on the training and validation clips and their views
    dm.merge_validation_into_training()
    assert len(dm.datasets["train"]) == 3 * (n + n_val) == len(dm.train_item_rows)


def test_views_cache_is_reused_with_the_same_settings_and_rebuilt_when_they_change(varied_ravdess, tmp_path):
    cache = tmp_path / "c"

    def run(k: int, views: dict):
        dm = whole_clip_datamodule(varied_ravdess, cache, train_views=k, augment={"views": views})
        return dm, use_frozen_features(_model(dm).network, dm, BYOL, progress=False)

    dm, first = run(2, FAST_VIEWS)
    _, again = run(2, FAST_VIEWS)
    assert first.views["built"] == [True, True] and again.views["built"] == [False, False] and not again.built
    assert again.views["feature_caches"] == first.views["feature_caches"]
    a = np.asarray(dm.datasets["train"].__getitems__(list(range(len(dm.datasets["train"])))).features)
    # K = 3 reuses views 0 and 1 and extracts view 2 only
    _, more = run(3, FAST_VIEWS)
    assert more.views["built"] == [False, False, True] and more.views["feature_caches"][:2] == first.views["feature_caches"]
    # another chain setting or seed: every view again, in other caches
    for views in ({**FAST_VIEWS, "noise": {"p": 1.0, "snr_db": [0.0, 5.0]}}, {**FAST_VIEWS, "seed": 1}):
        _, other = run(1, views)
        assert other.views["built"] == [True] and other.views["feature_caches"][0] not in first.views["feature_caches"]
    # a stage that is off does not enter the key
    _, off = run(2, {**FAST_VIEWS, "codec": {"p": 0.0}})
    assert off.views["built"] == [False, False]
    dm_b, _ = run(2, FAST_VIEWS)
    b = np.asarray(dm_b.datasets["train"].__getitems__(list(range(len(dm_b.datasets["train"])))).features)
    np.testing.assert_array_equal(a, b)


def test_zero_views_leave_the_training_set_and_the_cache_untouched(varied_ravdess, tmp_path):
    plain_cache, views_cache = tmp_path / "plain", tmp_path / "with_chain"
    plain = whole_clip_datamodule(varied_ravdess, plain_cache)
    off = whole_clip_datamodule(varied_ravdess, views_cache, train_views=0, augment={"views": FAST_VIEWS})
    a = use_frozen_features(_model(plain).network, plain, BYOL, progress=False)
    b = use_frozen_features(_model(off).network, off, BYOL, progress=False)
    assert a.views is None and b.views is None and off.train_item_rows is None
    assert _feature_cache_dirs(plain_cache) == _feature_cache_dirs(views_cache) == {a.directory.name} == {b.directory.name}
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(plain.datasets[name].rows, off.datasets[name].rows)
        np.testing.assert_array_equal(plain.datasets[name].labels, off.datasets[name].labels)
    assert plain.hparams.train_views == 0


def _manifest_two_corpora(root: Path) -> Path:
    """corpus ``home`` (train and val partitions) and ``away`` (test partition only): 0.5 s tones, 16 kHz."""
    rows = []
    rng = np.random.default_rng(0)
    for corpus, parts in (("home", ("train", "train", "val")), ("away", ("test", "test"))):
        for s, part in enumerate(parts):
            for e, label in enumerate(("angry", "happy", "sad", "neutral")):
                path = root / corpus / f"s{s}_{label}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                t = np.arange(SR // 2) / SR
                sf.write(path, (0.5 * np.sin(2 * np.pi * (200 + 80 * e) * t) + 0.05 * rng.standard_normal(len(t)))
                         .astype(np.float32), SR)
                rows.append({"path": str(path), "label": label, "speaker": f"s{s}", "corpus": corpus, "partition": part})
    out = root / "two.csv"
    with out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return out


def test_views_cover_the_corpora_that_train_or_validate_and_skip_a_test_only_corpus(tmp_path):
    from ser_lightning.data.datamodule import SERDataModule

    manifest = _manifest_two_corpora(tmp_path / "data")
    dm = SERDataModule(root=str(tmp_path / "data"), corpora=[str(manifest)], label_set="quad4", split="partition",
                       cache_dir=str(tmp_path / "c"), duration_s=1.0, clip_length="whole", batch_size=8,
                       progress=False, train_views=1, augment={"views": FAST_VIEWS})
    dm.setup("fit")
    rows = dm.view_rows()
    assert set(dm.row_corpus[rows]) == {"home"} and len(rows) == 12
    assert dm.row_clip_id[rows[0]].startswith("home:home/")  # relative to the data root
    cached = use_frozen_features(_model(dm).network, dm, BYOL, progress=False)
    assert cached.views["clips"] == 12 and len(dm.datasets["train"]) == 2 * 8 and len(dm.datasets["test"]) == 8
    dm.merge_validation_into_training()
    assert len(dm.datasets["train"]) == 2 * 12


def test_clip_identity_is_relative_to_the_data_root_and_view_seeds_differ_per_clip_and_view(tmp_path):
    assert clip_identity(str(tmp_path / "ravdess" / "a.wav"), "ravdess", tmp_path) == "ravdess:ravdess/a.wav"
    assert clip_identity("/elsewhere/a.wav", "x", tmp_path) == "x:/elsewhere/a.wav"
    seeds = {view_seed(0, c, j) for c in ("a", "b") for j in (0, 1)} | {view_seed(1, "a", 0)}
    assert len(seeds) == 5 and view_seed(0, "a", 1) == view_seed(0, "a", 1)


@pytest.mark.parametrize(("kw", "match"), [
    ({"train_views": 2}, "data.train_views=2 needs augment.views"),
    ({"train_views": -1, "augment": {"views": FAST_VIEWS}}, "data.train_views=-1"),
    ({"train_views": 2, "augment": {"views": FAST_VIEWS}, "clip_length": "fixed"}, "data.clip_length=fixed"),
    ({"train_views": 2, "augment": {"views": FAST_VIEWS}, "clip_length": "whole", "train_crop_s": 1.0},
     "data.train_crops=0"),
    ({"train_views": 2, "augment": {"views": FAST_VIEWS}, "clip_length": "whole", "speaker_norm": True},
     "data.speaker_norm"),
])
def test_bad_view_data_settings_are_refused_in_one_line(kw, match):
    from ser_lightning.data.datamodule import SERDataModule

    with pytest.raises(ValueError, match=match):
        SERDataModule(progress=False, **kw)


def _config(*overrides: str):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[1] / "ser_lightning" / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def test_views_on_the_waveform_path_are_refused_by_the_loader_and_by_config_validation(varied_ravdess, tmp_path):
    from ser_lightning.cli.validate import validate_config

    dm = whole_clip_datamodule(varied_ravdess, tmp_path / "c", train_views=1, augment={"views": FAST_VIEWS})
    with pytest.raises(ValueError, match="data.train_views=1 adds cached augmented views"):
        dm.train_dataloader()
    with pytest.raises(ValueError, match=r"^data.train_views=2 embeds augmented views once .*model.feature_cache=off"):
        validate_config(_config("model=byol_s", "augment=robust", "model.feature_cache=off"))
    with pytest.raises(ValueError, match=r"^data.train_views=2 .*data.clip_length=fixed"):
        validate_config(_config("model=homebrew_cnn", "augment=robust"))
    validate_config(_config("model=byol_s", "augment=robust", "data.train_views=3"))  # frozen-feature path: accepted
    cfg = _config("augment=robust")
    assert cfg.data.train_views == 2 and cfg.augment.views.noise.p > 0 and _config().data.train_views == 0


def test_views_extraction_benchmark_smoke(tmp_path):
    from benchmarks import views_extraction

    out = tmp_path / "views.json"
    assert views_extraction.main(["--smoke", "--views", "2", "--stage-clips", "2", "--out", str(out)]) == 0
    r = json.loads(out.read_text())["result"]
    assert [t["K"] for t in r["by_k"]] == [1, 2] and all(t["all_fresh"] for t in r["by_k"])
    assert r["by_k"][1]["views_extract_s"] >= r["by_k"][0]["views_extract_s"] > 0
    assert [s["stage"] for s in r["stage_costs"]][:-1] == ["speed", "noise", "gain", "telephone"]
    assert "| K |" in out.with_suffix(".md").read_text()
