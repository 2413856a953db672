"""Decoding, preprocessing and the decode-once cache."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import soundfile as sf

from ser_lightning.data.audio import (
    AudioConfig,
    AudioDecodeError,
    fix_length,
    load_clip,
    trim_silence,
)
from ser_lightning.data.cache import build_or_load, cache_key
from tests.conftest import tone


def test_load_clip_resamples_downmixes_and_fixes_length(tmp_path):
    p = tmp_path / "stereo44k.wav"
    sf.write(p, tone(440, 1.0, 44100, channels=2), 44100)
    cfg = AudioConfig(sample_rate=16000, duration_s=1.5)
    x = load_clip(p, cfg)
    assert x.shape == (24000,) and x.dtype == np.float32
    assert np.isclose(np.abs(x).max(), 1.0, atol=1e-6)  # peak-normalised
    assert np.all(x[16100:] == 0)  # zero-padded after the 1.0 s of audio


def test_rms_normalisation(tmp_path):
    p = tmp_path / "a.wav"
    sf.write(p, tone(300, 1.0, 16000), 16000)
    x = load_clip(p, AudioConfig(duration_s=1.0, normalize="rms", target_rms_dbfs=-20.0))
    assert 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2))) == pytest.approx(-20.0, abs=0.05)


@pytest.mark.parametrize("mode", ["zero", "reflect", "loop"])
def test_pad_modes_and_crop(mode):
    x = np.arange(1, 6, dtype=np.float32)
    y = fix_length(x, 8, pad_mode=mode)
    assert y.shape == (8,)
    assert np.array_equal(y[:5], x)
    expected_tail = {"zero": [0, 0, 0], "reflect": [4, 3, 2], "loop": [1, 2, 3]}[mode]
    assert np.array_equal(y[5:], expected_tail)
    assert np.array_equal(fix_length(np.arange(10.0), 4, crop="center"), [3, 4, 5, 6])
    assert np.array_equal(fix_length(np.arange(10.0), 4, crop="start"), [0, 1, 2, 3])


def test_trim_silence_removes_leading_and_trailing_quiet():
    sr = 16000
    x = np.concatenate([np.zeros(sr // 2), tone(300, 0.5, sr)[:, 0], np.zeros(sr // 2)]).astype(np.float32)
    y = trim_silence(x, sr, trim_db=40)
    assert abs(len(y) - sr // 2) <= int(0.025 * sr) * 2


@pytest.mark.parametrize(
    "content, message",
    [(b"", "cannot decode"), (b"this is text, not audio", "cannot decode"), (b"RIFF\x00\x00", "cannot decode")],
)
def test_bad_files_raise_one_line_error_naming_file(tmp_path, content, message):
    p = tmp_path / "bad.wav"
    p.write_bytes(content)
    with pytest.raises(AudioDecodeError) as err:
        load_clip(p, AudioConfig())
    assert str(p) in str(err.value) and message in str(err.value) and "\n" not in str(err.value)


def test_nan_and_empty_audio_rejected(tmp_path):
    nan = tmp_path / "nan.wav"
    x = tone(300, 0.2, 16000)
    x[10] = np.nan
    sf.write(nan, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match="NaN"):
        load_clip(nan, AudioConfig())
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 1), dtype=np.float32), 16000)
    with pytest.raises(AudioDecodeError, match="empty"):
        load_clip(empty, AudioConfig())


def test_invalid_settings_name_the_key():
    with pytest.raises(ValueError, match="data.duration_s"):
        AudioConfig(duration_s=-1)
    with pytest.raises(ValueError, match="data.pad_mode"):
        AudioConfig(pad_mode="mirror")


def _files(tmp_path, n=4):
    paths = []
    for i in range(n):
        p = tmp_path / f"f{i}.wav"
        sf.write(p, tone(200 + 50 * i, 0.5, 8000, seed=i), 8000)
        paths.append(str(p))
    return paths


def test_cache_is_reused_then_invalidated_by_settings_and_file_changes(tmp_path):
    paths = _files(tmp_path)
    cfg = AudioConfig(sample_rate=16000, duration_s=0.5)
    first = build_or_load(paths, cfg, tmp_path / "cache", progress=False)
    assert first.built and first.waves.shape == (4, 8000) and first.ok.all()
    assert np.allclose(first.waves[2], load_clip(paths[2], cfg), atol=1e-3)  # float16 storage

    again = build_or_load(paths, cfg, tmp_path / "cache", progress=False)
    assert not again.built and again.directory == first.directory

    changed = build_or_load(paths, AudioConfig(sample_rate=16000, duration_s=0.5, normalize="rms"), tmp_path / "cache", progress=False)
    assert changed.built and changed.directory != first.directory

    time.sleep(0.01)
    sf.write(paths[0], tone(999, 0.5, 8000), 8000)  # same name, new audio
    os.utime(paths[0], ns=(time.time_ns(), time.time_ns()))
    rebuilt = build_or_load(paths, cfg, tmp_path / "cache", progress=False)
    assert rebuilt.built and rebuilt.directory != first.directory


def test_half_written_cache_is_never_used(tmp_path):
    paths = _files(tmp_path)
    cfg = AudioConfig(duration_s=0.5)
    key = cache_key(paths, cfg, "float16")
    # A crashed build leaves a temp dir and possibly an index-less final dir: neither is read.
    (tmp_path / "cache" / f"{key}.tmp-dead").mkdir(parents=True)
    (tmp_path / "cache" / key).mkdir()
    np.save(tmp_path / "cache" / key / "waves.npy", np.full((4, 8000), 7, dtype=np.float16))
    cached = build_or_load(paths, cfg, tmp_path / "cache", progress=False)
    assert cached.built and float(np.abs(cached.waves).max()) <= 1.0


def test_corrupt_file_is_skipped_and_reported(tmp_path, caplog):
    paths = _files(tmp_path)
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    cached = build_or_load([*paths, str(bad)], AudioConfig(duration_s=0.5), tmp_path / "cache", progress=False)
    assert cached.ok.tolist() == [True, True, True, True, False]
    assert cached.skipped[0][0] == str(bad) and str(bad) in cached.skipped[0][1]
    assert any("skipped unreadable audio" in r.message for r in caplog.records)


def test_all_files_bad_is_an_error(tmp_path):
    bad = tmp_path / "x.wav"
    bad.write_text("nope")
    with pytest.raises(RuntimeError, match="none of the 1 audio files"):
        build_or_load([str(bad)], AudioConfig(), tmp_path / "cache", progress=False)


@pytest.mark.parametrize("dbfs, kept", [(-70.0, False), (-50.0, True)])
def test_training_decode_applies_the_minus_60_dbfs_silence_rule(tmp_path, dbfs, kept):
    """A quiet but not all-zero clip: -70 dBFS peak is rejected as all-silent, -50 dBFS is kept."""
    from ser_lightning.data.audio import AudioDecodeError

    t = np.arange(16000) / 16000
    path = tmp_path / f"quiet{int(-dbfs)}.wav"
    sf.write(path, (10 ** (dbfs / 20) * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000, subtype="FLOAT")
    cfg = AudioConfig(duration_s=1.0)
    if kept:
        assert np.abs(load_clip(path, cfg)).max() == pytest.approx(1.0, abs=1e-3)  # peak-normalised
    else:
        with pytest.raises(AudioDecodeError, match="all-silent"):
            load_clip(path, cfg)
