"""How prediction turns window answers into a file's answer, checked with a stand-in model whose answer for a
window is a known function of its samples: the windows' placement, the mean over the classified windows, the
windows without speech left out, and test-time crops averaged in probability.

No trained model is needed: :class:`~ser_lightning.inference.predictor.LoadedModel` takes any ``run`` function.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ser_lightning.data.audio import AudioConfig
from ser_lightning.data.crops import average_crop_logits
from ser_lightning.inference.predictor import AudioArray, LoadedModel, predict_files, window_starts
from ser_lightning.inference.vad import VadSettings, speech_fraction, speech_segments
from tests.speech_like import speech_like

SR = 16000
LABELS = ["quiet", "loud", "steady"]


def stand_in(batch: np.ndarray) -> np.ndarray:
    """Probabilities ``(batch, 3)`` from each row's RMS, peak and mean absolute value (normalised to sum to 1)."""
    x = np.asarray(batch, dtype=np.float64)
    feats = np.stack([np.sqrt((x ** 2).mean(1)), np.abs(x).max(1), np.abs(x).mean(1)], axis=1) + 1e-3
    return (feats / feats.sum(1, keepdims=True)).astype(np.float32)


def _model(duration_s: float = 1.0) -> LoadedModel:
    cfg = AudioConfig(sample_rate=SR, duration_s=duration_s, normalize="none")
    return LoadedModel(run=stand_in, labels=LABELS, audio_cfg=cfg, name="stand_in", backend="pytorch", source="none")


def _wave() -> np.ndarray:
    """3 s: a quiet 300 Hz tone for 1.5 s, then a loud one whose level grows."""
    t = np.arange(3 * SR) / SR
    level = np.where(t < 1.5, 0.1, 0.3 + 0.2 * (t - 1.5))
    return (level * np.sin(2 * np.pi * 300 * t)).astype(np.float32)


def test_window_starts_cover_the_signal():
    assert window_starts(100, 100, 50) == [0] and window_starts(80, 100, 50) == [0]
    assert window_starts(250, 100, 50) == [0, 50, 100, 150]
    assert window_starts(260, 100, 50) == [0, 50, 100, 150, 160]  # one more window, ending at the last sample
    assert window_starts(101, 100, 100) == [0, 1]


@pytest.mark.parametrize("hop_s", [0.5, 0.3])
def test_the_file_answer_is_the_mean_of_its_windows_answers(hop_s):
    wave = _wave()
    (rec,) = predict_files([(AudioArray.from_any(wave, SR), "x")], _model(), hop_s=hop_s, vad=False)
    hop = int(round(hop_s * SR))
    starts = window_starts(len(wave), SR, hop)
    per_window = stand_in(np.stack([wave[s:s + SR] for s in starts]))
    assert rec["status"] == "ok" and rec["n_windows"] == len(starts) == len(rec["windows"])
    assert [w["start_s"] for w in rec["windows"]] == [round(s / SR, 4) for s in starts]
    for w, p in zip(rec["windows"], per_window):
        assert list(w["probabilities"].values()) == pytest.approx(p.tolist(), abs=1e-6)
        assert w["label"] == LABELS[int(p.argmax())]
    mean = per_window.mean(0)
    assert list(rec["probabilities"].values()) == pytest.approx(mean.tolist(), abs=1e-6)
    assert rec["label"] == LABELS[int(mean.argmax())] and rec["confidence"] == pytest.approx(float(mean.max()), abs=1e-6)
    assert not np.allclose(mean, np.median(per_window, 0)) and not np.allclose(mean, per_window.max(0))


def _speech_between_silences() -> np.ndarray:
    rng = np.random.default_rng(2)
    lead = np.zeros(int(1.5 * SR), np.float32)
    wave = np.concatenate([lead, speech_like(3.0, SR, seed=6), lead])
    return wave + 1e-4 * rng.standard_normal(len(wave)).astype(np.float32)


def test_windows_without_speech_are_left_out_of_the_file_answer():
    """With the detector, a window with too little speech is ``no speech`` and the file's answer is the mean of
    the other windows only (the kept windows worked out here from the detector's own segments)."""
    wave = _speech_between_silences()
    settings = VadSettings(min_speech_fraction=0.3)
    (rec,) = predict_files([(AudioArray.from_any(wave, SR), "x")], _model(), vad=settings)
    speech = speech_segments(wave, SR, settings)
    starts = window_starts(len(wave), SR, SR // 2)
    fractions = [speech_fraction(speech, s, min(len(wave), s + SR)) for s in starts]
    kept = [s for s, f in zip(starts, fractions) if f > 0 and f >= settings.min_speech_fraction]
    assert 0 < len(kept) < len(starts)
    assert [w["status"] == "ok" for w in rec["windows"]] == [s in kept for s in starts]
    assert [w["speech_fraction"] for w in rec["windows"]] == pytest.approx([round(f, 4) for f in fractions], abs=1e-4)
    expected = stand_in(np.stack([wave[s:s + SR] for s in kept])).mean(0)
    assert list(rec["probabilities"].values()) == pytest.approx(expected.tolist(), abs=1e-6)


def test_segment_vad_classifies_each_speech_segment_and_averages_all_their_windows():
    wave = _speech_between_silences()
    (rec,) = predict_files([(AudioArray.from_any(wave, SR), "x")], _model(), vad=True, segment="vad")
    speech = speech_segments(wave, SR, VadSettings())
    assert [(w["start_s"], w["end_s"]) for w in rec["windows"]] == [(round(a / SR, 4), round(b / SR, 4))
                                                                     for a, b in speech]
    assert {w["speech_fraction"] for w in rec["windows"]} == {1.0}  # a speech segment is all speech
    rows = []
    for (a, b), w in zip(speech, rec["windows"]):
        seg = wave[a:b]
        probs = stand_in(np.stack([np.pad(seg[s:s + SR], (0, max(0, SR - len(seg[s:s + SR]))))
                                   for s in window_starts(len(seg), SR, SR // 2)]))
        assert list(w["probabilities"].values()) == pytest.approx(probs.mean(0).tolist(), abs=1e-6)
        rows.append(probs)
    assert list(rec["probabilities"].values()) == pytest.approx(np.concatenate(rows).mean(0).tolist(), abs=1e-6)


def test_cut_windows_gives_float32_windows_zero_padded_after_their_length():
    from ser_lightning.data.crops import cut_windows

    waves = np.arange(20, dtype=np.float64).reshape(2, 10)
    out = cut_windows(waves, np.array([1, 0]), np.array([2, 7]), np.array([4, 3]))
    assert out.dtype == np.float32 and out.tolist() == [[12, 13, 14, 15], [7, 8, 9, 0]]


def test_test_time_crops_are_averaged_in_probability():
    """``data.test_crops``: a clip's answer is the log of its windows' mean class probability, by hand."""
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0], [1.0, 1.0, 1.0], [-2.0, 0.5, 4.0]])
    out = average_crop_logits(logits, 2)
    for clip, rows in enumerate(([0, 1], [2, 3])):
        probs = [[math.exp(v) / sum(math.exp(u) for u in logits[r].tolist()) for v in logits[r].tolist()] for r in rows]
        mean = [sum(p[c] for p in probs) / 2 for c in range(3)]
        assert out[clip].tolist() == pytest.approx([math.log(m) for m in mean], abs=1e-5)
    assert torch.softmax(out, 1).sum(1).tolist() == pytest.approx([1.0, 1.0], abs=1e-6)


# ------------------------------------------------------------------ the file records around the answer
def _mean_over_windows(wave: np.ndarray, model: LoadedModel, hop: int, offset_s: float = 0.0) -> tuple[np.ndarray, list]:
    starts = window_starts(len(wave), SR, hop)
    return stand_in(np.stack([np.pad(wave[s:s + SR], (0, max(0, SR - len(wave[s:s + SR])))) for s in starts])).mean(0), \
        [round(offset_s + s / SR, 4) for s in starts]


def test_a_stereo_48_khz_tensor_is_downmixed_resampled_and_recorded():
    """A torchaudio-style ``(channels, time)`` tensor at 48 kHz: the channels' mean, resampled to the model's 16 kHz
    (soxr HQ, as in training), is what the windows see; the record names the input's rate, channels and length."""
    import soxr

    t = np.arange(int(2.5 * 48000)) / 48000
    left, right = 0.6 * np.sin(2 * np.pi * 300 * t) * (t / 2.5), 0.2 * np.sin(2 * np.pi * 700 * t)
    audio = AudioArray.from_any(torch.tensor(np.stack([left, right]), dtype=torch.float32), 48000, name="mix")
    assert audio.samples.shape == (len(t), 2) and audio.samples.dtype == np.float32
    (rec,) = predict_files([(audio, "shown")], _model(), vad=False)
    mono = soxr.resample(((left + right) / 2).astype(np.float32), 48000, SR, quality="HQ")
    expected, starts = _mean_over_windows(mono, _model(), SR // 2)
    assert (rec["file"], rec["path"], rec["status"], rec["error"]) == ("shown", "mix", "ok", "")
    assert (rec["duration_s"], rec["source_sample_rate"], rec["channels"]) == (2.5, 48000, 2)
    assert rec["analysed_s"] == round(len(mono) / SR, 4) and rec["speech_fraction"] is None
    assert [w["start_s"] for w in rec["windows"]] == starts
    assert list(rec["probabilities"].values()) == pytest.approx(expected.tolist(), abs=1e-5)
    with pytest.raises(ValueError, match="sample_rate"):
        AudioArray.from_any(np.zeros(10), 0)


def test_peak_normalised_windows_and_trimmed_silence():
    """A model trained on peak-normalised clips gets each window peak-normalised; with trimming, the silence around
    the sound is not analysed and the windows' times stay those of the original file."""
    t = np.arange(2 * SR) / SR
    sound = (0.05 + 0.2 * t) * np.sin(2 * np.pi * 300 * t)
    wave = np.concatenate([np.zeros(SR // 2), sound, np.zeros(SR // 2)]).astype(np.float32)
    cfg = AudioConfig(sample_rate=SR, duration_s=1.0, normalize="peak")
    model = LoadedModel(run=stand_in, labels=LABELS, audio_cfg=cfg, name="x", backend="pytorch", source="none")
    (rec,) = predict_files([(AudioArray.from_any(wave, SR), "x")], model, vad=False, trim=True, trim_db=30.0)
    from ser_lightning.data.audio import trim_silence

    kept = trim_silence(wave, SR, 30.0)
    start = int(np.flatnonzero(np.all(np.lib.stride_tricks.sliding_window_view(wave, len(kept)) == kept, axis=1))[0])
    assert 0 < start and len(kept) < len(wave) and rec["analysed_s"] == round(len(kept) / SR, 4)
    starts = window_starts(len(kept), SR, SR // 2)
    assert [w["start_s"] for w in rec["windows"]] == [round((start + s) / SR, 4) for s in starts]
    peak = [np.pad(kept[s:s + SR], (0, max(0, SR - len(kept[s:s + SR])))) for s in starts]
    expected = stand_in(np.stack([w / np.abs(w).max() for w in peak])).mean(0)
    assert list(rec["probabilities"].values()) == pytest.approx(expected.tolist(), abs=1e-5)


def test_a_whole_clip_model_gets_each_windows_valid_length():
    """``takes_lengths`` (a model trained on whole clips): a window shorter than the model's clip is passed with its
    own length, so that pooling ignores the padding."""
    seen = []

    def run(batch, lengths):
        seen.extend(np.asarray(lengths).tolist())
        return stand_in(np.stack([row[:n] for row, n in zip(batch, lengths)]) if len(set(lengths)) == 1 else batch)

    cfg = AudioConfig(sample_rate=SR, duration_s=1.0, normalize="none", clip_length="whole")
    model = LoadedModel(run=run, labels=LABELS, audio_cfg=cfg, name="x", backend="pytorch", source="none",
                        takes_lengths=True)
    wave = _wave()[: int(0.6 * SR)]
    (rec,) = predict_files([(AudioArray.from_any(wave, SR), "x")], model, vad=False)
    assert seen == [len(wave)]
    assert list(rec["probabilities"].values()) == pytest.approx(stand_in(wave[None])[0].tolist(), abs=1e-6)


def test_silence_is_an_error_without_the_detector_and_no_speech_with_it():
    silent = AudioArray.from_any(np.zeros(SR, np.float32), SR, name="quiet")
    (err,) = predict_files([(silent, "quiet")], _model(), vad=False)
    assert err["status"] == "error" and err["error"].startswith("all-silent audio") and err["label"] is None
    (rec,) = predict_files([(silent, "quiet")], _model(), vad=True)
    assert (rec["status"], rec["speech_fraction"], rec["analysed_s"], rec["duration_s"]) == ("no speech", 0.0, 0.0, 1.0)
    assert (rec["source_sample_rate"], rec["channels"], rec["label"], rec["probabilities"]) == (SR, 1, None, None)


def test_a_window_at_exactly_the_minimum_speech_fraction_is_classified(monkeypatch):
    """``vad.min_speech_fraction`` is inclusive; a window without speech has no label, confidence or probabilities,
    and a classified window's confidence is its top probability."""
    import ser_lightning.inference.scheduling as scheduling

    monkeypatch.setattr(scheduling, "speech_segments", lambda wave, sr, settings: [(0, SR // 2)])  # 0.5 s of speech
    (rec,) = predict_files([(AudioArray.from_any(_wave(), SR), "x")], _model(), vad={"min_speech_fraction": 0.5})
    statuses = [w["status"] for w in rec["windows"]]
    assert statuses[0] == "ok" and set(statuses[1:]) == {"no speech"}  # the first window is half speech
    first, rest = rec["windows"][0], rec["windows"][1:]
    assert first["speech_fraction"] == 0.5 and first["confidence"] == pytest.approx(max(first["probabilities"].values()))
    assert all((w["label"], w["confidence"], w["probabilities"]) == (None, None, None) for w in rest)
    assert rec["speech_fraction"] == round(0.5 / 3, 4)
