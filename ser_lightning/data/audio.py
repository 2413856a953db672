"""Decode one audio file into a fixed-length, normalised mono waveform.

Decoding is done once per file and cached (:mod:`ser_lightning.data.cache`); everything here is
deterministic so the cache key can be a hash of :class:`AudioConfig` and the file list.
Libraries: soundfile for I/O, soxr for resampling (report 003 §4.1: resampling per item every
epoch cost 40 min per epoch; we do it once).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

NORMALIZE_MODES = ("peak", "rms", "none")
PAD_MODES = ("zero", "reflect", "loop")
CROP_MODES = ("center", "start")


class AudioDecodeError(ValueError):
    """An audio file that cannot be used: unreadable, empty, corrupt or non-finite.

    The message always starts with the file path.
    """


@dataclass(frozen=True)
class AudioConfig:
    """Preprocessing applied when a file is decoded (everything that changes the cached audio).

    Attributes:
        sample_rate: Target sample rate in Hz (soxr HQ resampling).
        duration_s: Fixed clip duration in seconds; shorter clips are padded, longer cropped.
        normalize: ``"peak"`` (max |x| = 1), ``"rms"`` (RMS = ``target_rms_dbfs``) or ``"none"``.
        target_rms_dbfs: RMS level in dBFS for ``normalize="rms"``.
        trim_silence: Trim leading/trailing frames quieter than ``trim_db`` below the loudest.
        trim_db: Silence threshold in dB below the loudest 25 ms frame.
        pad_mode: ``"zero"``, ``"reflect"`` or ``"loop"`` padding at the end.
        crop: ``"center"`` or ``"start"`` crop of longer clips.
    """

    sample_rate: int = 16000
    duration_s: float = 3.0
    normalize: str = "peak"
    target_rms_dbfs: float = -20.0
    trim_silence: bool = False
    trim_db: float = 40.0
    pad_mode: str = "zero"
    crop: str = "center"

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"data.sample_rate={self.sample_rate} must be a positive number of Hz")
        if not self.duration_s > 0:
            raise ValueError(f"data.duration_s={self.duration_s} must be positive (seconds)")
        if self.normalize not in NORMALIZE_MODES:
            raise ValueError(f"data.normalize={self.normalize!r} is not one of {list(NORMALIZE_MODES)}")
        if self.pad_mode not in PAD_MODES:
            raise ValueError(f"data.pad_mode={self.pad_mode!r} is not one of {list(PAD_MODES)}")
        if self.crop not in CROP_MODES:
            raise ValueError(f"data.crop={self.crop!r} is not one of {list(CROP_MODES)}")
        if self.trim_db <= 0:
            raise ValueError(f"data.trim_db={self.trim_db} must be positive (dB below the loudest frame)")

    @property
    def num_samples(self) -> int:
        """Clip length in samples (``round(sample_rate * duration_s)``)."""
        return int(round(self.sample_rate * self.duration_s))

    def as_dict(self) -> dict:
        """Plain dict of the settings (used in the cache key)."""
        return asdict(self)


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read any file soundfile understands, as float32 ``(frames, channels)``.

    Args:
        path: Audio file.

    Returns:
        ``(audio, sample_rate)`` with audio shaped ``(frames, channels)``.

    Raises:
        AudioDecodeError: unreadable or corrupt file, 0 samples, or NaN/inf samples.
    """
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise AudioDecodeError(f"{path}: cannot decode audio ({reason})") from None
    if audio.shape[0] == 0:
        raise AudioDecodeError(f"{path}: empty audio (0 samples)")
    if not np.isfinite(audio).all():
        raise AudioDecodeError(f"{path}: audio contains NaN or infinite samples")
    return audio, int(sr)


def trim_silence(x: np.ndarray, sample_rate: int, trim_db: float = 40.0, frame_s: float = 0.025) -> np.ndarray:
    """Remove leading and trailing silence.

    Frames of ``frame_s`` seconds whose RMS is more than ``trim_db`` below the loudest frame are
    silence. An all-silent clip is returned unchanged.

    Args:
        x: Mono waveform ``(time,)``.
        sample_rate: Sample rate in Hz.
        trim_db: Threshold in dB below the loudest frame.
        frame_s: Frame length in seconds.

    Returns:
        The trimmed waveform ``(time',)``.
    """
    frame = max(1, int(sample_rate * frame_s))
    n = len(x) // frame
    if n < 2:
        return x
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-20)
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > -trim_db)
    if rms.max() <= 1e-10 or loud.size == 0:
        return x
    return x[loud[0] * frame : min(len(x), (loud[-1] + 1) * frame)]


def fix_length(x: np.ndarray, num_samples: int, pad_mode: str = "zero", crop: str = "center") -> np.ndarray:
    """Pad (at the end) or crop a mono waveform to exactly ``num_samples``.

    Args:
        x: Waveform ``(time,)`` with at least one sample.
        num_samples: Target length in samples.
        pad_mode: ``"zero"``, ``"reflect"`` or ``"loop"``.
        crop: ``"center"`` or ``"start"``.

    Returns:
        Waveform ``(num_samples,)``.
    """
    n = len(x)
    if n > num_samples:
        start = (n - num_samples) // 2 if crop == "center" else 0
        return x[start : start + num_samples]
    if n == num_samples:
        return x
    missing = num_samples - n
    if pad_mode == "loop":
        return np.resize(x, num_samples)  # np.resize repeats the array cyclically
    if pad_mode == "reflect" and n > 1:
        return np.pad(x, (0, missing), mode="reflect")
    return np.pad(x, (0, missing))


def normalize(x: np.ndarray, mode: str, target_rms_dbfs: float = -20.0) -> np.ndarray:
    """Scale a waveform by its peak or RMS; an all-zero clip is returned unchanged.

    Args:
        x: Waveform ``(time,)``.
        mode: ``"peak"``, ``"rms"`` or ``"none"``.
        target_rms_dbfs: RMS target in dBFS for ``"rms"``.
    """
    if mode == "peak":
        peak = float(np.max(np.abs(x)))
        return x / peak if peak > 0 else x
    if mode == "rms":
        rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
        return x * (10 ** (target_rms_dbfs / 20) / rms) if rms > 0 else x
    return x


def load_clip(path: str | Path, cfg: AudioConfig) -> np.ndarray:
    """Decode, downmix, resample, trim, normalise and fix the length of one file.

    Args:
        path: Audio file in any format soundfile reads, any sample rate, any channel count.
        cfg: Preprocessing settings.

    Returns:
        float32 waveform ``(cfg.num_samples,)`` at ``cfg.sample_rate`` Hz.

    Raises:
        AudioDecodeError: unreadable, empty, corrupt or non-finite audio (message names the file).
    """
    audio, sr = read_audio(path)
    x = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    if sr != cfg.sample_rate:
        x = soxr.resample(x, sr, cfg.sample_rate, quality="HQ")
        if len(x) == 0:
            raise AudioDecodeError(f"{path}: too short to resample ({audio.shape[0]} samples at {sr} Hz)")
    if cfg.trim_silence:
        x = trim_silence(x, cfg.sample_rate, cfg.trim_db)
    x = normalize(x, cfg.normalize, cfg.target_rms_dbfs)
    return fix_length(np.ascontiguousarray(x, dtype=np.float32), cfg.num_samples, cfg.pad_mode, cfg.crop)
