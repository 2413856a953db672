"""Voice activity detection before emotion: non-speech inputs are reported as "no speech" (not an emotion) in
the Python API, the table, JSON and CSV; a real speech clip padded with silence is classified from its speech
segment (``segment=vad``), with the segment's times close to the truth."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from omegaconf import OmegaConf

import ser_lightning as ser
from ser_lightning.cli.predict import predict
from ser_lightning.inference.predictor import decode_mono, load_model, predict_files
from ser_lightning.inference.vad import (
    NO_SPEECH,
    VadSettings,
    silero_model,
    speech_fraction,
    speech_segments,
)
from tests.speech_like import speech_like

SR = 16000
CLIP = "Actor_01/03-01-05-01-01-01-01.flac"  # angry, statement 1, actor 1
PAD_S = 10.0


def _non_speech(kind: str, seconds: float = 3.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return {
        "tone_220hz": 0.5 * np.sin(2 * np.pi * 220 * t),
        "dc": np.full(len(t), 0.5),
        "white_noise": np.clip(0.3 * np.random.default_rng(0).standard_normal(len(t)), -1, 1),
        "digital_silence": np.zeros(len(t)),
    }[kind].astype(np.float32)


NON_SPEECH = ("tone_220hz", "dc", "white_noise", "digital_silence")


@pytest.fixture(scope="module")
def model(trained_members):
    return ser.load_model(trained_members[0])  # detector on (the default)


def _energy_bounds_s(x: np.ndarray, sr: int, below_max_db: float = 30.0) -> tuple[float, float]:
    """First and last 25 ms frame within ``below_max_db`` of the loudest: the truth the detector is held to."""
    frame, hop = int(0.025 * sr), int(0.010 * sr)
    rms = np.array([np.sqrt(np.mean(x[i:i + frame] ** 2)) for i in range(0, len(x) - frame, hop)])
    loud = np.flatnonzero(20 * np.log10(rms + 1e-12) > 20 * np.log10(rms.max()) - below_max_db)
    return loud[0] * hop / sr, (loud[-1] * hop + frame) / sr


@pytest.mark.parametrize("kind", NON_SPEECH)
def test_non_speech_is_reported_as_no_speech_by_the_api(model, trained_members, kind):
    p = model.predict(_non_speech(kind), sample_rate=SR)  # a single input without speech is an answer, not an error
    assert p.status == NO_SPEECH and not p.has_speech
    assert p.label is None and p.probabilities is None and p.speech_fraction == 0.0
    assert all(w.status == NO_SPEECH and w.label is None for w in p.windows)
    # without the detector the same model answers with an emotion (the behaviour the detector guards against)
    if kind != "digital_silence":
        assert ser.load_model(trained_members[0], vad=False).predict(_non_speech(kind), sample_rate=SR).label


def test_non_speech_files_in_table_json_and_csv(trained_members, tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    for kind in NON_SPEECH:
        sf.write(d / f"{kind}.wav", _non_speech(kind), SR)
    out = tmp_path / "out"
    cfg = OmegaConf.create({"paths": {"output_dir": str(tmp_path / "run")}, "ckpt_path": str(trained_members[0]),
                            "input": str(d), "output": str(out), "progress": False, "batch_size": 4})
    doc = predict(cfg)  # no file has speech: every file is answered, none failed
    assert doc["summary"] == {"files": 4, "ok": 0, "no_speech": 4, "errors": 0}
    assert doc["model"]["vad"]["enabled"] is True and doc["model"]["segment"] == "window"
    assert {r["status"] for r in doc["files"]} == {NO_SPEECH} and all(r["label"] is None for r in doc["files"])
    with open(out / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == [NO_SPEECH] * 4 and [r["speech_fraction"] for r in rows] == ["0"] * 4
    assert all(r["label"] == "" for r in rows)
    with open(out / "windows.csv") as f:
        assert {r["status"] for r in csv.DictReader(f)} == {NO_SPEECH}
    table = capsys.readouterr().out
    assert table.count("no speech") >= 4 and "0 of 4 files classified, 4 without speech" in table


def test_settings_are_checked():
    with pytest.raises(ValueError, match=r"vad.threshold=1.5"):
        VadSettings(threshold=1.5)
    with pytest.raises(ValueError, match=r"vad.min_speech_fraction=-0.1"):
        VadSettings.from_any({"min_speech_fraction": -0.1})
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['treshold'\]"):
        VadSettings.from_any({"treshold": 0.5})
    assert VadSettings.from_any(False).enabled is False and VadSettings.from_any(None).enabled is False
    assert speech_fraction([(0, 10), (20, 30)], 5, 25) == pytest.approx(10 / 20)


def test_segment_vad_needs_the_detector(trained_members):
    with pytest.raises(ValueError, match="segment=vad .* needs the voice activity detector"):
        predict_files([], load_model(trained_members[0]), vad=False, segment="vad")
    with pytest.raises(ValueError, match="segment='words'"):
        ser.load_model(trained_members[0], segment="words")


def test_the_detector_leaves_torch_threads_alone():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        silero_model()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.real_data
def test_padded_speech_is_classified_from_its_speech_segment(real_data_root, trained_members, tmp_path):
    x, sr = sf.read(real_data_root / "ravdess" / CLIP, dtype="float32")
    t0, t1 = _energy_bounds_s(x, sr)
    pad = np.zeros(int(PAD_S * sr), np.float32)
    padded = np.concatenate([pad, x, pad])
    sf.write(tmp_path / "padded.wav", padded, sr)
    model = ser.load_model(trained_members[0], segment="vad")

    p = model.predict(tmp_path / "padded.wav")
    assert p.status == "ok" and p.label is not None
    (seg,) = p.windows  # one speech segment, not the 20 s of silence around it
    assert abs(seg.start_s - (PAD_S + t0)) <= 0.5 and abs(seg.end_s - (PAD_S + t1)) <= 0.5, (seg, t0, t1)
    assert p.speech_fraction == pytest.approx((seg.end_s - seg.start_s) / p.duration_s, abs=1e-3)
    # the file's answer is the model's answer on that segment alone
    wave, _ = decode_mono(tmp_path / "padded.wav", model.sample_rate)
    a, b = round(seg.start_s * model.sample_rate), round(seg.end_s * model.sample_rate)
    alone = ser.load_model(trained_members[0], vad=False).predict(wave[a:b], sample_rate=model.sample_rate)
    assert alone.label == p.label
    np.testing.assert_allclose(list(alone.probabilities.values()), list(p.probabilities.values()), atol=1e-5)

    # fixed windows: the windows in the silence are "no speech", the file is scored from the speech windows only
    w = ser.load_model(trained_members[0]).predict(tmp_path / "padded.wav")
    speech = [win for win in w.windows if win.status == "ok"]
    assert w.status == "ok" and speech and len(speech) < len(w.windows)
    assert all(PAD_S - 1.0 - 0.5 <= win.start_s and win.end_s <= PAD_S + len(x) / sr + 1.0 + 0.5 for win in speech)
    mean = np.mean([list(win.probabilities.values()) for win in speech], axis=0)
    np.testing.assert_allclose(list(w.probabilities.values()), mean, atol=1e-6)


@pytest.mark.real_data
def test_real_speech_is_speech(real_data_root):
    x, sr = sf.read(real_data_root / "ravdess" / CLIP, dtype="float32")
    segments = speech_segments(x, sr, VadSettings())
    assert segments and speech_fraction(segments, 0, len(x)) > 0.3


def test_cli_segment_vad_writes_segment_times(trained_members, tmp_path):
    """``segment=vad`` through the command-line function: a file without speech has no segments."""
    sf.write(tmp_path / "tone.wav", _non_speech("tone_220hz", 2.0), SR)
    cfg = OmegaConf.create({"paths": {"output_dir": str(tmp_path / "run")}, "ckpt_path": str(trained_members[0]),
                            "input": str(tmp_path / "tone.wav"), "progress": False, "segment": "vad",
                            "vad": {"enabled": True, "threshold": 0.6}})
    doc = predict(cfg)
    (rec,) = doc["files"]
    assert rec["status"] == NO_SPEECH and rec["windows"] == [] and doc["model"]["vad"]["threshold"] == 0.6
    assert json.loads((tmp_path / "run" / "predictions.json").read_text())["model"]["segment"] == "vad"


# ------------------------------------------------------------------ generated speech-like audio (no real data)
#: Input rates of the detector's resampling path (it analyses at 16 kHz and maps segments back).
RATES = (8000, 22050, 44100, 48000)
LEAD_S, SPEECH_S, SPEECH_SEED = 1.5, 3.0, 6


def _padded_speech(rate: int) -> tuple[np.ndarray, int, int]:
    """``tests/speech_like.py`` speech (made at 16 kHz, resampled to ``rate`` as a recording at that rate would be
    band-limited), between 1.5 s of near-silence on each side: ``(wave, first speech sample, speech samples)``."""
    x = speech_like(SPEECH_S, SR, seed=SPEECH_SEED)
    if rate != SR:
        x = soxr.resample(x, SR, rate, quality="HQ").astype(np.float32)
    lead = int(LEAD_S * rate)
    wave = np.concatenate([np.zeros(lead, np.float32), x, np.zeros(lead, np.float32)])
    wave += 1e-4 * np.random.default_rng(1).standard_normal(len(wave)).astype(np.float32)  # a -80 dBFS noise floor
    return wave, lead, len(x)


def _check_speech_found(rate: int) -> list[tuple[float, float]]:
    """The detector finds the generated speech at ``rate`` and nothing in the silence; its segments in seconds."""
    wave, start, n = _padded_speech(rate)
    segments = speech_segments(wave, rate, VadSettings())
    assert segments and segments == sorted(segments) and all(0 <= a < b <= len(wave) for a, b in segments)
    assert all(b1 <= a2 for (_, b1), (a2, _) in zip(segments, segments[1:]))
    assert speech_fraction(segments, start, start + n) > 0.6
    margin = int(0.35 * rate)  # speech_pad_s (0.1 s) + a 32 ms detector frame + the resampler's delay
    assert segments[0][0] >= start - margin and segments[-1][1] <= start + n + margin, (segments, start, n)
    return [(a / rate, b / rate) for a, b in segments]


def test_generated_speech_is_speech_at_16_khz():
    """Speech-like audio made without any recording is speech to the detector, and the silence around it is not."""
    _check_speech_found(SR)


@pytest.mark.parametrize("rate", RATES)
def test_generated_speech_is_found_through_the_resampling_path(rate):
    """At 8, 22.05, 44.1 and 48 kHz the detector resamples to 16 kHz and maps its segments back to the caller's
    sample indices: the same speech found at the same times (in seconds) as at 16 kHz."""
    at_16k = _check_speech_found(SR)
    here = _check_speech_found(rate)
    assert here[0][0] == pytest.approx(at_16k[0][0], abs=0.07) and here[-1][1] == pytest.approx(at_16k[-1][1], abs=0.07)
    assert sum(b - a for a, b in here) == pytest.approx(sum(b - a for a, b in at_16k), abs=0.15)


@pytest.mark.parametrize("rate", (8000, 44100))
@pytest.mark.parametrize("kind", ("tone_220hz", "white_noise"))
def test_non_speech_at_other_rates_is_not_speech(kind, rate):
    assert speech_segments(_non_speech(kind, 3.0, rate), rate, VadSettings()) == []


def test_generated_speech_in_a_file_is_classified_from_its_speech_segment(trained_members, tmp_path):
    """``segment=vad`` on a 44.1 kHz file of generated speech padded with silence (the real-data test's check,
    without real data): one window, around the speech."""
    wave, start, n = _padded_speech(44100)
    sf.write(tmp_path / "speech.wav", wave, 44100)
    p = ser.load_model(trained_members[0], segment="vad").predict(tmp_path / "speech.wav")
    assert p.status == "ok" and p.label is not None
    (seg,) = p.windows
    assert LEAD_S - 0.4 <= seg.start_s <= LEAD_S + 0.4 and seg.end_s <= LEAD_S + SPEECH_S + 0.4
    assert seg.end_s - seg.start_s > 0.6 * SPEECH_S
