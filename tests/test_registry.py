"""Model registry: facts carried by each network, the one builder, deprecated names, and an
old-format checkpoint (written before the networks were renamed) that still loads in eval and predict."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hydra import compose, initialize_config_dir

import ser_lightning.inference  # noqa: F401  (registers model=ensemble)
from ser_lightning.models import build_network, is_model, list_models, model_info
from ser_lightning.models.cnn import PlainCNN
from tests.conftest import REPO, make_ravdess, run_script

#: A report001_cnn checkpoint (widths 4-4-8, MFCC + deltas, 1 s clips, 8 classes) written by
#: train.py before the networks were renamed; model.name in its hyper-parameters is the old name.
OLD_CKPT = REPO / "tests" / "data" / "old_format_report001_cnn.ckpt"
OLD_NAMES = {"report000_cnn": "residual_cnn", "report000_bilstm": "attentive_bilstm",
             "report000_transformer": "cls_transformer", "report000_ensemble": "joint_ensemble",
             "report001_cnn": "plain_cnn", "report001_parallel_cnn": "parallel_cnn",
             "report001_cnn_transformer": "cnn_transformer", "report002_cnn": "mfcc_cnn"}


def test_models_carry_their_facts():
    assert model_info("wav2vec2").input_kind == "waveform" and model_info("ensemble").input_kind == "waveform"
    assert model_info("homebrew_cnn").input_kind == "spectrogram"
    inception = model_info("inception_v3")
    assert (inception.default_input_size, inception.min_input_size) == ((299, 299), (75, 75))
    assert "offline" in inception.pretrained and "offline" not in model_info("vgg16").pretrained
    assert model_info("mobilenetv3_large_100").default_input_size == (224, 224)
    assert model_info("plain_cnn").source.startswith("report 001")
    assert all(model_info(n).source for n in list_models())


def test_old_names_are_deprecated_aliases_of_the_same_network():
    for old, new in OLD_NAMES.items():
        assert is_model(old) and is_model(new) and old not in list_models() and new in list_models()
        assert old in list_models(include_deprecated=True)
        with pytest.warns(FutureWarning, match=f"{old} is deprecated.*model={new}"):
            assert model_info(old) is model_info(new)
    assert not is_model("resnet9000")
    with pytest.raises(ValueError, match="not a registered model"):
        model_info("resnet9000")


def test_builder_gives_a_waveform_network_the_raw_frontend_and_fits_a_backbones_geometry():
    features = {"name": "logmel", "sample_rate": 16000, "n_mels": 64, "n_fft": 1024, "hop_length": 256}
    frontend, _ = build_network({"name": "wav2vec2", "config": "tiny"}, features, 4, 16000)
    assert type(frontend).__name__ == "RawFrontend"
    frontend, net = build_network({"name": "efficientnet_lite0", "input_size": [64, 48]}, features, 4, 16000)
    assert tuple(frontend(torch.zeros(1, 16000)).shape) == (1, 1, 64, 48) and net.input_size == (64, 48)
    frontend, _ = build_network({"name": "homebrew_cnn"}, features, 4, 16000)
    assert tuple(frontend(torch.zeros(1, 16000)).shape) == (1, 1, 64, 63)  # the features group's own geometry
    with pytest.raises(ValueError, match="contradicts"):
        build_network({"name": "homebrew_cnn", "input": "waveform"}, features, 4, 16000)


@pytest.mark.parametrize("old", ["report001_cnn", "report000_ensemble"])
def test_old_model_config_names_still_compose(old):
    with initialize_config_dir(config_dir=str(REPO / "ser_lightning" / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={old}"])
        new = compose("train", overrides=[f"model={OLD_NAMES[old]}"])
    assert cfg.model.name == old and {**cfg.model, "name": None} == {**new.model, "name": None}


@pytest.fixture(scope="module")
def old_data(tmp_path_factory) -> Path:
    return make_ravdess(tmp_path_factory.mktemp("old"), actors=range(1, 7), statements=(1,))


def test_old_checkpoint_loads_with_a_warning():
    from ser_lightning.inference.checkpoint import load_checkpoint

    assert OLD_CKPT.is_file() and OLD_CKPT.stat().st_size < 400_000
    stored = torch.load(OLD_CKPT, map_location="cpu", weights_only=True)
    assert stored["hyper_parameters"]["model"]["name"] == "report001_cnn"
    with pytest.warns(FutureWarning, match="report001_cnn is deprecated"):
        model, audio = load_checkpoint(OLD_CKPT)
    assert isinstance(model.network, PlainCNN) and audio.num_samples == 16000
    for key, value in stored["state_dict"].items():  # every stored weight went back in place
        assert torch.equal(model.state_dict()[key], value), key
    with torch.no_grad():
        probs = torch.softmax(model(torch.randn(2, 16000) * 0.1), -1)
    assert torch.allclose(probs.sum(-1), torch.ones(2))


def test_old_checkpoint_runs_in_eval_and_predict(old_data, tmp_path):
    r = run_script("eval.py", f"ckpt_path={OLD_CKPT}", f"data.root={old_data}", f"data.cache_dir={tmp_path / 'c'}",
                   "split=test", cwd=tmp_path / "eval")
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["n"] == 16 and 0.0 <= metrics["ua"] <= 1.0  # 2 test speakers x 8 emotions
    wav = tmp_path / "in.wav"
    sf.write(wav, (0.3 * np.sin(2 * np.pi * 220 * np.arange(24000) / 16000)).astype(np.float32), 16000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = run_script("predict.py", f"ckpt={OLD_CKPT}", f"input={wav}", f"output={tmp_path / 'p'}", "progress=false",
                       "vad.enabled=false", cwd=tmp_path / "pred")
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((tmp_path / "p" / "predictions.json").read_text())
    (rec,) = doc["files"]
    assert rec["status"] == "ok" and rec["label"] in doc["model"]["labels"] and len(doc["model"]["labels"]) == 8


@pytest.mark.parametrize(("old", "new", "name"), [
    ("ser_lightning.models.cnn_blocks", "ser_lightning.models.cnn", "PlainCNN"),
    ("ser_lightning.models.joint_ensemble", "ser_lightning.models.ensembles", "JointEnsemble"),
    ("ser_lightning.models.homebrew_cnn", "ser_lightning.models.cnn", "HomebrewCNN"),
    ("ser_lightning.models.mfcc_cnn", "ser_lightning.models.cnn", "MFCCCNN"),
    ("ser_lightning.models.encoder_models", "ser_lightning.models.encoders.zoo", "whisper_tiny"),
    ("ser_lightning.models.encoders.classifier", "ser_lightning.models.encoders.encoder_classifier", "EncoderClassifier"),
    ("ser_lightning.modules.embedding", "ser_lightning.modules.frozen_features", "use_frozen_features"),
])
def test_moved_modules_stay_importable_with_a_warning(old, new, name):
    """A module that moved leaves a deprecated alias: the old import path gives the same objects and warns."""
    import importlib
    import sys

    sys.modules.pop(old, None)
    with pytest.warns(FutureWarning, match=f"{old} is deprecated"):
        alias = importlib.import_module(old)
    assert getattr(alias, name) is getattr(importlib.import_module(new), name)


@pytest.mark.parametrize(("module", "old", "new"), [
    ("ser_lightning.data.feature_cache", "CachedEmbeddings", "FrozenFeatureCache"),
    ("ser_lightning.data.feature_cache", "build_or_load_embeddings", "build_or_load_feature_cache"),
    ("ser_lightning.data.batches", "EmbeddingBatch", "FrozenFeatureBatch"),
    ("ser_lightning.modules.extraction", "EmbeddingExtractor", "FrozenFeatureExtractor"),
    ("ser_lightning.modules.extraction", "ShardedEmbeddingWriter", "ShardedFeatureCacheWriter"),
])
def test_names_from_before_one_name_for_frozen_features_still_work_with_a_warning(module, old, new):
    """One name ("frozen features", "frozen-feature cache") replaced "embeddings"; the old names still answer."""
    import importlib

    mod = importlib.import_module(module)
    with pytest.warns(FutureWarning, match=f"{module}.{old} is deprecated: it is now {new}"):
        assert getattr(mod, old) is getattr(mod, new)
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchName'"):
        mod.NoSuchName  # noqa: B018


# ----------------------------------------------------------------------------- facts travel with the model
def test_built_networks_carry_their_facts_and_checkpoints_store_them():
    """The registry declares what a network reads (whole clips, the sample rate of its weights); the builder adds
    what its settings decide (a cacheable frozen part) and attaches the record; the LightningModule stores it in
    its hyper-parameters and asks it instead of probing the network."""
    from ser_lightning.models import build_network
    from ser_lightning.models.facts import NetworkFacts, network_facts
    from ser_lightning.modules.classifier import SERClassifier

    _, cnn = build_network({"name": "homebrew_cnn"}, {"name": "logmel"}, 4, 48000)
    assert network_facts(cnn) == NetworkFacts(input_kind="spectrogram")
    settings = {"name": "byol_s", "pretrained": "offline", "freeze": "frozen", "head_layers": 0, "pool_each_layer": True,
                "pooling": "mean_std"}
    _, byol = build_network(settings, {"name": "logmel"}, 4, 48000)
    assert network_facts(byol) == NetworkFacts("waveform", whole_clips=True, pooled_split=True, cacheable=True,
                                               takes_norm_stats=True, sample_rate=16000, parameter_groups="layerwise")
    _, trained = build_network({**settings, "freeze": "full"}, {"name": "logmel"}, 4, 48000)
    assert not network_facts(trained).cacheable  # a training encoder: nothing to cache
    from ser_lightning.models.facts import derive_facts
    from ser_lightning.models.registry import build_model

    timm_net = build_model("mobilenetv3_large_100", in_channels=1, num_classes=4, pretrained=False)
    assert derive_facts(timm_net).parameter_groups == "backbone"  # backbone_lr_mult applies to its backbone
    module = SERClassifier(model=settings, features={"name": "logmel"}, class_names=list("abcd"), num_samples=48000)
    assert module.hparams["network_facts"] == network_facts(module.network).as_dict()


def test_a_wrong_declaration_is_refused(monkeypatch):
    from ser_lightning.models import build_network, registry

    info = registry.model_info("homebrew_cnn")
    monkeypatch.setitem(registry._MODELS, "homebrew_cnn", dataclasses.replace(info, whole_clips=True))
    with pytest.raises(ValueError, match="declares whole_clips=True"):
        build_network({"name": "homebrew_cnn"}, {"name": "logmel"}, 4, 48000)
