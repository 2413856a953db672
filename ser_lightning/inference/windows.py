"""Audio to model windows, as training saw clips: decoding, mono, the model's rate, sliding windows.

Every file goes through the checkpoint's own preprocessing, built from :mod:`ser_lightning.data.audio` (the
functions that decoded the training data): any format soundfile or PyAV (.m4a, .mp4, .webm) reads, channels
averaged to mono, resampled with soxr (HQ) to the model's rate. The clip is then cut into windows of the model's
training duration, every ``hop_s`` seconds (:func:`default_hop_s`: half a window), the last window aligned with the
end of the file (so every sample is covered and no window is padded unless the whole file is shorter than one
window); each window is normalised like a training clip (peak/RMS) and a file shorter than a window is padded the
training way. For a file no longer than one window this is exactly :func:`ser_lightning.data.audio.load_clip`,
i.e. what the model saw in training.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soxr
import torch

from ser_lightning.data.audio import (
    AUDIO_EXTENSIONS,
    AudioConfig,
    AudioDecodeError,
    check_audio,
    fix_length,
    normalize,
    peak_dbfs,
    read_audio,
)

log = logging.getLogger(__name__)


class SilentAudioError(AudioDecodeError):
    """All-silent audio (peak below ``silence_dbfs``): an error without voice activity detection, no speech with it.

    Attributes:
        info: ``duration_s``, ``source_sample_rate`` (Hz), ``channels`` and ``peak_dbfs`` of the audio.
    """

    def __init__(self, message: str, info: dict[str, Any]) -> None:
        super().__init__(message)
        self.info = info


@dataclass(frozen=True)
class AudioArray:
    """In-memory audio to classify (the Python API's ``model.predict(array, sample_rate)``).

    Attributes:
        samples: ``(time,)`` mono, or ``(frames, channels)`` as soundfile returns it (numpy); a torch tensor
            ``(channels, time)`` as torchaudio returns it is accepted by :meth:`from_any`.
        sample_rate: Rate in Hz.
        name: Shown in results and messages.
    """

    samples: np.ndarray
    sample_rate: int
    name: str = "<array>"

    @classmethod
    def from_any(cls, samples: Any, sample_rate: int, name: str = "<array>") -> AudioArray:
        """Normalise a numpy array or torch tensor to float32 ``(frames, channels)``.

        Raises:
            ValueError: ``sample_rate`` missing or not positive, or more than 2 dimensions.
        """
        if sample_rate is None or int(sample_rate) <= 0:
            raise ValueError(f"{name}: sample_rate (Hz) is required with an array, got {sample_rate!r}")
        if isinstance(samples, torch.Tensor):
            x = samples.detach().cpu().float().numpy()
            x = x[:, None] if x.ndim == 1 else x.T  # torchaudio: (channels, time)
        else:
            x = np.asarray(samples, dtype=np.float32)
            x = x[:, None] if x.ndim == 1 else x
        if x.ndim != 2:
            raise ValueError(f"{name}: expected (time,) or (frames, channels) audio, got shape {tuple(x.shape)}")
        return cls(np.ascontiguousarray(x, dtype=np.float32), int(sample_rate), name)


def to_model_rate(audio: np.ndarray, sr: int, sample_rate: int, name: str | Path,
                  silence_dbfs: float = -60.0) -> tuple[np.ndarray, dict]:
    """Mono float32 waveform at ``sample_rate`` Hz from ``(frames, channels)`` audio, as training did.

    Mean of the channels, soxr HQ resampling; the all-silent check on the result.

    Args:
        audio: ``(frames, channels)`` float32 samples at ``sr`` Hz (checked by
            :func:`~ser_lightning.data.audio.check_audio`).
        sr: Its rate in Hz.
        sample_rate: Target rate in Hz.
        name: File or array name, first in messages.
        silence_dbfs: Audio whose peak is below this level (dB re full scale) is all-silent.

    Returns:
        ``(waveform (time,), info)`` with ``info = {"duration_s", "source_sample_rate" (Hz), "channels",
        "peak_dbfs"}``.

    Raises:
        AudioDecodeError: too short to resample.
        SilentAudioError: all-silent (a subclass of ``AudioDecodeError``).
    """
    x = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    if sr != sample_rate:
        x = soxr.resample(x, sr, sample_rate, quality="HQ")
        if len(x) == 0:
            raise AudioDecodeError(f"{name}: too short to resample ({audio.shape[0]} samples at {sr} Hz)")
    peak = peak_dbfs(x)
    info = {"duration_s": audio.shape[0] / sr, "source_sample_rate": sr, "channels": int(audio.shape[1]),
            "peak_dbfs": round(peak, 2) if math.isfinite(peak) else None}
    if peak < silence_dbfs:
        level = f"{peak:.1f} dBFS" if math.isfinite(peak) else "digital silence"
        raise SilentAudioError(f"{name}: all-silent audio (peak {level} < silence_dbfs={silence_dbfs:g})", info)
    return np.ascontiguousarray(x, dtype=np.float32), info


def decode_mono(path: str | Path | AudioArray, sample_rate: int, silence_dbfs: float = -60.0) -> tuple[np.ndarray, dict]:
    """Decode a file (or take an :class:`AudioArray`) to a mono float32 waveform at ``sample_rate`` Hz.

    Same steps as :func:`ser_lightning.data.audio.load_clip` before trimming: decode
    (:func:`~ser_lightning.data.audio.read_audio`), mean of the channels, soxr HQ resampling
    (:func:`to_model_rate`).

    Args:
        path: Audio file in any format :func:`~ser_lightning.data.audio.read_audio` decodes, or an
            :class:`AudioArray`.
        sample_rate: Target rate in Hz.
        silence_dbfs: A file whose peak is below this level (dB re full scale) is all-silent.

    Returns:
        ``(waveform (time,), info)``; see :func:`to_model_rate`.

    Raises:
        AudioDecodeError: unreadable/corrupt, empty, shorter than
            :data:`~ser_lightning.data.audio.MIN_DURATION_S`, NaN/inf samples, too short to resample, or
            all-silent.
    """
    if isinstance(path, AudioArray):
        audio, sr, name = check_audio(path.samples, path.sample_rate, path.name), path.sample_rate, path.name
    else:
        (audio, sr), name = read_audio(path), path
    return to_model_rate(audio, sr, sample_rate, name, silence_dbfs)


def default_hop_s(duration_s: float) -> float:
    """The default hop between prediction windows in seconds: half the model's clip, ``duration_s / 2``.

    >>> default_hop_s(3.0)
    1.5
    """
    return duration_s / 2


def check_hop_s(hop_s: float | None, cfg: AudioConfig) -> tuple[float, int]:
    """The hop between windows (``None``: :func:`default_hop_s`), checked against the model's window.

    Args:
        hop_s: Seconds between window starts, or ``None``.
        cfg: The model's preprocessing (``duration_s``, ``sample_rate`` Hz).

    Returns:
        ``(hop_s, hop in samples)`` (at least one sample).

    Raises:
        ValueError: ``hop_s`` outside ``(0, duration_s]``.
    """
    hop_s = default_hop_s(cfg.duration_s) if hop_s is None else float(hop_s)
    if not 0 < hop_s <= cfg.duration_s:
        raise ValueError(f"hop_s={hop_s} must be in (0, {cfg.duration_s}] seconds (the model's window duration_s)")
    return hop_s, max(1, int(round(hop_s * cfg.sample_rate)))


def window_starts(n_samples: int, window: int, hop: int) -> list[int]:
    """Start samples of sliding windows covering a signal.

    Args:
        n_samples: Signal length in samples.
        window: Window length in samples.
        hop: Hop in samples (≥ 1).

    Returns:
        ``[0]`` when ``n_samples <= window``; else ``0, hop, 2·hop, …`` while the window fits,
        plus one window ending at the last sample if those do not reach it.
    """
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window + 1, hop))
    if starts[-1] + window < n_samples:
        starts.append(n_samples - window)
    return starts


def make_window(x: np.ndarray, start: int, cfg: AudioConfig) -> np.ndarray:
    """One model input: ``cfg.num_samples`` samples from ``start``, normalised and padded as in training.

    Args:
        x: Mono waveform ``(time,)`` at ``cfg.sample_rate``.
        start: First sample.
        cfg: The model's preprocessing (``normalize``, ``target_rms_dbfs``, ``pad_mode``).

    Returns:
        float32 ``(cfg.num_samples,)``.
    """
    seg = normalize(x[start : start + cfg.num_samples], cfg.normalize, cfg.target_rms_dbfs)
    return fix_length(np.ascontiguousarray(seg, dtype=np.float32), cfg.num_samples, cfg.pad_mode, cfg.crop)


def window_length(n_samples: int, start: int, cfg: AudioConfig) -> int:
    """Valid samples of the window that starts at ``start`` of an ``n_samples``-long recording.

    Whole-clip models (``cfg.clip_length == "whole"``) saw each training clip at its own length, the
    rest zero padding that their pooling ignored; a prediction window shorter than the model's clip
    (a short file, the end of a long one) gets the same treatment. Fixed-length models read every
    window whole.

    Args:
        n_samples: Length of the recording (or segment) in samples.
        start: Window start in samples.
        cfg: The model's preprocessing.

    Returns:
        ``min(cfg.num_samples, n_samples - start)`` (at least 1) for whole-clip models, else ``cfg.num_samples``.
    """
    if cfg.clip_length != "whole":
        return cfg.num_samples
    return max(1, min(cfg.num_samples, n_samples - start))


def find_audio(inputs: str | Path | Sequence[str | Path], extensions: Iterable[str] | None = None,
               setting: str = "input") -> list[tuple[Path, str]]:
    """The files to classify.

    Args:
        inputs: A file, a directory (searched recursively) or a list of them.
        extensions: File name extensions (no dot, any case) taken from directories; ``None`` =
            every format :func:`~ser_lightning.data.audio.read_audio` decodes. Files named explicitly are always taken.
        setting: The setting named in messages (``input``, ``speaker_reference``).

    Returns:
        ``[(path, display_name)]`` in sorted order per input; a directory's files are shown
        relative to it.

    Raises:
        FileNotFoundError: an input does not exist.
        ValueError: no input, or no audio file found.
    """
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs or [])
    if not items:
        raise ValueError(f"{setting}=FILE_OR_DIR is required")
    exts = {e.lower().lstrip(".") for e in extensions} if extensions else AUDIO_EXTENSIONS
    found: list[tuple[Path, str]] = []
    for item in items:
        p = Path(str(item)).expanduser()
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower().lstrip(".") in exts)
            found += [(f, str(f.relative_to(p))) for f in files]
        elif p.is_file():
            found.append((p, str(item)))
        else:
            raise FileNotFoundError(f"{setting}={item}: no such file or directory")
    if not found:
        raise ValueError(f"{setting}={[str(i) for i in items]}: no audio files found (extensions {sorted(exts)})")
    return found
