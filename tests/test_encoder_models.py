"""The encoder model family wired into the platform: whole clips, the frozen-feature cache, configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from ser_lightning.data.audio import AudioConfig
from ser_lightning.data.batches import FrozenFeatures
from ser_lightning.data.cache import build_or_load
from ser_lightning.data.datamodule import SERDataModule, WholeClipBatch
from ser_lightning.data.feature_cache import build_or_load_feature_cache
from ser_lightning.models import build_network, list_models, model_info
from ser_lightning.modules.classifier import SERClassifier
from ser_lightning.modules.frozen_features import frozen_feature_path, use_frozen_features
from tests.conftest import REPO, run_script, whole_clip_datamodule

pytestmark = pytest.mark.usefixtures("one_thread")

ENCODER_MODELS = ("byol_s", "whisper_tiny", "whisper_base", "ssl")


def test_encoder_models_are_registered_with_facts():
    for name in ENCODER_MODELS:
        info = model_info(name)
        assert name in list_models() and info.input_kind == "waveform" and info.source and info.pretrained


@pytest.mark.parametrize("name", ENCODER_MODELS)
def test_encoder_configs_compose_to_whole_clips_without_wave_augmentation(name):
    with initialize_config_dir(config_dir=str(REPO / "ser_lightning" / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={name}"])
    assert cfg.model.name == name and cfg.data.clip_length == "whole" and cfg.model.freeze == "frozen"
    assert cfg.data.duration_s >= 5.3  # the longest RAVDESS clip fits whole
    dm = SERDataModule(**{k: v for k, v in cfg.data.items() if k not in ("_target_", "root", "cache_dir")},
                       augment={"wave": dict(cfg.augment.wave), "spec": dict(cfg.augment.spec)})
    assert not dm.waveform_augmented


def test_whole_clip_cache_keeps_lengths_and_batches_end_at_the_longest(varied_ravdess, tmp_path):
    dm = whole_clip_datamodule(varied_ravdess, tmp_path / "c")
    lengths = dm.cache.lengths[dm.cache.ok]
    assert set(np.unique(lengths).tolist()) == {int(0.6 * 16000), int(1.5 * 16000)}  # 0.5 + 0.1 s, 1.3 + 0.2 s
    ds = dm.datasets["train"]
    batch = ds.__getitems__([0, 1])
    assert isinstance(batch, WholeClipBatch) and batch.waves.shape[1] == int(batch.lengths.max())
    short = ds.__getitems__([int(np.flatnonzero(ds.lengths == ds.lengths.min())[0])])
    assert short.waves.shape[1] == int(0.6 * 16000)
    for i, n in enumerate(batch.lengths.tolist()):
        assert torch.all(batch.waves[i, n:] == 0)


def test_whole_clips_refuse_padding_modes_and_wave_augmentation():
    with pytest.raises(ValueError, match="pad_mode"):
        AudioConfig(clip_length="whole", pad_mode="loop")
    with pytest.raises(ValueError, match="clip_length"):
        AudioConfig(clip_length="ragged")
    with pytest.raises(ValueError, match="augment=none"):
        SERDataModule(clip_length="whole", augment={"wave": {"shift_max_frac": 0.2}})


def test_variable_length_batches_pool_without_padding_effects(varied_ravdess, tmp_path):
    """A clip's logits through the batch path do not depend on the other clips' lengths."""
    dm = whole_clip_datamodule(varied_ravdess, tmp_path / "c")
    model = SERClassifier({"name": "byol_s", "pool_each_layer": True}, {"name": "logmel"}, dm.class_names).eval()
    dm.set_frontend(model.frontend)
    ds = dm.datasets["train"]
    short, long = int(np.argmin(ds.lengths)), int(np.argmax(ds.lengths))
    (feats, lengths), _ = dm.on_after_batch_transfer(ds.__getitems__([short, long]), training=False)
    (alone, alone_len), _ = dm.on_after_batch_transfer(ds.__getitems__([short]), training=False)
    assert feats.shape[1] > alone.shape[1]
    with torch.no_grad():
        together = model._logits((feats, lengths))[0]
        by_itself = model._logits((alone, alone_len))[0]
    torch.testing.assert_close(together, by_itself, atol=1e-4, rtol=1e-4)


def test_frozen_feature_cache_is_reused_and_invalidated_like_the_audio_cache(varied_ravdess, tmp_path, caplog):
    paths = sorted(str(p) for p in (varied_ravdess / "ravdess").rglob("*.wav"))[:6]
    audio = build_or_load(paths, AudioConfig(duration_s=2.0, clip_length="whole"), tmp_path, progress=False)
    calls = []

    def extract(out):
        calls.append(1)
        out[:] = np.arange(out.size, dtype=np.float32).reshape(out.shape)

    ident = {"weights_sha256": "abc"}
    first = build_or_load_feature_cache(audio, [0, 2, 4], ident, (2, 3), extract, tmp_path)
    again = build_or_load_feature_cache(audio, [0, 2, 4], ident, (2, 3), extract, tmp_path)
    assert first.built and not again.built and len(calls) == 1 and again.directory == first.directory
    np.testing.assert_array_equal(np.load(again.path), np.arange(18, dtype=np.float32).reshape(3, 2, 3))
    # other weights or other clips: another key, computed anew
    other = build_or_load_feature_cache(audio, [0, 2, 4], {"weights_sha256": "def"}, (2, 3), extract, tmp_path)
    fewer = build_or_load_feature_cache(audio, [0, 2], ident, (2, 3), extract, tmp_path)
    assert other.built and fewer.built and len({first.directory, other.directory, fewer.directory}) == 3
    # a flipped byte: logged, rebuilt, never read
    raw = bytearray(first.path.read_bytes())
    raw[-1] ^= 0xFF
    first.path.write_bytes(bytes(raw))
    with caplog.at_level("WARNING"):
        fixed = build_or_load_feature_cache(audio, [0, 2, 4], ident, (2, 3), extract, tmp_path)
    assert fixed.built and "SHA-256" in fixed.rebuilt_because and "damaged" in caplog.text
    # a truncated array and a hand-edited index are caught too
    with open(fixed.path, "r+b") as fh:
        fh.truncate(fixed.path.stat().st_size - 4)
    assert "truncated" in build_or_load_feature_cache(audio, [0, 2, 4], ident, (2, 3), extract, tmp_path).rebuilt_because
    index = json.loads((fixed.directory / "index.json").read_text())
    index["rows"] = [0, 2, 5]
    (fixed.directory / "index.json").write_text(json.dumps(index))
    assert "modified" in build_or_load_feature_cache(audio, [0, 2, 4], ident, (2, 3), extract, tmp_path).rebuilt_because
    # new audio (the audio cache's key changes) gives new embeddings
    audio2 = build_or_load(paths, AudioConfig(duration_s=2.0, clip_length="whole", normalize="rms"), tmp_path,
                           progress=False)
    assert build_or_load_feature_cache(audio2, [0, 2, 4], ident, (2, 3), extract, tmp_path).built
    # an extraction that misses a clip fails instead of caching NaNs
    with pytest.raises(RuntimeError, match="without finite values"):
        build_or_load_feature_cache(audio, [1], ident, (2, 3), lambda out: None, tmp_path)


def test_cached_path_gives_the_waveform_path_logits(varied_ravdess, tmp_path):
    """Training on cached pooled states is an optimisation: the head sees exactly what the waveform path gives."""
    dm = whole_clip_datamodule(varied_ravdess, tmp_path / "c")
    settings = {"name": "byol_s", "pool_each_layer": True}
    model = SERClassifier(settings, {"name": "logmel"}, dm.class_names).eval()
    dm.set_frontend(model.frontend)
    assert frozen_feature_path(model.network, dm, settings)[0]
    assert not frozen_feature_path(model.network, dm, {**settings, "feature_cache": "off"})[0]
    batch = dm.datasets["val"].__getitems__(list(range(4)))
    with torch.no_grad():
        want = model._logits(dm.on_after_batch_transfer(batch, training=False)[0])
    cached = use_frozen_features(model.network, dm, settings, progress=False)
    assert cached.built and cached.extract_s >= 0
    emb, target = dm.on_after_batch_transfer(dm.datasets["val"].__getitems__(list(range(4))), training=False)
    # the batch says it is the head's input: the same model takes it, nothing switched on it
    assert isinstance(emb, FrozenFeatures) and emb.pooled.shape == (4, *model.network.pooled_shape)
    with torch.no_grad():
        torch.testing.assert_close(model._logits(emb), want, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(target, batch.target)


def test_frozen_feature_cache_is_keyed_on_the_extraction_batch_size(varied_ravdess, tmp_path):
    """Whole clips are padded to the longest of their extraction batch, which moves the encoder's rounding: a
    frozen-feature cache extracted in other batches is not reused, so a rebuild from a fresh cache is bit-identical;
    an extraction draws nothing from the global random state, and the head's batches are 64-byte aligned (CPU
    kernels round differently at other alignments, which made a run that extracted train differently)."""
    dm = whole_clip_datamodule(varied_ravdess, tmp_path / "c")
    settings = {"name": "byol_s", "pool_each_layer": True}
    model = SERClassifier(settings, {"name": "logmel"}, dm.class_names).eval()
    dm.set_frontend(model.frontend)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    first = use_frozen_features(model.network, dm, {**settings, "extract_batch_size": 3}, progress=False)
    # an extraction leaves the random state alone: training after it is as after reusing the cache
    assert first.built and torch.equal(torch.get_rng_state(), before)
    again = use_frozen_features(model.network, dm, {**settings, "extract_batch_size": 3}, progress=False)
    other = use_frozen_features(model.network, dm, {**settings, "extract_batch_size": 5}, progress=False)
    assert first.built and not again.built and other.built and other.directory != first.directory
    assert json.loads((first.directory / "index.json").read_text())["identity"]["extract_batch_size"] == 3
    # embedding batches live in torch's 64-byte aligned memory, wherever NumPy's malloc put the rows it read
    for n in (1, 3, len(dm.datasets["train"])):
        assert dm.datasets["train"].__getitems__(list(range(n))).features.data_ptr() % 64 == 0


def test_non_cacheable_settings_take_the_waveform_path():
    fe, net = build_network({"name": "byol_s", "pool_each_layer": True, "pooling": "attentive"}, {"name": "logmel"}, 8)
    assert not net.cacheable
    fe, net = build_network({"name": "byol_s", "freeze": "full", "pool_each_layer": True}, {"name": "logmel"}, 8)
    assert not net.cacheable
    fe, net = build_network({"name": "byol_s", "pool_each_layer": False}, {"name": "logmel"}, 8)
    assert not net.cacheable
    with pytest.raises(ValueError, match="model.encoder"):
        build_network({"name": "ssl"}, {"name": "logmel"}, 8)
    with pytest.raises(ValueError, match="model.head_size"):
        build_network({"name": "byol_s", "head_size": 3}, {"name": "logmel"}, 8)


def test_layer_decay_reaches_the_optimiser():
    from ser_lightning.modules.optim import param_groups

    model = SERClassifier({"name": "byol_s", "freeze": "full", "layer_decay": 0.5, "pool_each_layer": True},
                          {"name": "logmel"}, [str(i) for i in range(8)])
    groups = param_groups(model, 1e-3, 1.0, weight_decay=0.01)
    rates = {g["name"]: g["lr"] for g in groups}
    assert rates["head"] == pytest.approx(1e-3) and rates["encoder_group_3"] == pytest.approx(5e-4)
    assert rates["encoder_group_0"] == pytest.approx(1e-3 * 0.5 ** 4)
    assert {g["weight_decay"] for g in groups} == {0.0, 0.01}


def _tiny_wavlm(tmp_path: Path) -> Path:
    from transformers import WavLMConfig, WavLMModel

    # wav2vec2's 320-sample frame hop (7 convolutions), so a 6 s clip gives 300 frames
    cfg = WavLMConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                      conv_dim=(16,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
                      num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    torch.manual_seed(0)
    WavLMModel(cfg).save_pretrained(tmp_path / "wavlm")
    return tmp_path / "wavlm"


@pytest.mark.real_data
@pytest.mark.parametrize("name", ENCODER_MODELS)
def test_encoder_model_fast_dev_run_on_real_ravdess(name, real_data_root, tmp_path):
    extra = [f"model.encoder={_tiny_wavlm(tmp_path)}"] if name == "ssl" else []
    speakers = [f"ravdess_{i:02d}" for i in (1, 2, 3)]
    run = tmp_path / "run"
    r = run_script("train.py", f"model={name}", *extra, "debug=fast", f"data.root={real_data_root}",
                   f"data.cache_dir={tmp_path / 'cache'}", f"data.speakers=[{','.join(speakers)}]",
                   "data.val_speakers=1", "data.test_speakers=1", cwd=run)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == name and metrics["training_input"].startswith("frozen-feature path")
    assert metrics["frozen_features"]["built"] and list((tmp_path / "cache" / "embeddings").glob("*/embeddings.npy"))


def test_default_model_is_the_refit_whisper_probe_and_homebrew_stays_one_word_away():
    """train.py's default is the frozen Whisper tiny.en probe with its refit; a model config's own top-level
    keys (refit) win over train.yaml's, and the command line wins over both."""
    with initialize_config_dir(config_dir=str(REPO / "ser_lightning" / "conf"), version_base="1.3"):
        default = compose("train")
        off = compose("train", overrides=["refit=false"])
        cnn = compose("train", overrides=["model=homebrew_cnn"])
    assert default.model.name == "whisper_tiny" and default.refit is True and default.optim.name == "lbfgs"
    assert default.trainer.precision in (32, "32") and default.model.dropout == 0.0
    assert off.refit is False
    assert cnn.model.name == "homebrew_cnn" and cnn.refit is False and cnn.optim.name == "adamw"
