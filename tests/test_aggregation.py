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
    rows = []
    for (a, b), w in zip(speech, rec["windows"]):
        seg = wave[a:b]
        probs = stand_in(np.stack([np.pad(seg[s:s + SR], (0, max(0, SR - len(seg[s:s + SR]))))
                                   for s in window_starts(len(seg), SR, SR // 2)]))
        assert list(w["probabilities"].values()) == pytest.approx(probs.mean(0).tolist(), abs=1e-6)
        rows.append(probs)
    assert list(rec["probabilities"].values()) == pytest.approx(np.concatenate(rows).mean(0).tolist(), abs=1e-6)


def test_test_time_crops_are_averaged_in_probability():
    """``data.test_crops``: a clip's answer is the log of its windows' mean class probability, by hand."""
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0], [1.0, 1.0, 1.0], [-2.0, 0.5, 4.0]])
    out = average_crop_logits(logits, 2)
    for clip, rows in enumerate(([0, 1], [2, 3])):
        probs = [[math.exp(v) / sum(math.exp(u) for u in logits[r].tolist()) for v in logits[r].tolist()] for r in rows]
        mean = [sum(p[c] for p in probs) / 2 for c in range(3)]
        assert out[clip].tolist() == pytest.approx([math.log(m) for m in mean], abs=1e-5)
    assert torch.softmax(out, 1).sum(1).tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
