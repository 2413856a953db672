"""Crop strategy of whole-clip encoders and silence trimming on the encoder path (``ser_lightning.data.crops``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ser_lightning.data.crops import CropGroups, average_crop_logits, even_windows, random_windows
from ser_lightning.data.datamodule import (
    CropBatch,
    FrozenFeatureBatch,
    SERDataModule,
    WholeClipBatch,
)
from ser_lightning.modules.classifier import SERClassifier
from ser_lightning.modules.frozen_features import use_frozen_features
from tests.conftest import tone, whole_clip_datamodule

pytestmark = pytest.mark.usefixtures("one_thread")

SR = 16000
BYOL = {"name": "byol_s", "pool_each_layer": True}


@pytest.fixture(scope="module")
def padded_ravdess(tmp_path_factory) -> Path:
    """4 actors × 8 emotions: 0.4 s of near-silence, a 0.8 s tone, 0.4 s of near-silence (16 kHz WAV)."""
    root = tmp_path_factory.mktemp("padded")
    rng = np.random.default_rng(0)
    for a in range(1, 5):
        d = root / "ravdess" / f"Actor_{a:02d}"
        d.mkdir(parents=True)
        for e in range(1, 9):
            quiet = 1e-4 * rng.standard_normal((int(0.4 * SR), 1)).astype(np.float32)
            x = np.concatenate([quiet, tone(200 + 60 * e, 0.8, SR, seed=a * 10 + e), quiet])
            sf.write(d / f"03-01-{e:02d}-01-01-01-{a:02d}.wav", x, SR)
    return root


def _is_slice(window: np.ndarray, clip: np.ndarray) -> bool:
    """Whether ``window`` is a contiguous run of ``clip``'s samples."""
    n = len(window)
    return any(np.array_equal(clip[s:s + n], window) for s in range(len(clip) - n + 1))


def test_even_windows_lie_inside_the_clip_span_it_and_a_short_clip_is_used_whole():
    lengths = np.array([48000, 16000, 9000, 32001])
    starts, lens = even_windows(lengths, 16000, 4)
    assert starts.shape == lens.shape == (4, 4)
    assert (starts >= 0).all() and (starts + lens <= lengths[:, None]).all()
    np.testing.assert_array_equal(lens[[0, 1, 3]], 16000)  # the crop length where the clip is long enough
    np.testing.assert_array_equal(lens[2], 9000)  # shorter than the crop: whole
    np.testing.assert_array_equal(starts[2], 0)
    assert starts[0, 0] == 0 and starts[0, -1] + 16000 == 48000  # first at the start, last at the end
    assert np.all(np.diff(starts[0]) > 0) and np.ptp(np.diff(starts[0])) <= 1  # evenly spaced
    one, _ = even_windows(lengths, 16000, 1)
    assert one[0, 0] == 16000 and one[1, 0] == 0  # a single window is centred


def test_random_windows_lie_inside_the_clip_and_reach_both_ends():
    rng = np.random.default_rng(0)
    lengths = np.array([16010, 12000])  # 11 possible starts for the first clip
    firsts = []
    for _ in range(400):
        starts, lens = random_windows(lengths, 16000, rng)
        assert (starts >= 0).all() and (starts + lens <= lengths).all()
        assert lens.tolist() == [16000, 12000] and starts[1] == 0
        firsts.append(int(starts[0]))
    assert set(firsts) == set(range(11))  # every start drawn, first and last included


def test_test_time_averaging_is_the_mean_of_the_per_crop_probabilities():
    torch.manual_seed(0)
    logits = torch.randn(6, 5) * 3  # 2 clips × 3 windows
    out = average_crop_logits(logits, 3)
    want = torch.softmax(logits, -1).reshape(2, 3, 5).mean(1)
    torch.testing.assert_close(torch.softmax(out, -1), want)
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(2))  # already log-probabilities
    torch.testing.assert_close(average_crop_logits(logits, 1), torch.log_softmax(logits, -1))


@pytest.mark.parametrize("kw, setting", [
    ({"train_crop_s": -1.0}, "data.train_crop_s"),
    ({"train_crop_s": float("nan")}, "data.train_crop_s"),
    ({"train_crop_s": "2s"}, "data.train_crop_s"),
    ({"test_crops": 0}, "data.test_crops"),
    ({"test_crops": 2.5, "train_crop_s": 1.0}, "data.test_crops"),
    ({"train_crops": -1, "train_crop_s": 1.0}, "data.train_crops"),
    ({"test_crops": 3}, "data.train_crop_s is null"),
    ({"train_crop_s": 1.0, "clip_length": "fixed"}, "data.clip_length=fixed"),
    ({"train_crop_s": 1.0, "speaker_norm": True}, "data.speaker_norm"),
])
def test_bad_crop_settings_get_one_line_naming_the_setting(kw, setting):
    with pytest.raises(ValueError, match=setting.replace(".", r"\.")) as err:
        SERDataModule(**{"clip_length": "whole", **kw})
    assert "\n" not in str(err.value)


def test_waveform_path_serves_random_training_windows_and_evenly_spaced_test_windows(varied_ravdess, tmp_path):
    dm = whole_clip_datamodule(varied_ravdess, tmp_path / "c", train_crop_s=1.0, test_crops=3)
    train = dm.datasets["train"]
    idx = list(range(len(train)))
    batch = train.__getitems__(idx)
    assert isinstance(batch, WholeClipBatch) and batch.waves.shape[1] == SR
    for i, n in enumerate(batch.lengths.tolist()):
        clip = dm.cache.waves[train.rows[i], : train.lengths[i]].astype(np.float32)
        assert n == min(SR, int(train.lengths[i]))  # 0.6 s clips whole, 1.5 s clips cut to 1 s
        assert _is_slice(batch.waves[i, :n].numpy(), clip) and torch.all(batch.waves[i, n:] == 0)
    long = [i for i in idx if train.lengths[i] > SR]
    again = train.__getitems__(idx)
    assert any(not torch.equal(batch.waves[i], again.waves[i]) for i in long)  # a new window each time
    val = dm.datasets["val"].__getitems__([0, 1])
    assert isinstance(val, CropBatch) and val.crops == 3 and val.target.shape == (2,)
    assert val.batch.waves.shape[0] == 6 and torch.equal(val.batch.target, val.target.repeat_interleave(3))
    # the refit's merged training set keeps the random windows
    dm.merge_validation_into_training()
    assert dm.datasets["train"].crop_samples == SR and dm.datasets["train"].crop_count == 0


def test_classifier_averages_the_probabilities_of_a_clips_windows(varied_ravdess, tmp_path):
    dm = whole_clip_datamodule(varied_ravdess, tmp_path / "c", train_crop_s=1.0, test_crops=3)
    model = SERClassifier(BYOL, {"name": "logmel"}, dm.class_names).eval()
    dm.set_frontend(model.frontend)
    batch = dm.datasets["val"].__getitems__([0, 1, 2])
    groups, target = dm.on_after_batch_transfer(batch, training=False)
    assert isinstance(groups, CropGroups) and groups.crops == 3 and torch.equal(target, batch.target)
    with torch.no_grad():
        out = model._logits(groups)
        windows = torch.cat([model._logits(dm.on_after_batch_transfer(
            WholeClipBatch(batch.batch.waves[i:i + 1, : int(batch.batch.lengths[i])], batch.batch.target[i:i + 1],
                           batch.batch.lengths[i:i + 1]), training=False)[0]) for i in range(9)])
    want = torch.softmax(windows, -1).reshape(3, 3, -1).mean(1)
    torch.testing.assert_close(torch.softmax(out, -1), want, atol=1e-5, rtol=1e-4)


def test_frozen_path_caches_training_and_test_windows_keyed_on_the_crop_settings(varied_ravdess, tmp_path):
    dm = whole_clip_datamodule(varied_ravdess, tmp_path / "c", train_crop_s=1.0, train_crops=2, test_crops=3)
    model = SERClassifier(BYOL, {"name": "logmel"}, dm.class_names).eval()
    dm.set_frontend(model.frontend)
    val_wave = dm.datasets["val"].__getitems__([0, 1])
    with torch.no_grad():
        want = model._logits(dm.on_after_batch_transfer(val_wave, training=False)[0])
    n_train, n_val = len(dm.datasets["train"]), len(dm.datasets["val"])
    cached = use_frozen_features(model.network, dm, BYOL, progress=False)
    assert set(cached.windows) == {"train", "test"} and cached.windows["train"]["built"]
    dirs = {cached.directory, *(Path(w["feature_cache"]) for w in cached.windows.values())}
    assert len(dirs) == 3
    ident = json.loads((Path(cached.windows["test"]["feature_cache"]) / "index.json").read_text())["identity"]
    assert ident["windows"] == {"crop_samples": SR, "count": 3, "placement": "even"}
    # every training clip gives its 2 windows as items, each with the clip's label
    train = dm.datasets["train"]
    assert len(train) == 2 * n_train and isinstance(train.__getitems__([0, 1]), FrozenFeatureBatch)
    np.testing.assert_array_equal(train.labels[0::2], train.labels[1::2])
    # validation: the windows' cached frozen features give the waveform path's averaged probabilities
    val = dm.datasets["val"].__getitems__([0, 1])
    assert isinstance(val, CropBatch) and val.batch.features.shape == (6, *model.network.pooled_shape)
    with torch.no_grad():
        got = model._logits(dm.on_after_batch_transfer(val, training=False)[0])
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    # the refit trains on every window of the training and validation clips
    dm.merge_validation_into_training()
    assert len(dm.datasets["train"]) == 2 * (n_train + n_val)
    # other crop settings: other window caches; the same ones: reused
    dm2 = whole_clip_datamodule(varied_ravdess, tmp_path / "c", train_crop_s=0.8, train_crops=2, test_crops=3)
    dm2.set_frontend(model.frontend)
    other = use_frozen_features(model.network, dm2, BYOL, progress=False)
    assert other.windows["train"]["built"] and other.windows["test"]["built"] and not other.built
    assert other.windows["train"]["feature_cache"] != cached.windows["train"]["feature_cache"]
    dm3 = whole_clip_datamodule(varied_ravdess, tmp_path / "c", train_crop_s=1.0, train_crops=2, test_crops=3)
    dm3.set_frontend(model.frontend)
    same = use_frozen_features(model.network, dm3, BYOL, progress=False)
    assert not same.built and not any(w["built"] for w in same.windows.values())


def test_silence_trimming_shortens_whole_clips_and_changes_the_feature_cache_key(padded_ravdess, tmp_path):
    plain = whole_clip_datamodule(padded_ravdess, tmp_path / "c")
    trimmed = whole_clip_datamodule(padded_ravdess, tmp_path / "c", trim_silence=True)
    assert set(plain.cache.lengths.tolist()) == {int(1.6 * SR)}
    assert all(0.8 * SR <= n <= 0.85 * SR for n in trimmed.cache.lengths.tolist())  # the tone, in 25 ms frames
    model = SERClassifier(BYOL, {"name": "logmel"}, plain.class_names).eval()
    for dm in (plain, trimmed):
        dm.set_frontend(model.frontend)
    a = use_frozen_features(model.network, plain, BYOL, progress=False)
    b = use_frozen_features(model.network, trimmed, BYOL, progress=False)
    assert a.built and b.built and a.directory != b.directory
    key_a = json.loads((a.directory / "index.json").read_text())["audio"]["audio_key"]
    assert key_a == plain.cache.directory.name != trimmed.cache.directory.name


def test_eval_keeps_the_checkpoints_crop_settings():
    from ser_lightning.cli.eval import eval_data_settings

    stored = {"corpora": ["ravdess"], "clip_length": "whole", "train_crop_s": 2.5, "test_crops": 4}
    request = {"corpora": ["cremad"], "clip_length": "whole", "train_crop_s": None, "test_crops": 1}
    settings, ignored = eval_data_settings(stored, request)
    assert settings["test_crops"] == 4 and settings["train_crop_s"] == 2.5 and settings["corpora"] == ["cremad"]
    assert ignored == {"train_crop_s": None, "test_crops": 1}
    with pytest.raises(ValueError, match="data.test_crops=1"):
        eval_data_settings(stored, request, explicit={"test_crops"})
    old, ignored = eval_data_settings({"corpora": ["ravdess"], "clip_length": "whole"}, request)  # a checkpoint from before the settings:
    assert "test_crops" not in old and not ignored  # whole clips, the data module's default


def test_train_crops_0_keeps_training_clips_whole_and_crops_only_the_test_clips(varied_ravdess, tmp_path):
    dm = whole_clip_datamodule(varied_ravdess, tmp_path / "c", train_crop_s=1.0, train_crops=0, test_crops=2)
    assert dm.datasets["train"].crop_samples is None and dm.datasets["val"].crop_count == 2
    model = SERClassifier(BYOL, {"name": "logmel"}, dm.class_names).eval()
    dm.set_frontend(model.frontend)
    n_train = len(dm.datasets["train"])
    cached = use_frozen_features(model.network, dm, BYOL, progress=False)
    assert set(cached.windows) == {"test"} and len(dm.datasets["train"]) == n_train
    assert isinstance(dm.datasets["val"].__getitems__([0]), CropBatch)
