"""The Python API (``ser_lightning.load_model(...).predict(...)``) on generated audio: a file, an array, a
list, a long file, phone/browser formats; the same code path and results as ``predict.py``."""

from __future__ import annotations

import av
import numpy as np
import pytest
import soundfile as sf
import torch

import ser_lightning as ser
from ser_lightning.cli.predict import find_audio, load_model, predict_files
from ser_lightning.data.audio import read_audio
from ser_lightning.inference.api import EmotionModel, Prediction


def _tone(sr: int, seconds: float, freq: float = 330.0) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    x = (np.sin(2 * np.pi * freq * t) + 0.5 * np.sin(2 * np.pi * 2.7 * freq * t)) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t))
    return (0.4 * x).astype(np.float32)


def _encode(path, codec: str, x: np.ndarray, rate: int) -> None:
    """Write ``x`` (mono float32) with PyAV's bundled FFmpeg encoders (AAC in .m4a/.mp4, Opus in .webm)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(x[None, :], format="flt", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


@pytest.fixture(scope="module")
def model(trained_members) -> EmotionModel:
    return ser.load_model(trained_members[0], vad=False)  # generated tones: no speech for the detector


def test_load_model_is_the_public_entry(model, trained_members):
    assert isinstance(model, EmotionModel) and len(model.labels) == 8
    assert (model.sample_rate, model.duration_s) == (16000, 1.0)
    assert "EmotionModel(" in repr(model)


def test_file_and_array_give_the_same_answer(model, tmp_path):
    x = _tone(16000, 1.0)
    sf.write(tmp_path / "clip.wav", x, 16000, subtype="FLOAT")
    from_file = model.predict(tmp_path / "clip.wav")
    from_array = model.predict(x, sample_rate=16000)
    from_tensor = model.predict(torch.from_numpy(x)[None, :], sample_rate=16000)  # torchaudio (channels, time)
    assert isinstance(from_file, Prediction) and from_file.status == "ok"
    assert from_file.label in model.labels and sum(from_file.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    for other in (from_array, from_tensor):
        assert other.label == from_file.label
        assert np.allclose(list(other.probabilities.values()), list(from_file.probabilities.values()), atol=1e-6)
    # An array at another rate is resampled like a file at that rate.
    x48 = _tone(48000, 1.0)
    sf.write(tmp_path / "clip48.wav", x48, 48000, subtype="FLOAT")
    a, b = model.predict(x48, 48000), model.predict(str(tmp_path / "clip48.wav"))
    assert np.allclose(list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-6)


def test_the_api_is_predict_py_code_path(model, trained_members, tmp_path):
    for i, f in enumerate((250, 400)):
        sf.write(tmp_path / f"c{i}.wav", _tone(16000, 2.3, f), 16000)
    records = predict_files(find_audio(tmp_path), load_model(trained_members[0]))
    results = model.predict(sorted(str(p) for p in tmp_path.glob("*.wav")))
    assert [r.label for r in results] == [r["label"] for r in records]
    assert [r.probabilities for r in results] == [r["probabilities"] for r in records]


def test_list_batches_and_reports_bad_items(model, tmp_path):
    sf.write(tmp_path / "ok.wav", _tone(16000, 1.2), 16000)
    sf.write(tmp_path / "silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    out = model.predict([tmp_path / "ok.wav", _tone(8000, 0.7), str(tmp_path / "silent.wav")], sample_rate=8000)
    assert [p.status for p in out] == ["ok", "ok", "error"]
    assert out[1].source == "<array 1>" and "all-silent" in out[2].error
    with pytest.raises(ValueError, match="all-silent"):
        model.predict(tmp_path / "silent.wav")
    with pytest.raises(ValueError, match="sample_rate"):
        model.predict(_tone(16000, 1.0))
    with pytest.raises(FileNotFoundError):
        model.predict(tmp_path / "missing.wav")


def test_long_audio_has_per_window_results(model):
    x = _tone(16000, 4.5)
    p = model.predict(x, sample_rate=16000)
    assert len(p.windows) == 8  # 1 s windows every 0.5 s, the last aligned with the end
    assert p.windows[0].start_s == 0.0 and p.windows[-1].end_s == pytest.approx(4.5)
    mean = np.mean([list(w.probabilities.values()) for w in p.windows], axis=0)
    assert np.allclose(mean, list(p.probabilities.values()), atol=1e-6)
    assert p.duration_s == pytest.approx(4.5)


@pytest.mark.parametrize(("name", "codec"), [("phone.m4a", "aac"), ("video.mp4", "aac"), ("browser.webm", "libopus")])
def test_phone_and_browser_formats_decode_and_classify(model, tmp_path, name, codec):
    x = _tone(48000, 1.5, 440)
    _encode(tmp_path / name, codec, x, 48000)
    audio, sr = read_audio(tmp_path / name)
    assert sr == 48000 and abs(audio.shape[0] / sr - 1.5) < 0.1  # codec priming adds a few ms
    spectrum = np.abs(np.fft.rfft(audio[:, 0]))
    assert abs(np.argmax(spectrum) * sr / len(audio) - 440) < 5  # the tone survived the lossy codec
    assert find_audio(tmp_path) == [(tmp_path / name, name)]  # found in a folder (was "no audio files found")
    p = model.predict(tmp_path / name)
    assert p.status == "ok" and p.label in model.labels
