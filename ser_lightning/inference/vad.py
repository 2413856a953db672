"""Voice activity detection before emotion recognition: which parts of a recording are speech.

A trained classifier answers on any input, speech or not (a pure tone or a constant signal gets a
confident emotion). Prediction therefore asks a voice activity detector first and reports a file or
window without speech as ``status="no speech"`` (with its speech fraction) instead of an emotion.

The detector is Silero VAD (PyPI ``silero-vad``, MIT licence; Silero Team, *Silero VAD: pre-trained
enterprise-grade Voice Activity Detector*, 2024, https://github.com/snakers4/silero-vad), used
through its core package API (:func:`silero_vad.load_silero_vad`,
:func:`silero_vad.get_speech_timestamps`): its TorchScript model ships inside the wheel, so it runs
offline; it runs on the CPU (about 11 ms per second of audio on one thread: 0.27 s for 23.9 s), whatever
device the emotion model uses.
Silero works at 16 kHz: audio at another rate is resampled with soxr (HQ) for the detector only, and
the segments are mapped back to the caller's sample rate.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import soxr
import torch

#: Silero VAD's analysis rate in Hz.
VAD_SAMPLE_RATE = 16000

#: Segmentation modes of long files: fixed sliding windows, or the detector's speech segments.
SEGMENT_MODES = ("window", "vad")

#: Status of a file or window in which the detector found (too little) speech.
NO_SPEECH = "no speech"


@dataclass(frozen=True)
class VadSettings:
    """Settings of the voice activity detector (``vad.*`` in ``conf/predict.yaml``).

    Attributes:
        enabled: Run the detector; ``False`` classifies every window as before.
        threshold: Silero speech probability above which a 32 ms frame is speech (its default 0.5).
        min_speech_fraction: A window (or a file no longer than one window) whose share of speech is
            below this fraction is reported as no speech, in ``[0, 1]``.
        min_speech_s: Speech segments shorter than this many seconds are discarded (clicks, coughs).
        min_silence_s: A pause must last this many seconds to end a speech segment.
        speech_pad_s: Seconds of context kept on each side of a speech segment.

    Raises:
        ValueError: a setting out of range (named in the message).
    """

    enabled: bool = True
    threshold: float = 0.5
    min_speech_fraction: float = 0.1
    min_speech_s: float = 0.25
    min_silence_s: float = 0.3
    speech_pad_s: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"vad.threshold={self.threshold} must be a speech probability in (0, 1)")
        if not 0.0 <= self.min_speech_fraction <= 1.0:
            raise ValueError(f"vad.min_speech_fraction={self.min_speech_fraction} must be in [0, 1]")
        for name in ("min_speech_s", "min_silence_s", "speech_pad_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"vad.{name}={getattr(self, name)} must be >= 0 seconds")

    @classmethod
    def from_any(cls, value: bool | Mapping[str, Any] | VadSettings | None) -> VadSettings:
        """Settings from ``True``/``False``/``None`` (on/off/off), a mapping of fields, or settings.

        Raises:
            ValueError: an unknown key or a value out of range.
        """
        if isinstance(value, VadSettings):
            return value
        if value is None or isinstance(value, bool):
            return cls(enabled=bool(value))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"vad: unknown setting(s) {unknown}; known: {sorted(known)}")
        return cls(**{k: (bool(v) if k == "enabled" else float(v)) for k, v in value.items() if v is not None})

    def as_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (for the outputs' header)."""
        return asdict(self)


_MODEL: Any = None
_LOCK = threading.Lock()


def silero_model() -> Any:
    """The Silero VAD TorchScript model from the ``silero-vad`` wheel, loaded once per process on the CPU.

    Importing ``silero_vad`` sets torch's intra-op thread count to 1 as a side effect; the caller's
    thread count is restored.

    Raises:
        ImportError: ``silero-vad`` is not installed (with the command that installs it).
    """
    global _MODEL
    with _LOCK:
        if _MODEL is None:
            threads = torch.get_num_threads()
            try:
                from silero_vad import load_silero_vad
            except ImportError as err:  # pragma: no cover - a dependency of the install
                raise ImportError("voice activity detection needs silero-vad: pip install 'silero-vad>=5.1' "
                                  "(or turn it off with vad.enabled=false)") from err
            finally:
                torch.set_num_threads(threads)
            _MODEL = load_silero_vad(onnx=False)
        return _MODEL


def speech_segments(wave: np.ndarray, sample_rate: int, settings: VadSettings) -> list[tuple[int, int]]:
    """Speech segments of a mono waveform.

    Args:
        wave: ``(time,)`` float waveform in [-1, 1].
        sample_rate: Its rate in Hz (resampled to 16 kHz for the detector).
        settings: Detector settings.

    Returns:
        ``[(start, end)]`` sample indices at ``sample_rate`` (``end`` exclusive), sorted and disjoint;
        empty when there is no speech (digital silence, a tone, a constant signal, noise...).
    """
    from silero_vad import get_speech_timestamps

    x = np.asarray(wave, dtype=np.float32)
    if sample_rate != VAD_SAMPLE_RATE:
        x = soxr.resample(x, sample_rate, VAD_SAMPLE_RATE, quality="HQ").astype(np.float32)
    if len(x) == 0 or not np.any(x):
        return []
    model = silero_model()
    with torch.inference_mode():
        stamps = get_speech_timestamps(
            torch.from_numpy(np.ascontiguousarray(x)), model, threshold=settings.threshold,
            sampling_rate=VAD_SAMPLE_RATE, min_speech_duration_ms=int(round(settings.min_speech_s * 1000)),
            min_silence_duration_ms=int(round(settings.min_silence_s * 1000)),
            speech_pad_ms=int(round(settings.speech_pad_s * 1000)))
    scale = sample_rate / VAD_SAMPLE_RATE
    n = len(wave)
    out = [(min(n, int(round(s["start"] * scale))), min(n, int(round(s["end"] * scale)))) for s in stamps]
    return [(a, b) for a, b in out if b > a]


def speech_fraction(segments: Sequence[tuple[int, int]], start: int, end: int) -> float:
    """Share of ``[start, end)`` covered by speech segments.

    Args:
        segments: Disjoint ``[(start, end)]`` sample ranges (:func:`speech_segments`).
        start: First sample of the span.
        end: One past its last sample.

    Returns:
        A fraction in ``[0, 1]`` (``0.0`` for an empty span).
    """
    if end <= start:
        return 0.0
    covered = sum(max(0, min(b, end) - max(a, start)) for a, b in segments)
    return min(1.0, covered / (end - start))
