"""The shipped default model (``ckpt_path=default``, ``ser.load_model("default")``) and the model cards.

The resolution is tested with a tiny checkpoint placed as the default in a temporary folder (the asset
path is monkeypatched); the test of the real shipped weights runs when they are part of the install."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import ser_lightning as ser
from ser_lightning.inference import default_model
from tests.conftest import REPO

SHIPPED = default_model.ASSETS_DIR / default_model.DEFAULT_MODEL_FILE


@pytest.fixture
def tiny_default(trained_members, tmp_path, monkeypatch):
    """A tiny checkpoint installed as the default model in a temporary assets folder."""
    assets = tmp_path / "assets" / "default"
    assets.mkdir(parents=True)
    shutil.copy(trained_members[0], assets / default_model.DEFAULT_MODEL_FILE)
    monkeypatch.setattr(default_model, "ASSETS_DIR", assets)
    return assets / default_model.DEFAULT_MODEL_FILE


def _tone_wav(path, seconds=1.2, sr=16000):
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.4 * np.sin(2 * np.pi * 330 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))).astype(np.float32), sr)
    return path


def test_missing_default_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(default_model, "ASSETS_DIR", tmp_path / "nothing")
    for load in (lambda: ser.load_model("default"), lambda: default_model.resolve_model_path("default")):
        with pytest.raises(FileNotFoundError, match=r"ckpt_path=default: the shipped default model .* not in this install; "
                                                    r"build it with `python benchmarks/build_default_model.py`") as err:
            load()
        assert "\n" not in str(err.value)
    assert default_model.resolve_model_path("~/x.ckpt").name == "x.ckpt"  # anything else is a path


def test_load_model_default_and_predict_without_ckpt_path(tiny_default, trained_members, tmp_path):
    from ser_lightning.cli.predict import predict

    wav = _tone_wav(tmp_path / "my.wav")
    by_name = ser.load_model("default", vad=False).predict(wav)
    by_path = ser.load_model(trained_members[0], vad=False).predict(wav)
    assert by_name.label == by_path.label and by_name.probabilities == pytest.approx(by_path.probabilities)
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("predict", overrides=[f"input={wav}", f"paths.output_dir={tmp_path / 'run'}", "progress=false",
                                            "vad.enabled=false"])
    assert cfg.ckpt_path is None and cfg.ckpt is None  # no model given: the default
    doc = predict(cfg)
    assert doc["model"]["source"] == str(tiny_default.resolve()) and doc["files"][0]["label"] == by_path.label


def test_eval_ckpt_path_default(tiny_default, tiny_ravdess, tmp_path):
    from ser_lightning.cli.eval import evaluate

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("eval", overrides=["ckpt_path=default", f"paths.output_dir={tmp_path / 'eval'}",
                                         f"data.root={tiny_ravdess}", f"data.cache_dir={tmp_path / 'cache'}",
                                         "trainer.accelerator=cpu", "trainer.devices=1"])
    metrics = evaluate(cfg)
    assert metrics["n"] == 32 and 0.0 <= metrics["ua"] <= 1.0  # 2 test speakers x 8 emotions x 2 statements
    assert (tmp_path / "eval" / "metrics.json").is_file()


def test_export_writes_a_card_a_person_reads(trained_members, tmp_path):
    from ser_lightning.cli.export import export

    results = tmp_path / "cv.json"
    results.write_text(json.dumps({"protocol": "6-fold speaker-independent cross-validation on RAVDESS.",
                                   "folds": [{"fold": k, "test_speakers": [4 * k + i for i in range(1, 5)],
                                              "ua": 0.5 + 0.01 * k, "wa": 0.52, "macro_f1": 0.49} for k in range(6)],
                                   "command": "python benchmarks/build_default_model.py"}))
    base = {"paths": {"output_dir": str(tmp_path / "run")}, "ckpt": str(trained_members[0]), "format": "torchscript",
            "name": "tiny", "tolerance": 1e-4, "seed": 0}
    export(OmegaConf.create({**base, "output": str(tmp_path / "with"), "results": str(results)}))
    card = (tmp_path / "with" / "tiny.card.md").read_text()
    machine = json.loads((tmp_path / "with" / "tiny.card.json").read_text())  # the JSON card stays
    assert machine["training_data"]["licences"] == {"ravdess": "CC BY-NC-SA 4.0"}
    for label in machine["labels"]:
        assert f"`{label}`" in card
    assert "CC BY-NC-SA 4.0" in card and "Art. 5(1)(f)" in card and "24 actors" in card
    assert "not a measure of a person's inner state" in card and "medical or safety" in card
    assert "| 5 | 21, 22, 23, 24 | 55.0 % |" in card and "mean UA: 52.5 %" in card  # from the results file
    assert "`tiny.torchscript.pt`" in card

    export(OmegaConf.create({**base, "output": str(tmp_path / "without"), "results": None}))
    assert "not recorded for this export" in (tmp_path / "without" / "tiny.card.md").read_text()
    with pytest.raises(FileNotFoundError, match="results=.*missing.json: no such results file"):
        export(OmegaConf.create({**base, "output": str(tmp_path / "x"), "results": str(tmp_path / "missing.json")}))


@pytest.mark.real_data
@pytest.mark.skipif(not SHIPPED.is_file(), reason=f"the shipped default model ({SHIPPED}) is not built yet")
def test_the_shipped_model_predicts_a_ravdess_clip_offline(real_data_root, monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    p = ser.load_model("default").predict(real_data_root / "ravdess" / "Actor_01" / "03-01-05-01-01-01-01.flac")
    assert p.status == "ok" and p.label in ser.load_model("default").labels
    assert (SHIPPED.parent / "MODEL_CARD.md").is_file() and "CC BY-NC-SA 4.0" in (SHIPPED.parent / "MODEL_CARD.md").read_text()


def test_build_script_installs_a_loadable_default_with_cards(trained_members, tmp_path, monkeypatch):
    """``benchmarks/build_default_model.py --from-work``: fold results -> slim checkpoint + both cards -> "default"."""
    from benchmarks import build_default_model as build

    work, out = tmp_path / "work", tmp_path / "assets" / "default"
    for k in range(build.N_FOLDS):
        (work / f"fold{k}" / "checkpoints").mkdir(parents=True)
        (work / f"fold{k}" / "metrics.json").write_text(json.dumps({"ua": 0.4 + 0.02 * k, "wa": 0.45, "macro_f1": 0.4,
                                                                    "n": 240}))
    shutil.copy(trained_members[0], work / "fold2" / "checkpoints" / "best.ckpt")
    assert build.main(["--from-work", "--work", str(work), "--out", str(out), "--ship-fold", "2",
                       "--overrides", "model=mfcc_cnn", "seed=1"]) == 0
    shipped = out / default_model.DEFAULT_MODEL_FILE
    assert shipped.stat().st_size < trained_members[0].stat().st_size  # optimiser state dropped
    card = (out / "MODEL_CARD.md").read_text()
    assert "CC BY-NC-SA 4.0" in card and "the model of fold 2 (test actors [9, 10, 11, 12]; its test UA 44.0 %)" in card
    assert "mean UA: 45.0 %" in card and "--overrides model=mfcc_cnn seed=1" in card
    assert json.loads((out / "model.card.json").read_text())["cross_validation"]["ua_mean"] == pytest.approx(0.45)
    monkeypatch.setattr(default_model, "ASSETS_DIR", out)
    wav = _tone_wav(tmp_path / "x.wav")
    assert ser.load_model("default", vad=False).predict(wav).label == ser.load_model(trained_members[0], vad=False).predict(wav).label
    assert "data.fold=3" in build.fold_overrides(["model=x"], 3, work) and build.test_actors(5) == [21, 22, 23, 24]
