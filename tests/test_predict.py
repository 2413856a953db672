"""predict.py on generated audio and a tiny checkpoint trained on the tiny corpus.

The checkpoints of the ``trained_members`` fixture were trained on 1.0 s clips at 16 kHz, so the
prediction window is 1.0 s.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from omegaconf import OmegaConf

from ser_lightning.cli.predict import predict
from ser_lightning.data.audio import load_clip
from ser_lightning.inference.predictor import (
    PredictionFailed,
    check_labels,
    decode_mono,
    find_audio,
    load_model,
    make_window,
    predict_files,
    window_starts,
)
from tests.conftest import run_script
from tests.test_export import exported  # noqa: F401  (session fixture: export.py output of trained_members[0])

# 44.1 kHz stereo vs its 16 kHz mono version: soxr's resampling is not bit-exact, so the
# probabilities may differ slightly; labels must agree and probabilities within this.
RESAMPLE_TOL = 0.02
GOOD = ["long.wav", "short.flac", "tone44k_stereo.wav", "tone16k_mono.wav", "deep/ravdess_like.wav"]
BAD = {"deep/broken.wav": "cannot decode audio", "empty.wav": "empty audio", "silent.wav": "all-silent",
       "nan.wav": "NaN"}


def _tone(sr: int, seconds: float, freq: float = 440.0) -> np.ndarray:
    """An amplitude-modulated harmonic tone, defined analytically (so any rate gives the same sound)."""
    t = np.arange(int(round(sr * seconds))) / sr
    x = (np.sin(2 * np.pi * freq * t) + 0.5 * np.sin(2 * np.pi * 2.7 * freq * t)) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t))
    return (0.5 * x).astype(np.float32)


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory) -> Path:
    """Good files (long, short, 44.1 kHz stereo + its 16 kHz mono twin) and bad ones, nested, plus a text file."""
    d = tmp_path_factory.mktemp("audio")
    (d / "deep").mkdir()
    rng = np.random.default_rng(0)
    sf.write(d / "long.wav", _tone(16000, 4.5, 300) + 0.01 * rng.standard_normal(72000).astype(np.float32), 16000)
    sf.write(d / "short.flac", _tone(22050, 0.4, 500), 22050)
    x44 = _tone(44100, 1.6, 360)
    # left/right differ but average to the mono signal
    sf.write(d / "tone44k_stereo.wav", np.stack([x44 + 0.1 * _tone(44100, 1.6, 90), x44 - 0.1 * _tone(44100, 1.6, 90)], 1), 44100)
    sf.write(d / "tone16k_mono.wav", _tone(16000, 1.6, 360), 16000)
    sf.write(d / "deep" / "ravdess_like.wav", _tone(22050, 1.1, 620), 22050)
    (d / "deep" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio" * 4)
    sf.write(d / "empty.wav", np.zeros(0, np.float32), 16000)
    sf.write(d / "silent.wav", np.zeros(16000, np.float32), 16000)
    nan = _tone(16000, 1.0)
    nan[500] = np.nan
    sf.write(d / "nan.wav", nan, 16000, subtype="FLOAT")
    (d / "notes.txt").write_text("not audio")
    return d


@pytest.fixture(scope="module")
def ckpt_model(trained_members):
    return load_model(trained_members[0])


def _by_file(records):
    return {r["file"]: r for r in records}


def test_window_starts_cover_the_signal():
    assert window_starts(500, 1000, 250) == [0]
    assert window_starts(1000, 1000, 250) == [0]
    assert window_starts(1001, 1000, 500) == [0, 1]
    starts = window_starts(4500, 1000, 500)
    assert starts == [0, 500, 1000, 1500, 2000, 2500, 3000, 3500]
    starts = window_starts(4700, 1000, 1000)
    assert starts[:4] == [0, 1000, 2000, 3000] and starts[-1] + 1000 == 4700  # last window ends at the end


def test_short_clip_is_preprocessed_exactly_as_in_training(audio_dir, ckpt_model):
    cfg = ckpt_model.audio_cfg
    wave, info = decode_mono(audio_dir / "short.flac", cfg.sample_rate)
    assert info["source_sample_rate"] == 22050 and info["channels"] == 1
    np.testing.assert_array_equal(make_window(wave, 0, cfg), load_clip(audio_dir / "short.flac", cfg))


def test_long_file_gives_several_windows(audio_dir, ckpt_model):
    (rec,) = predict_files([(audio_dir / "long.wav", "long.wav")], ckpt_model, hop_s=0.5, batch_size=3)
    assert rec["status"] == "ok" and rec["duration_s"] == pytest.approx(4.5)
    assert rec["n_windows"] == len(window_starts(72000, 16000, 8000)) == 8
    assert [w["start_s"] for w in rec["windows"]] == pytest.approx([0.5 * i for i in range(8)])
    assert rec["windows"][-1]["end_s"] == pytest.approx(4.5)
    win = np.array([[w["probabilities"][c] for c in ckpt_model.labels] for w in rec["windows"]])
    mean = np.array([rec["probabilities"][c] for c in ckpt_model.labels])
    np.testing.assert_allclose(mean, win.mean(axis=0), rtol=1e-9)
    assert rec["label"] == ckpt_model.labels[int(mean.argmax())] and rec["confidence"] == pytest.approx(mean.max())
    # batch size does not change the result
    (again,) = predict_files([(audio_dir / "long.wav", "long.wav")], ckpt_model, hop_s=0.5, batch_size=16)
    np.testing.assert_allclose([again["probabilities"][c] for c in ckpt_model.labels], mean, atol=1e-6)


def test_44k_stereo_matches_16k_mono(audio_dir, ckpt_model):
    recs = _by_file(predict_files([(audio_dir / "tone44k_stereo.wav", "s"), (audio_dir / "tone16k_mono.wav", "m")],
                                  ckpt_model))
    s, m = recs["s"], recs["m"]
    assert (s["source_sample_rate"], s["channels"], m["source_sample_rate"], m["channels"]) == (44100, 2, 16000, 1)
    assert s["n_windows"] == m["n_windows"] == len(window_starts(25600, 16000, 8000)) == 3
    assert s["label"] == m["label"]
    diff = max(abs(s["probabilities"][c] - m["probabilities"][c]) for c in ckpt_model.labels)
    assert diff <= RESAMPLE_TOL


def test_trim_silence_drops_leading_and_trailing_silence(tmp_path, ckpt_model):
    x = np.concatenate([np.zeros(32000), _tone(16000, 0.8), np.zeros(40000)]).astype(np.float32)
    x += 1e-4 * np.random.default_rng(1).standard_normal(len(x)).astype(np.float32)  # quiet floor, far below 40 dB
    sf.write(tmp_path / "padded.wav", x, 16000)
    files = [(tmp_path / "padded.wav", "padded.wav")]
    (plain,) = predict_files(files, ckpt_model, trim=False)
    (trimmed,) = predict_files(files, ckpt_model, trim=True, trim_db=40)
    assert plain["n_windows"] > 1 and trimmed["n_windows"] == 1
    assert trimmed["analysed_s"] == pytest.approx(0.8, abs=0.03)
    assert trimmed["windows"][0]["start_s"] == pytest.approx(2.0, abs=0.03)  # times are in the original file


def test_find_audio_recurses_and_skips_non_audio(audio_dir):
    names = [n for _, n in find_audio(audio_dir)]
    assert names == sorted(names) and "notes.txt" not in names
    assert set(names) == set(GOOD) | set(BAD)
    assert [n for _, n in find_audio(audio_dir, ["flac"])] == ["short.flac"]
    with pytest.raises(FileNotFoundError, match="input=/nonexistent"):
        find_audio("/nonexistent")
    with pytest.raises(ValueError, match="no audio files"):
        find_audio(audio_dir / "deep", ["ogg"])


def test_cli_bad_files_among_good_and_onnx_gives_same_labels(audio_dir, trained_members, exported, tmp_path):  # noqa: F811
    runs = {}
    for kind, model in (("ckpt", trained_members[0]), ("onnx", exported / "model.onnx")):
        out = tmp_path / kind
        if kind == "onnx":  # through the command line (exit code, table)
            r = run_script("predict.py", f"ckpt={model}", f"input={audio_dir}", f"output={out}", "progress=false",
                           "labels=ravdess8", "vad.enabled=false", cwd=tmp_path / f"run_{kind}")
            assert r.returncode == 0, r.stderr[-3000:]  # some files failed, the others were classified
            assert "long.wav" in r.stdout and "all-silent" in r.stdout  # the table
        else:  # in-process, same function
            predict(_cfg(tmp_path, ckpt=str(model), input=str(audio_dir), output=str(out), labels="ravdess8"))
        doc = json.loads((out / "predictions.json").read_text())
        assert doc["summary"] == {"files": len(GOOD) + len(BAD), "ok": len(GOOD), "no_speech": 0, "errors": len(BAD)}
        recs = _by_file(doc["files"])
        for name in GOOD:
            assert recs[name]["status"] == "ok" and recs[name]["label"] in doc["model"]["labels"], name
        for name, reason in BAD.items():
            assert recs[name]["status"] == "error" and reason in recs[name]["error"], (name, recs[name]["error"])
            assert recs[name]["label"] is None
        with open(out / "predictions.csv") as f:
            rows = {row["file"]: row for row in csv.DictReader(f)}
        assert set(rows) == set(GOOD) | set(BAD) and rows["silent.wav"]["status"] == "error"
        assert rows["long.wav"]["label"] == recs["long.wav"]["label"]
        with open(out / "windows.csv") as f:
            assert sum(row["file"] == "long.wav" for row in csv.DictReader(f)) == recs["long.wav"]["n_windows"]
        runs[kind] = (doc["model"]["backend"], recs)
    assert runs["ckpt"][0] == "pytorch" and runs["onnx"][0] == "onnxruntime"
    for name in GOOD:
        a, b = runs["ckpt"][1][name], runs["onnx"][1][name]
        assert a["label"] == b["label"], name
        assert max(abs(a["probabilities"][c] - b["probabilities"][c]) for c in a["probabilities"]) <= 1e-4


def _cfg(tmp_path, **kw):
    return OmegaConf.create({"paths": {"output_dir": str(tmp_path / "run")}, "output": None, "card": None,
                             "labels": None, "hop_s": None, "batch_size": 4, "trim_silence": None, "trim_db": None,
                             "silence_dbfs": -60.0, "device": "cpu", "extensions": None, "strict": False,
                             "progress": False, "vad": {"enabled": False}, **kw})


def test_labels_restrict_the_output_and_a_class_the_model_lacks_is_refused(audio_dir, trained_members, tmp_path):
    # issue 21: labels= restricts (it used to only check that the model's classes were exactly these)
    full = predict(_cfg(tmp_path / "a", ckpt=str(trained_members[0]), input=str(audio_dir / "long.wav")))
    part = predict(_cfg(tmp_path / "b", ckpt=str(trained_members[0]), input=str(audio_dir / "long.wav"), labels="quad4"))
    kept = ["neutral", "happy", "sad", "angry"]  # the model's order
    assert part["model"]["labels"] == kept and part["model"]["model_labels"] == full["model"]["labels"]
    assert part["model"]["adaptation"]["adaptation"] == "plain"
    for wf, wp in zip(full["files"][0]["windows"], part["files"][0]["windows"]):
        p = np.array([wf["probabilities"][c] for c in kept])
        np.testing.assert_allclose([wp["probabilities"][c] for c in kept], p / p.sum(), rtol=1e-5)
    assert part["files"][0]["label"] in kept
    with pytest.raises(ValueError, match=r"^labels=\['angry', 'boredom'\]: the model .* has no class \['boredom'\]"):
        predict(_cfg(tmp_path, ckpt=str(trained_members[0]), input=str(audio_dir / "long.wav"),
                     labels=["angry", "boredom"]))
    labels = ["surprise", "disgust", "fearful", "ANG", "sad", "happy", "calm", "neutral"]  # any order and spelling
    check_labels(labels, load_model(trained_members[0]).labels)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        check_labels(["angry", "sarcasm"], ["angry"])  # "bored" is now a spelling of boredom


def test_all_files_bad_fails_after_writing_outputs(audio_dir, trained_members, tmp_path):
    inputs = [str(audio_dir / n) for n in BAD]
    with pytest.raises(PredictionFailed, match="none of the 4 input files"):
        predict(_cfg(tmp_path, ckpt=str(trained_members[0]), input=inputs))
    assert json.loads((tmp_path / "run" / "predictions.json").read_text())["summary"]["errors"] == 4
    with pytest.raises(PredictionFailed, match="strict=true: 1 of 2"):
        predict(_cfg(tmp_path, ckpt=str(trained_members[0]), input=[str(audio_dir / "long.wav"), inputs[0]],
                     strict=True))


def test_onnx_without_card_file_uses_embedded_card(exported, tmp_path, audio_dir, ckpt_model):  # noqa: F811
    shutil.copy(exported / "model.onnx", tmp_path / "renamed.onnx")
    model = load_model(tmp_path / "renamed.onnx")
    assert model.labels == ckpt_model.labels and model.audio_cfg == ckpt_model.audio_cfg
    assert model.backend == "onnxruntime"
    ts = load_model(exported / "model.torchscript.pt")
    (a,), (b,) = (predict_files([(audio_dir / "short.flac", "s")], m) for m in (ckpt_model, ts))
    assert a["label"] == b["label"]


@pytest.mark.parametrize(("kw", "match"), [({"hop_s": 0}, "hop_s=0"), ({"hop_s": 5.0}, r"hop_s=5.0 must be in \(0, 1.0\]"),
                                           ({"batch_size": 0}, "batch_size=0"), ({"device": "cuda:7"}, "device="),
                                           ({"ckpt": "model.h5"}, "no such model file")])
def test_bad_settings(kw, match, audio_dir, trained_members, tmp_path):
    settings = {"ckpt": str(trained_members[0]), "input": str(audio_dir / "long.wav"), **kw}
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        predict(_cfg(tmp_path, **settings))


@pytest.mark.parametrize("dbfs, kept", [(-70.0, False), (-50.0, True)])
def test_predict_applies_the_minus_60_dbfs_silence_rule(tmp_path, dbfs, kept):
    """A quiet but not all-zero file: -70 dBFS peak is rejected as all-silent, -50 dBFS is decoded."""
    from ser_lightning.data.audio import AudioDecodeError

    path = tmp_path / "quiet.wav"
    t = np.arange(16000) / 16000
    sf.write(path, (10 ** (dbfs / 20) * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000, subtype="FLOAT")
    if kept:
        x, info = decode_mono(path, 16000)
        assert len(x) == 16000 and np.abs(x).max() == pytest.approx(10 ** (dbfs / 20), rel=1e-3)
    else:
        with pytest.raises(AudioDecodeError, match="all-silent"):
            decode_mono(path, 16000)


def test_whole_clip_models_get_each_windows_valid_length():
    """A model trained on whole clips pools over a short window's own samples, as in training, not the padding."""
    import torch

    from ser_lightning.data.audio import AudioConfig
    from ser_lightning.inference.checkpoint import ProbabilityModel
    from ser_lightning.inference.predictor import (
        AudioArray,
        LoadedModel,
        predict_files,
        window_length,
    )
    from ser_lightning.models import build_network

    cfg = AudioConfig(duration_s=2.0, clip_length="whole", normalize="none")
    assert window_length(48000, 0, cfg) == 32000 and window_length(40000, 16000, cfg) == 24000
    assert window_length(40000, 16000, AudioConfig(duration_s=2.0)) == 32000  # fixed-length models: whole windows
    seen = []

    def run(batch, lengths=None):
        seen.append((batch.shape, None if lengths is None else lengths.tolist()))
        return np.full((len(batch), 2), 0.5)

    rng = np.random.default_rng(0)
    samples = 0.1 * rng.standard_normal(12000).astype(np.float32)
    clip = AudioArray.from_any(samples, 16000, "short")
    model = LoadedModel(run, ["a", "b"], cfg, "x", "pytorch", "x", takes_lengths=True)
    predict_files([(clip, "short")], model, vad=False, progress=False)
    assert seen == [((1, 32000), [12000])]
    # the torch path: padded window + its length gives the probabilities of the unpadded clip
    frontend, net = build_network({"name": "byol_s", "pool_each_layer": True, "pretrained": None}, {"name": "logmel"}, 2)
    prob = ProbabilityModel(frontend, net).eval()
    wave = torch.from_numpy(samples[None])
    padded = torch.nn.functional.pad(wave, (0, 20000))
    with torch.no_grad():
        torch.testing.assert_close(prob(padded, torch.tensor([12000])), prob(wave), atol=1e-5, rtol=1e-4)
        assert not torch.allclose(prob(padded), prob(wave), atol=1e-5)
