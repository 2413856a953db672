"""Decode one audio file into a fixed-length, normalised mono waveform.

Decoding is done once per file and cached (:mod:`ser_lightning.data.cache`); everything here is
deterministic so the cache key can be a hash of :class:`AudioConfig` and the file list.
Libraries: soundfile for I/O (PyAV for phone/browser containers such as .m4a and .webm), soxr for resampling (report 003 §4.1: resampling per item every
epoch cost 40 min per epoch; we do it once).

Hostile input (``tests/test_hostile_audio.py`` generates every case):

* **Handled:** any sample format soundfile reads (8-bit unsigned, 16/24/32-bit integer, 32/64-bit
  float WAV, FLAC...) is read as float32 in [-1, 1]; any channel count is averaged to mono (a
  6-channel file becomes the mean of its 6 channels); any rate (8 kHz, 96 kHz...) is resampled
  with soxr HQ; a long file (10 minutes) is decoded whole and cropped to ``duration_s``
  (``crop``), a short one padded (``pad_mode``); a WAV whose data chunk is cut short keeps the
  samples present (libsndfile clamps the frame count).
* **Rejected** with :class:`AudioDecodeError`, a one-line message starting with the path:
  unreadable or corrupt files (empty file, truncated WAV/FLAC header, FLAC cut mid-stream, a text
  file named ``.wav``); 0 samples; clips shorter than :data:`MIN_DURATION_S` (1 sample...);
  NaN or infinite samples; all-silent clips, whose peak is below :data:`SILENCE_DBFS` (an
  all-zero clip carries no emotion, so any label on it is noise; :func:`normalize` leaves zeros
  unchanged, so no NaN can arise there either).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

NORMALIZE_MODES = ("peak", "rms", "none")
PAD_MODES = ("zero", "reflect", "loop")
CROP_MODES = ("center", "start")
CLIP_LENGTHS = ("fixed", "whole")

#: Shortest usable recording in seconds (at the file's own rate): 25 ms, one speech analysis
#: frame, shorter than a typical phone; a file with fewer samples (e.g. 1 sample) is rejected, not
#: padded into a spike followed by silence.
MIN_DURATION_S = 0.025

#: A clip whose peak (after down-mixing and resampling, before normalisation) is below this level
#: in dB re full scale is all-silent and rejected. -60 dBFS is an amplitude of 0.001 (33 in 16-bit
#: PCM); ``predict.py``'s ``silence_dbfs`` defaults to the same level.
SILENCE_DBFS = -60.0


class AudioDecodeError(ValueError):
    """An audio file that cannot be used: unreadable, corrupt, empty, too short, non-finite or all-silent.

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
        clip_length: ``"fixed"`` (every clip cropped or padded to ``duration_s``, for the
            spectrogram networks) or ``"whole"`` (each clip keeps its own length up to the maximum
            ``duration_s``; it is zero-padded to ``duration_s`` for storage and its length in
            samples is kept, so batches carry lengths and pooling ignores the padding; needs
            ``pad_mode="zero"``).
    """

    sample_rate: int = 16000
    duration_s: float = 3.0
    normalize: str = "peak"
    target_rms_dbfs: float = -20.0
    trim_silence: bool = False
    trim_db: float = 40.0
    pad_mode: str = "zero"
    crop: str = "center"
    clip_length: str = "fixed"

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
        if self.clip_length not in CLIP_LENGTHS:
            raise ValueError(f"data.clip_length={self.clip_length!r} is not one of {list(CLIP_LENGTHS)}")
        if self.clip_length == "whole" and self.pad_mode != "zero":
            raise ValueError(f"data.clip_length=whole keeps each clip's own length and pads with zeros; "
                             f"data.pad_mode={self.pad_mode!r} must be zero")
        if self.trim_db <= 0:
            raise ValueError(f"data.trim_db={self.trim_db} must be positive (dB below the loudest frame)")

    @property
    def num_samples(self) -> int:
        """Clip length in samples (``round(sample_rate * duration_s)``)."""
        return int(round(self.sample_rate * self.duration_s))

    def as_dict(self) -> dict:
        """Plain dict of the settings (used in the cache key)."""
        return asdict(self)


#: File name extensions soundfile (libsndfile) reads, plus common aliases.
SOUNDFILE_EXTENSIONS = frozenset({f.lower() for f in sf.available_formats()} | {"aif", "oga", "opus"})
#: Container formats of phone and browser recordings, decoded with PyAV (FFmpeg bundled in its wheel).
CONTAINER_EXTENSIONS = frozenset({"m4a", "mp4", "aac", "webm", "mkv", "mka", "mov", "3gp", "wma", "amr", "caf"})
#: Every extension :func:`read_audio` decodes.
AUDIO_EXTENSIONS = SOUNDFILE_EXTENSIONS | CONTAINER_EXTENSIONS


def _one_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _sniff(path: str | Path) -> str | None:
    """What a file that no decoder should be given is (``"empty file, 0 bytes"``, ``"a text file, not audio"``),
    judged from its first 512 bytes; ``None`` when it may be audio (or cannot be read: the decoder says why)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return None
    if not head:
        return "empty file, 0 bytes"
    if b"\0" not in head:
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError as err:  # a multi-byte character cut at byte 512 is still text
            text = head[: err.start].decode("utf-8") if err.start > len(head) - 4 else ""
        if text and sum(c.isprintable() or c in "\t\r\n\f" for c in text) >= 0.95 * len(text):
            return "a text file, not audio"
    return None


def _decode_reason(path: str | Path, err: Exception) -> str:
    """One line saying why ``path`` could not be decoded: what the file is when it is plainly not audio
    (:func:`_sniff`), else the decoder's own reason without its repetition of the path, and without
    libsndfile's "File does not exist or is not a regular file", which it also says of an existing file it
    cannot parse (a text file named ``.mp3``)."""
    what = _sniff(path)
    if what:
        return what
    msg = _one_line(err)
    msg = re.sub(r"^Error opening .*?: ", "", msg).removeprefix("Error : ").strip()
    if "does not exist or is not a regular file" in msg and Path(path).is_file():
        ext = Path(path).suffix.lstrip(".").upper() or "audio"
        msg = f"not a valid {ext} file"
    return msg.rstrip(".") or type(err).__name__


def _read_with_pyav(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of a container (``.m4a``/AAC, ``.mp4``, ``.webm``/Opus, ...) with PyAV.

    Returns:
        ``(audio, sample_rate)``: float32 ``(frames, channels)`` in [-1, 1] at the stream's own rate (Hz).

    Raises:
        AudioDecodeError: PyAV cannot open or decode the file, or it has no audio stream.
    """
    import av

    try:
        with av.open(str(path)) as container:
            stream = next((st for st in container.streams if st.type == "audio"), None)
            if stream is None:
                raise AudioDecodeError(f"{path}: no audio stream in the file")
            resampler = av.AudioResampler(format="fltp")  # float planar, the stream's own layout and rate
            chunks, sr = [], None
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    sr = out.sample_rate
                    chunks.append(out.to_ndarray())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
    except AudioDecodeError:
        raise
    except Exception as err:  # av.error.* (InvalidDataError...), ValueError
        raise AudioDecodeError(f"{path}: cannot decode audio ({_decode_reason(path, err)})") from None
    if not chunks or sr is None:
        return np.zeros((0, 1), dtype=np.float32), int(stream.rate or 1)
    return np.ascontiguousarray(np.concatenate(chunks, axis=1).T, dtype=np.float32), int(sr)


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 ``(frames, channels)``.

    Formats: everything soundfile (libsndfile) reads (WAV, FLAC, OGG/Vorbis/Opus, MP3, AIFF, ...), and the
    containers of phone and browser recordings (:data:`CONTAINER_EXTENSIONS`: ``.m4a``/AAC, ``.mp4``,
    ``.webm``/Opus, ...) through PyAV, chosen by the file name extension.

    Args:
        path: Audio file.

    Returns:
        ``(audio, sample_rate)`` with audio shaped ``(frames, channels)``, ``sample_rate`` in Hz.

    Raises:
        AudioDecodeError: unreadable or corrupt file, 0 samples, fewer samples than
            :data:`MIN_DURATION_S` seconds, or NaN/inf samples.
    """
    if Path(path).suffix.lower().lstrip(".") in CONTAINER_EXTENSIONS:
        audio, sr = _read_with_pyav(path)
    else:
        # libmpg123 prints "Note: Illegal Audio-MPEG-Header..." to stderr before failing on a non-MP3 file
        what = _sniff(path) if Path(path).suffix.lower() == ".mp3" else None
        if what:
            raise AudioDecodeError(f"{path}: cannot decode audio ({what})")
        try:
            audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception as err:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
            raise AudioDecodeError(f"{path}: cannot decode audio ({_decode_reason(path, err)})") from None
    return check_audio(audio, int(sr), path), int(sr)


def check_audio(audio: np.ndarray, sample_rate: int, name: str | Path) -> np.ndarray:
    """Reject audio no model should see: no samples, shorter than :data:`MIN_DURATION_S`, NaN/inf samples.

    Args:
        audio: ``(frames, channels)`` samples.
        sample_rate: Rate in Hz.
        name: File or array name, first in the message.

    Returns:
        ``audio`` unchanged.

    Raises:
        AudioDecodeError: one line starting with ``name``.
    """
    if audio.shape[0] == 0:
        raise AudioDecodeError(f"{name}: empty audio (0 samples)")
    n = audio.shape[0]
    if n < MIN_DURATION_S * sample_rate:
        raise AudioDecodeError(
            f"{name}: too short ({n} sample{'s' * (n != 1)} = {1000 * n / sample_rate:.2f} ms at {sample_rate} Hz; "
            f"the minimum is {1000 * MIN_DURATION_S:g} ms)"
        )
    if not np.isfinite(audio).all():
        raise AudioDecodeError(f"{name}: audio contains NaN or infinite samples")
    return audio


def peak_dbfs(x: np.ndarray) -> float:
    """Peak level of a waveform in dB re full scale (``-inf`` for an all-zero one).

    Args:
        x: Waveform ``(time,)``, full scale = 1.0.
    """
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def check_not_silent(x: np.ndarray, path: str | Path, silence_dbfs: float = SILENCE_DBFS) -> float:
    """Reject an all-silent waveform.

    Args:
        x: Waveform ``(time,)``.
        path: File named in the message.
        silence_dbfs: Peak level in dBFS below which the clip is all-silent.

    Returns:
        The peak level in dBFS.

    Raises:
        AudioDecodeError: the peak is below ``silence_dbfs``.
    """
    peak = peak_dbfs(x)
    if peak < silence_dbfs:
        level = f"peak {peak:.1f} dBFS < {silence_dbfs:g} dBFS" if math.isfinite(peak) else "digital silence, all samples 0"
        raise AudioDecodeError(f"{path}: all-silent audio ({level}): no emotion to learn")
    return peak


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


def load_clip(path: str | Path, cfg: AudioConfig, return_length: bool = False):
    """Decode, downmix, resample, trim, normalise and fix the length of one file.

    Args:
        path: Audio file in any format soundfile reads, any sample rate, any channel count.
        cfg: Preprocessing settings.

    Steps: :func:`read_audio` → mean of the channels → soxr HQ resampling to ``cfg.sample_rate``
    → :func:`check_not_silent` → optional :func:`trim_silence` → :func:`normalize` (over the
    whole, possibly trimmed, recording) → :func:`fix_length` (crop or pad to ``duration_s``).

        return_length: Also return the clip's valid length in samples (at most
            ``cfg.num_samples``; the samples after it are padding).

    Returns:
        float32 waveform ``(cfg.num_samples,)`` at ``cfg.sample_rate`` Hz, every sample finite;
        with ``return_length``, ``(waveform, length)``.

    Raises:
        AudioDecodeError: unreadable, corrupt, empty, too short, non-finite or all-silent audio
            (one line, starting with the file path; see the module docstring).
    """
    audio, sr = read_audio(path)
    x = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    if sr != cfg.sample_rate:
        x = soxr.resample(x, sr, cfg.sample_rate, quality="HQ")
        if len(x) == 0:
            raise AudioDecodeError(f"{path}: too short to resample ({audio.shape[0]} samples at {sr} Hz)")
    check_not_silent(x, path)
    if cfg.trim_silence:
        x = trim_silence(x, cfg.sample_rate, cfg.trim_db)
    x = normalize(x, cfg.normalize, cfg.target_rms_dbfs)
    out = fix_length(np.ascontiguousarray(x, dtype=np.float32), cfg.num_samples, cfg.pad_mode, cfg.crop)
    if not np.isfinite(out).all():  # e.g. float samples near 3e38 overflowing in the channel mean
        raise AudioDecodeError(f"{path}: non-finite samples after down-mixing and resampling (values out of range)")
    return (out, min(len(x), cfg.num_samples)) if return_length else out


#: The datamodule settings that define a clip's preprocessing (stored in every checkpoint's
#: ``datamodule_hyper_parameters``; :func:`audio_config_from_hparams`).
AUDIO_KEYS = ("sample_rate", "duration_s", "normalize", "trim_silence", "pad_mode", "crop", "clip_length")


def audio_config_from_hparams(hp: dict[str, Any]) -> AudioConfig:
    """The clip preprocessing defined by datamodule settings (e.g. a checkpoint's).

    Args:
        hp: ``SERDataModule`` settings, e.g. ``datamodule_hyper_parameters`` of a checkpoint.

    Returns:
        :class:`~ser_lightning.data.audio.AudioConfig` (sample rate Hz, ``duration_s``,
        normalisation, silence trimming, padding, crop); settings the datamodule does not store
        (``target_rms_dbfs``, ``trim_db``) take their defaults.

    Raises:
        ValueError: a setting out of range (from ``AudioConfig``).
    """
    return AudioConfig(**{k: hp[k] for k in AUDIO_KEYS if k in hp})
