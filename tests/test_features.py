"""Spectral frontends: shapes, normalisation, float32 under autocast, config validation."""

from __future__ import annotations

import math

import pytest
import torch

from ser_lightning.features.frontend import LogMelFrontend, MFCCFrontend, build_frontend

SR = 16000
NUM_SAMPLES = 3 * SR  # 3.0 s


def _tones(batch: int = 3, num_samples: int = NUM_SAMPLES) -> torch.Tensor:
    """(batch, time) sines of different pitch and loudness plus a little noise."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(num_samples) / SR
    freqs = torch.tensor([220.0, 440.0, 1000.0, 3000.0])[:batch, None]
    amps = torch.tensor([1.0, 0.1, 0.01, 0.5])[:batch, None]
    return amps * torch.sin(2 * math.pi * freqs * t) + 1e-3 * torch.randn(batch, num_samples, generator=g)


@pytest.mark.parametrize("shape", [(3, NUM_SAMPLES), (3, 1, NUM_SAMPLES)])
def test_logmel_shape_3s(shape):
    fe = LogMelFrontend()
    out = fe(_tones().reshape(shape))
    assert out.shape == (3, 1, 64, 188)
    assert fe.out_channels == 1
    assert fe.frames(NUM_SAMPLES) == 188
    assert fe.output_shape(NUM_SAMPLES) == (1, 64, 188)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("deltas", [0, 1, 2])
def test_mfcc_shape_and_channels(deltas):
    fe = MFCCFrontend(n_mfcc=40, deltas=deltas)
    out = fe(_tones())
    assert out.shape == (3, 1 + deltas, 40, 188)
    assert fe.out_channels == 1 + deltas
    assert fe.output_shape(NUM_SAMPLES) == tuple(out.shape[1:])


def test_output_shape_matches_forward_for_odd_lengths():
    for fe in (LogMelFrontend(hop_length=160, n_fft=400, n_mels=40), MFCCFrontend(hop_length=128, deltas=2)):
        for n in (1000, 12345, 16001):
            assert fe(torch.zeros(2, n)).shape[1:] == fe.output_shape(n)


def test_mfcc_delta_channel_is_delta_of_static():
    fe = MFCCFrontend(deltas=2, normalize="none")
    out = fe(_tones(2))
    from torchaudio.transforms import ComputeDeltas

    d = ComputeDeltas(win_length=5)
    torch.testing.assert_close(out[:, 1], d(out[:, 0]))
    torch.testing.assert_close(out[:, 2], d(out[:, 1]))


@pytest.mark.parametrize("fe", [LogMelFrontend(), MFCCFrontend(deltas=2)], ids=["logmel", "mfcc"])
def test_utterance_normalisation_per_item(fe):
    out = fe(_tones(4))
    mean = out.mean(dim=(-2, -1))
    std = out.std(dim=(-2, -1), unbiased=False)
    torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-4, rtol=0)
    torch.testing.assert_close(std, torch.ones_like(std), atol=1e-3, rtol=0)


def test_normalize_none_is_raw_db_with_per_item_top_db():
    fe = LogMelFrontend(normalize="none", top_db=80.0)
    x = _tones(2)
    x[1] *= 1e-3  # 60 dB quieter
    out = fe(x)
    assert out.mean() < -5  # dB, not standardised
    # each item keeps its own 80 dB range below its own peak, not the batch's loudest item
    span = out.amax(dim=(-2, -1)) - out.amin(dim=(-2, -1))
    assert torch.all(span <= 80.0 + 1e-3)
    alone = fe(x[1:2])
    torch.testing.assert_close(out[1:2], alone, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("fe", [LogMelFrontend(), MFCCFrontend(deltas=1)], ids=["logmel", "mfcc"])
def test_float32_under_bf16_autocast(fe):
    x = _tones(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out32 = fe(x)
        out16 = fe(x.to(torch.bfloat16))
    assert out32.dtype == out16.dtype == torch.float32
    # autocast must not change the computation at all: identical to running outside autocast
    torch.testing.assert_close(out32, fe(x), rtol=0, atol=0)
    torch.testing.assert_close(out16, fe(x.to(torch.bfloat16).float()), rtol=0, atol=0)


def test_zero_input_is_finite():
    for fe in (LogMelFrontend(), MFCCFrontend(deltas=2)):
        assert torch.isfinite(fe(torch.zeros(2, 4000))).all()


def test_build_frontend():
    assert isinstance(build_frontend("logmel", n_mels=32), LogMelFrontend)
    mfcc = build_frontend("mfcc", n_mfcc=13, deltas=2)
    assert isinstance(mfcc, MFCCFrontend) and mfcc.out_channels == 3
    with pytest.raises(ValueError, match=r"'stft'.*logmel.*mfcc"):
        build_frontend("stft")


@pytest.mark.parametrize(
    ("cls", "kwargs", "pattern"),
    [
        (
            LogMelFrontend,
            {"n_fft": 256, "n_mels": 200},
            r"features\.n_mels=200 is larger than the n_fft // 2 \+ 1 = 129 frequency bins of features\.n_fft=256",
        ),
        (MFCCFrontend, {"n_fft": 128, "n_mels": 80}, r"features\.n_mels=80 .*features\.n_fft=128"),
        (LogMelFrontend, {"hop_length": 0}, r"features\.hop_length=0"),
        (LogMelFrontend, {"n_fft": -1}, r"features\.n_fft=-1"),
        (LogMelFrontend, {"f_max": 9000.0}, r"features\.f_max=9000\.0"),
        (MFCCFrontend, {"f_max": 8001.0}, r"features\.f_max=8001\.0"),
        (LogMelFrontend, {"normalize": "global"}, r"features\.normalize='global'"),
        (MFCCFrontend, {"n_mfcc": 80, "n_mels": 64}, r"features\.n_mfcc=80"),
        (MFCCFrontend, {"deltas": 3}, r"features\.deltas=3"),
        (MFCCFrontend, {"normalize": "batch"}, r"features\.normalize='batch'"),
    ],
)
def test_validation_names_setting(cls, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        cls(**kwargs)


def test_rejects_bad_waveform_shape():
    with pytest.raises(ValueError, match="batch"):
        LogMelFrontend()(torch.zeros(2, 2, 1000))


# ------------------------------------------------------------- CPU fast path vs torchaudio


def _torchaudio_logmel(fe: LogMelFrontend, x: torch.Tensor) -> torch.Tensor:
    """The reference: torchaudio's own MelSpectrogram → AmplitudeToDB (4-D) → per-item standardisation."""
    db = fe.to_db(fe.melspec(x.unsqueeze(1)))
    std, mean = torch.std_mean(db, dim=(-2, -1), keepdim=True, correction=0)
    return (db - mean) / (std + 1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"n_fft": 512, "hop_length": 160, "n_mels": 40}, {"n_fft": 2048, "hop_length": 512, "n_mels": 128},
     {"win_length": 800}],  # the last one takes torchaudio's framing (window shorter than n_fft)
    ids=["default", "n_fft512", "n_fft2048", "win800"],
)
def test_logmel_fast_path_matches_torchaudio(kwargs):
    from ser_lightning.features.frontend import _mel_power

    fe = LogMelFrontend(**kwargs)
    x = _tones(4)
    power = _mel_power(fe.melspec, x.unsqueeze(1))
    ref_power = fe.melspec(x.unsqueeze(1))
    torch.testing.assert_close(power, ref_power, rtol=2e-6, atol=1e-12)
    torch.testing.assert_close(fe(x), _torchaudio_logmel(fe, x), rtol=0, atol=2e-4)


@pytest.mark.parametrize("cls", [LogMelFrontend, lambda: MFCCFrontend(deltas=2)], ids=["logmel", "mfcc"])
def test_cpu_chunking_is_bit_identical(cls, monkeypatch):
    import ser_lightning.features.frontend as frontend

    fe = cls() if isinstance(cls, type) else cls()
    x = torch.cat([_tones(4), 0.5 * _tones(4).flip(0), _tones(3)])  # 11 clips: chunks of 3 leave 2
    whole = fe(x)
    frame_bytes = (NUM_SAMPLES // 256 + 1) * 1024 * 4
    monkeypatch.setattr(frontend, "_CHUNK_BYTES", 3 * frame_bytes)  # chunks of 3 items
    calls = []
    original = fe._features
    monkeypatch.setattr(fe, "_features", lambda part: calls.append(len(part)) or original(part))
    chunked = fe(x)
    assert calls == [3, 3, 3, 2]
    assert torch.equal(chunked, whole)
