"""Seeded waveform transforms for robustness: the augmented views of ``augment.views``.

Each transform takes one clip ``(time,)`` float32 at ``sample_rate`` Hz and a seed, and returns the
transformed clip and what it drew (e.g. ``{"snr_db": 12.3, "color": "pink"}``). The same clip and
seed always give the same output: every random draw comes from the seed, also the draws the
libraries make from Python's :mod:`random`, NumPy's global generator and pyroomacoustics'
ray tracer, which are seeded for the call and (Python, NumPy) restored afterwards. The
transforms run on the CPU, one clip at a time, with NumPy; they are meant for augmented copies
of a clip computed once (``data.train_views``: embedded once by the frozen encoder and cached,
:mod:`ser_lightning.data.views`), not for the batched on-device augmentation of
:mod:`ser_lightning.features.augment`.

Stages (``augment.views.<name>``; each applied with its probability ``p``, drawn per view):

========== ============================================================================ ===========================
name       what                                                                         library
========== ============================================================================ ===========================
speed      speed perturbation: resampled by a factor ``f`` (duration ``/ f``, pitch      soxr
           ``* f``)
pitch      pitch shift in semitones, duration kept                                      audiomentations PitchShift
reverb     room impulse response of a random shoebox room of a drawn RT60 (seconds),    audiomentations
           convolved; length kept                                                       RoomSimulator +
                                                                                        pyroomacoustics
noise      additive white / pink / brown noise at a drawn SNR (dB)                      audiomentations
                                                                                        AddColorNoise
gain       gain in dB                                                                   audiomentations Gain
telephone  8 kHz narrow band: down to ``rate_hz`` and back, then a 300-3400 Hz          soxr + audiomentations
           band-pass                                                                    BandPassFilter
codec      lossy codec round trip in memory (MP3, Opus, AAC at a drawn bitrate),        PyAV (FFmpeg)
           length and timing kept
========== ============================================================================ ===========================

The chain applies them in that fixed order (:data:`STAGE_ORDER`): the talker (speed, pitch), the
room (reverb), the noise at the microphone, the level, then the channel (telephone band, codec).

Sources:
    * Speed perturbation 0.9-1.1: Ko, Peddinti, Povey & Khudanpur, "Audio augmentation for speech
      recognition", Interspeech 2015.
    * Simulated room impulse responses and additive noise for robustness: Ko et al., "A study on data
      augmentation of reverberant speech for robust speech recognition", ICASSP 2017; Snyder et al.,
      "X-vectors: robust DNN embeddings for speaker recognition", ICASSP 2018 (§3.3: reverberation,
      noise at 0-15 dB SNR). Image-source method: Allen & Berkley, JASA 65(4), 1979; hybrid
      image-source / ray tracing and the Sabine inversion: Scheibler et al., "Pyroomacoustics",
      ICASSP 2018.
    * Telephone band: ITU-T G.712 (300-3400 Hz pass band of a telephone channel) at the 8 kHz
      sampling of ITU-T G.711.
    * Codecs: MP3 (ISO/IEC 13818-3, LAME encoder), Opus (IETF RFC 6716, libopus), AAC-LC (ISO/IEC
      14496-3, FFmpeg's native encoder).
    * Noise colours (spectral slope 0 / -3.01 / -6.02 dB per octave): audiomentations'
      ``NOISE_COLOR_DECAYS``.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from fractions import Fraction
from typing import Any

import numpy as np

#: Order in which :class:`ViewChain` applies the stages.
STAGE_ORDER = ("speed", "pitch", "reverb", "noise", "gain", "telephone", "codec")
#: Codec name → (PyAV encoder, in-memory container whose demuxer removes the encoder's priming samples).
CODECS = {"mp3": ("libmp3lame", "mp3"), "opus": ("libopus", "ogg"), "aac": ("aac", "mp4")}
#: Noise colours of the ``noise`` stage (audiomentations' names; spectral slope in dB per octave).
NOISE_COLORS = ("white", "pink", "brown", "blue", "violet")


def stage_seed(seed: int | str, *parts: object) -> int:
    """A 63-bit seed derived from ``seed`` and ``parts`` (SHA-256), e.g. a view's seed and a stage name.

    Args:
        seed: The base seed (an int, or a string such as a clip's identity).
        parts: Further components (view index, stage name, ...).

    Returns:
        An int in ``[0, 2**63)``; the same arguments always give the same value on any machine.
    """
    text = "\x1f".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


@contextmanager
def seeded_globals(seed: int, pyroomacoustics: bool = False) -> Iterator[np.random.Generator]:
    """Seed Python's :mod:`random` and NumPy's global generator for the block, then restore them.

    audiomentations draws its parameters from :mod:`random` and its noise from ``np.random``; seeding
    both makes its transforms reproducible without changing the caller's random streams.

    Args:
        seed: Non-negative int.
        pyroomacoustics: Also seed pyroomacoustics' generators (its ray tracer's C++ generator cannot be
            saved and restored; it is left seeded).

    Yields:
        A :class:`numpy.random.Generator` of the same seed, for the caller's own draws.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if pyroomacoustics:
        import pyroomacoustics as pra

        pra.random.seed(numpy=seed % 2**32, libroom=seed % 2**32)
    try:
        yield np.random.default_rng(seed)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def _range(value: Any, key: str, unit: str, low: float = -math.inf, high: float = math.inf) -> tuple[float, float]:
    """``(low, high)`` from a ``[low, high]`` setting (a single number gives ``(x, x)``), checked against bounds.

    Raises:
        ValueError: naming ``key``: not two ordered finite numbers within ``[low, high]``.
    """
    values = [value, value] if isinstance(value, (int, float)) and not isinstance(value, bool) else list(value or [])
    if len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        raise ValueError(f"{key}={value!r} must be a [low, high] pair in {unit}")
    a, b = float(values[0]), float(values[1])
    if not (math.isfinite(a) and math.isfinite(b)) or a > b or a < low or b > high:
        raise ValueError(f"{key}={value!r} must be an ordered pair of finite numbers in [{low}, {high}] {unit}")
    return a, b


def _check_wave(wave: np.ndarray) -> np.ndarray:
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"expected one clip of shape (time,), got {wave.shape}")
    return np.ascontiguousarray(wave)


class Speed:
    """Speed perturbation by resampling: the clip played ``factor`` times faster (Ko et al. 2015).

    The clip is resampled with soxr (HQ) as if it had been recorded at ``sample_rate * factor`` Hz:
    ``round(time / factor)`` samples come back, tempo and pitch both scaled by ``factor`` (as
    ``sox speed``). The factor is drawn uniformly from ``factor``.

    Args:
        factor: ``(low, high)`` speed factor, each > 0 (e.g. ``(0.9, 1.1)``).

    Raises:
        ValueError: a bad range (``augment.views.speed.factor``).
    """

    name = "speed"

    def __init__(self, factor: Sequence[float] = (0.9, 1.1)) -> None:
        self.factor = _range(factor, "augment.views.speed.factor", "(a speed factor > 0)", low=0.05, high=20.0)

    def __call__(self, wave: np.ndarray, sample_rate: int, seed: int) -> tuple[np.ndarray, dict]:
        """``(time,)`` → ``(about time / factor,)``; returns ``{"factor": f}``."""
        import soxr

        f = float(np.random.default_rng(seed).uniform(*self.factor))
        out = soxr.resample(_check_wave(wave), sample_rate * f, sample_rate, quality="HQ")
        return np.asarray(out, dtype=np.float32), {"factor": f}


class Pitch:
    """Pitch shift by a drawn number of semitones, duration kept (audiomentations ``PitchShift``,
    Signalsmith Stretch).

    Args:
        semitones: ``(low, high)`` shift in semitones (within ±24); a frequency ``f`` becomes
            ``f * 2 ** (semitones / 12)``.

    Raises:
        ValueError: a bad range (``augment.views.pitch.semitones``).
    """

    name = "pitch"

    def __init__(self, semitones: Sequence[float] = (-2.0, 2.0)) -> None:
        self.semitones = _range(semitones, "augment.views.pitch.semitones", "semitones", low=-24.0, high=24.0)

    def __call__(self, wave: np.ndarray, sample_rate: int, seed: int) -> tuple[np.ndarray, dict]:
        """``(time,)`` → ``(time,)``; returns ``{"semitones": s}``."""
        from audiomentations import PitchShift

        with seeded_globals(seed) as rng:
            s = float(rng.uniform(*self.semitones))
            out = PitchShift(min_semitones=s, max_semitones=s, p=1.0)(_check_wave(wave), sample_rate)
        return np.asarray(out, dtype=np.float32), {"semitones": s}


class Reverb:
    """Reverberation by the impulse response of a random shoebox room with a drawn RT60.

    audiomentations' ``RoomSimulator`` in its ``rt60`` mode: a room of random size (``room_x_m`` ×
    ``room_y_m`` × ``room_z_m``), the surfaces' absorption set by inverting Sabine's formula for the
    drawn RT60 (``pyroomacoustics.inverse_sabine``), a source at a random position and a microphone
    ``mic_distance_m`` from it in a random direction; the impulse response is simulated by
    pyroomacoustics (image sources up to order 3 for the early reflections, ray tracing with
    ``rays`` rays for the tail; air absorption on) and convolved with the clip (scipy). The output
    keeps the clip's length (the tail past its end is cut), and is delayed by the direct path
    (distance / 343 m/s) plus pyroomacoustics' fractional-delay filter (40 samples).

    Args:
        rt60_s: ``(low, high)`` target reverberation time RT60 in seconds.
        mic_distance_m: ``(low, high)`` source-microphone distance in metres.
        room_x_m, room_y_m, room_z_m: ``(low, high)`` room dimensions in metres.
        rays: Rays of the ray tracer (more: a smoother tail, slower).

    Raises:
        ValueError: a bad range (``augment.views.reverb.<key>``); in a call, a room too large for the
            drawn RT60 (pyroomacoustics' Sabine inversion fails).
    """

    name = "reverb"

    def __init__(self, rt60_s: Sequence[float] = (0.2, 0.8), mic_distance_m: Sequence[float] = (0.3, 1.5),
                 room_x_m: Sequence[float] = (3.6, 5.6), room_y_m: Sequence[float] = (3.6, 3.9),
                 room_z_m: Sequence[float] = (2.4, 3.0), rays: int = 2000) -> None:
        key = "augment.views.reverb"
        self.rt60_s = _range(rt60_s, f"{key}.rt60_s", "seconds", low=0.05, high=5.0)
        self.mic_distance_m = _range(mic_distance_m, f"{key}.mic_distance_m", "metres", low=0.01, high=50.0)
        self.room_m = tuple(_range(v, f"{key}.room_{a}_m", "metres", low=1.0, high=100.0)
                            for a, v in (("x", room_x_m), ("y", room_y_m), ("z", room_z_m)))
        if isinstance(rays, bool) or not isinstance(rays, int) or rays < 100:
            raise ValueError(f"{key}.rays={rays!r} must be a whole number of rays, at least 100")
        self.rays = rays

    def __call__(self, wave: np.ndarray, sample_rate: int, seed: int) -> tuple[np.ndarray, dict]:
        """``(time,)`` → ``(time,)``; returns ``{"rt60_s": target, "room_m": [x, y, z], "mic_distance_m": d}``."""
        from audiomentations import RoomSimulator

        with seeded_globals(seed, pyroomacoustics=True) as rng:
            rt60 = float(rng.uniform(*self.rt60_s))
            (x0, x1), (y0, y1), (z0, z1) = self.room_m
            sim = RoomSimulator(min_size_x=x0, max_size_x=x1, min_size_y=y0, max_size_y=y1, min_size_z=z0,
                                max_size_z=z1, min_target_rt60=rt60, max_target_rt60=rt60,
                                min_mic_distance=self.mic_distance_m[0], max_mic_distance=self.mic_distance_m[1],
                                calculation_mode="rt60", use_ray_tracing=True, max_order=3,
                                leave_length_unchanged=True, p=1.0,
                                ray_tracing_options={"receiver_radius": 0.5, "n_rays": self.rays, "energy_thres": 1e-5})
            try:
                out = sim(_check_wave(wave), sample_rate)
            except ValueError as err:
                raise ValueError(f"augment.views.reverb: RT60 {rt60:.2f} s in a room of "
                                 f"{[round(sim.parameters.get(f'size_{a}', 0), 2) for a in 'xyz']} m: {err}") from None
        params = {"rt60_s": rt60, "room_m": [float(sim.parameters[f"size_{a}"]) for a in "xyz"],
                  "mic_distance_m": float(sim.parameters["mic_radius"])}
        return np.asarray(out, dtype=np.float32), params


class Noise:
    """Additive coloured noise at a drawn SNR (audiomentations ``AddColorNoise``).

    The noise has a spectral slope of 0 (white), -3.01 (pink), -6.02 (brown), +3.01 (blue) or
    +6.02 (violet) dB per octave, its colour drawn from ``colors``, and is scaled so that
    ``10 * log10(P_clip / P_noise) = snr_db`` over the whole clip (powers: mean squares over time).
    A silent clip is returned unchanged.

    Args:
        snr_db: ``(low, high)`` signal-to-noise ratio in dB.
        colors: Noise colours to draw from (:data:`NOISE_COLORS`).

    Raises:
        ValueError: a bad range or an unknown colour (``augment.views.noise.<key>``).
    """

    name = "noise"

    def __init__(self, snr_db: Sequence[float] = (5.0, 30.0), colors: Sequence[str] = ("white", "pink", "brown")) -> None:
        self.snr_db = _range(snr_db, "augment.views.noise.snr_db", "dB", low=-30.0, high=100.0)
        colors = [colors] if isinstance(colors, str) else list(colors or [])
        bad = [c for c in colors if c not in NOISE_COLORS]
        if not colors or bad:
            raise ValueError(f"augment.views.noise.colors={colors!r} must be a non-empty list of {list(NOISE_COLORS)}")
        self.colors = tuple(colors)

    def __call__(self, wave: np.ndarray, sample_rate: int, seed: int) -> tuple[np.ndarray, dict]:
        """``(time,)`` → ``(time,)``; returns ``{"snr_db": s, "color": c}``."""
        from audiomentations import AddColorNoise
        from audiomentations.augmentations.add_color_noise import NOISE_COLOR_DECAYS

        with seeded_globals(seed) as rng:
            snr = float(rng.uniform(*self.snr_db))
            color = self.colors[int(rng.integers(len(self.colors)))]
            decay = NOISE_COLOR_DECAYS[color]
            out = AddColorNoise(min_snr_db=snr, max_snr_db=snr, min_f_decay=decay, max_f_decay=decay,
                                p_apply_a_weighting=0.0, p=1.0)(_check_wave(wave), sample_rate)
        return np.asarray(out, dtype=np.float32), {"snr_db": snr, "color": color}


class Gain:
    """A gain drawn in dB: the clip times ``10 ** (gain_db / 20)`` (audiomentations ``Gain``; no clipping).

    Args:
        gain_db: ``(low, high)`` gain in dB.

    Raises:
        ValueError: a bad range (``augment.views.gain.gain_db``).
    """

    name = "gain"

    def __init__(self, gain_db: Sequence[float] = (-6.0, 6.0)) -> None:
        self.gain_db = _range(gain_db, "augment.views.gain.gain_db", "dB", low=-60.0, high=60.0)

    def __call__(self, wave: np.ndarray, sample_rate: int, seed: int) -> tuple[np.ndarray, dict]:
        """``(time,)`` → ``(time,)``; returns ``{"gain_db": g}``."""
        from audiomentations import Gain as AmGain

        with seeded_globals(seed) as rng:
            g = float(rng.uniform(*self.gain_db))
            out = AmGain(min_gain_db=g, max_gain_db=g, p=1.0)(_check_wave(wave), sample_rate)
        return np.asarray(out, dtype=np.float32), {"gain_db": g}


class Telephone:
    """A narrow-band telephone channel: resampled to ``rate_hz`` and back, then band-passed.

    soxr (HQ) resamples the clip to ``rate_hz`` (8000: nothing above 4 kHz survives its
    anti-aliasing filter) and back to ``sample_rate``; a Butterworth band-pass of ``low_hz`` to
    ``high_hz`` with ``rolloff_db`` dB per octave on each side (audiomentations ``BandPassFilter``,
    causal) then removes what a G.712 channel does not carry. Length kept.

    Args:
        rate_hz: The channel's sample rate in Hz (G.711: 8000).
        low_hz, high_hz: Pass band in Hz (G.712: 300-3400).
        rolloff_db: Filter slope in dB per octave (a multiple of 6).

    Raises:
        ValueError: a bad setting (``augment.views.telephone.<key>``).
    """

    name = "telephone"

    def __init__(self, rate_hz: int = 8000, low_hz: float = 300.0, high_hz: float = 3400.0, rolloff_db: int = 24) -> None:
        key = "augment.views.telephone"
        if isinstance(rate_hz, bool) or not isinstance(rate_hz, int) or rate_hz < 1000:
            raise ValueError(f"{key}.rate_hz={rate_hz!r} must be a whole number of Hz, at least 1000")
        low, high = _range([low_hz, high_hz], f"{key}.low_hz/high_hz", "Hz", low=1.0, high=rate_hz / 2)
        if not low < high:
            raise ValueError(f"{key}.low_hz={low_hz} must be below high_hz={high_hz}")
        if isinstance(rolloff_db, bool) or not isinstance(rolloff_db, int) or rolloff_db < 6 or rolloff_db % 6:
            raise ValueError(f"{key}.rolloff_db={rolloff_db!r} must be a multiple of 6 dB per octave")
        self.rate_hz, self.low_hz, self.high_hz, self.rolloff_db = rate_hz, low, high, rolloff_db

    def __call__(self, wave: np.ndarray, sample_rate: int, seed: int) -> tuple[np.ndarray, dict]:
        """``(time,)`` → ``(time,)``; returns ``{"rate_hz": r}`` (nothing is drawn)."""
        import soxr
        from audiomentations import BandPassFilter

        x = _check_wave(wave)
        narrow = soxr.resample(x, sample_rate, self.rate_hz, quality="HQ")
        back = np.asarray(soxr.resample(narrow, self.rate_hz, sample_rate, quality="HQ"), dtype=np.float32)
        back = np.pad(back, (0, max(0, len(x) - len(back))))[: len(x)]
        centre = (self.low_hz + self.high_hz) / 2
        fraction = (self.high_hz - self.low_hz) / centre
        band = BandPassFilter(min_center_freq=centre, max_center_freq=centre, min_bandwidth_fraction=fraction,
                              max_bandwidth_fraction=fraction, min_rolloff=self.rolloff_db,
                              max_rolloff=self.rolloff_db, zero_phase=False, p=1.0)
        with seeded_globals(seed):  # nothing random is drawn, but the filter's call draws its (fixed) parameters
            out = band(np.ascontiguousarray(back), sample_rate)
        return np.asarray(out, dtype=np.float32), {"rate_hz": self.rate_hz}


class Codec:
    """A lossy codec round trip in memory through PyAV (FFmpeg): encode, mux, demux, decode.

    The codec is drawn from ``codecs`` and the bitrate from ``bitrate_kbps``; MP3 is written to an
    MP3 stream (LAME, with its delay header), Opus to Ogg (its pre-skip), AAC to MP4 (its edit
    list), so that the demuxer removes the encoder's priming samples and the decoded clip lines up
    with the input; it is then cut (the last frame's padding) or zero-padded to the input's length.
    The encoder sees the clip at ``sample_rate`` (MP3 and AAC) or as libopus takes it (it supports
    8, 12, 16, 24 and 48 kHz); the decoded audio is resampled back to ``sample_rate`` by FFmpeg's
    resampler where needed.

    Args:
        codecs: Names of :data:`CODECS` to draw from.
        bitrate_kbps: Bitrates in kbit/s to draw from (MP3 at 16 kHz: 8-160 in MPEG-2's steps).

    Raises:
        ValueError: an unknown codec or a bad bitrate (``augment.views.codec.<key>``); in a call,
            a decoded stream much shorter than the input.
    """

    name = "codec"

    def __init__(self, codecs: Sequence[str] = ("mp3", "opus", "aac"),
                 bitrate_kbps: Sequence[int] = (16, 24, 32, 48, 64)) -> None:
        codecs = [codecs] if isinstance(codecs, str) else list(codecs or [])
        if not codecs or any(c not in CODECS for c in codecs):
            raise ValueError(f"augment.views.codec.codecs={codecs!r} must be a non-empty list of {list(CODECS)}")
        rates = [bitrate_kbps] if isinstance(bitrate_kbps, (int, float)) else list(bitrate_kbps or [])
        if not rates or any(isinstance(b, bool) or not isinstance(b, (int, float)) or not 6 <= b <= 320 for b in rates):
            raise ValueError(f"augment.views.codec.bitrate_kbps={bitrate_kbps!r} must be a non-empty list of bitrates "
                             "in kbit/s between 6 and 320")
        self.codecs, self.bitrate_kbps = tuple(codecs), tuple(float(b) for b in rates)

    def __call__(self, wave: np.ndarray, sample_rate: int, seed: int) -> tuple[np.ndarray, dict]:
        """``(time,)`` → ``(time,)``; returns ``{"codec": name, "bitrate_kbps": b}``."""
        rng = np.random.default_rng(seed)
        codec = self.codecs[int(rng.integers(len(self.codecs)))]
        kbps = self.bitrate_kbps[int(rng.integers(len(self.bitrate_kbps)))]
        out = codec_round_trip(_check_wave(wave), sample_rate, codec, int(kbps * 1000))
        return out, {"codec": codec, "bitrate_kbps": kbps}


def codec_round_trip(wave: np.ndarray, sample_rate: int, codec: str, bitrate: int) -> np.ndarray:
    """Encode ``wave`` with ``codec`` at ``bitrate`` bit/s in memory and decode it again (see :class:`Codec`).

    Args:
        wave: ``(time,)`` float32.
        sample_rate: Its rate in Hz.
        codec: A name of :data:`CODECS`.
        bitrate: Target bitrate in bit/s.

    Returns:
        ``(time,)`` float32, aligned with ``wave``.

    Raises:
        ValueError: an unknown codec, or a decoded stream more than one codec frame shorter than the input.
    """
    import av

    if codec not in CODECS:
        raise ValueError(f"codec {codec!r} is not one of {list(CODECS)}")
    encoder, container = CODECS[codec]
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream(encoder, rate=sample_rate)
        stream.bit_rate = int(bitrate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave, dtype=np.float32)[None, :], format="fltp",
                                           layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = sample_rate, 0, Fraction(1, sample_rate)
        # the encoder's own sample format and frame size (FFmpeg's resampler, also its rate for libopus)
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=stream.rate,
                                      frame_size=stream.codec_context.frame_size or None)
        for piece in [*resampler.resample(frame), *resampler.resample(None), None]:
            for packet in stream.encode(piece):
                out.mux(packet)
    buf.seek(0)
    chunks = []
    with av.open(buf, "r") as inp:
        back = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        for decoded in inp.decode(audio=0):
            chunks.extend(f.to_ndarray().reshape(-1) for f in back.resample(decoded))
        chunks.extend(f.to_ndarray().reshape(-1) for f in back.resample(None))
    y = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, dtype=np.float32)
    if len(y) < len(wave) - 2048:
        raise ValueError(f"{codec} round trip returned {len(y)} samples for {len(wave)}")
    return np.pad(y, (0, max(0, len(wave) - len(y))))[: len(wave)]


#: Stage name → its class (settings: the class's keyword arguments plus ``p``).
STAGES: dict[str, Callable[..., Any]] = {"speed": Speed, "pitch": Pitch, "reverb": Reverb, "noise": Noise,
                                         "gain": Gain, "telephone": Telephone, "codec": Codec}


class ViewChain:
    """The stages of ``augment.views``, each applied with its probability, in :data:`STAGE_ORDER`.

    A view is made from a clip and a seed: each stage decides whether it applies (probability ``p``)
    and draws its parameters from its own seed, derived from the view's seed and the stage's name,
    so turning one stage on or off does not change what the others draw.

    Args:
        stages: ``(name, transform, p)`` triples in application order.

    Call:
        ``chain(wave (time,), sample_rate, seed)`` → ``(view (time',) float32, [{"stage": name, ...drawn}, ...])``
        (``time'`` differs from ``time`` only after ``speed``).
    """

    def __init__(self, stages: Sequence[tuple[str, Any, float]] = ()) -> None:
        self.stages = list(stages)

    def __len__(self) -> int:
        return len(self.stages)

    def __call__(self, wave: np.ndarray, sample_rate: int, seed: int) -> tuple[np.ndarray, list[dict]]:
        x = _check_wave(wave)
        applied = []
        for name, transform, p in self.stages:
            s = stage_seed(seed, name)
            if np.random.default_rng(stage_seed(s, "apply")).random() >= p:
                continue
            x, params = transform(x, sample_rate, s)
            if not np.isfinite(x).all():
                raise ValueError(f"augment.views.{name} produced non-finite samples (seed {seed})")
            applied.append({"stage": name, **params})
        return x, applied

    def __repr__(self) -> str:
        return "ViewChain(" + ", ".join(f"{n}(p={p})" for n, _, p in self.stages) + ")"


#: Keys of ``augment.views`` that are not stages.
VIEW_OPTIONS = ("seed",)


def build_view_chain(settings: Mapping[str, Any] | None) -> ViewChain:
    """Build the :class:`ViewChain` of an ``augment.views`` block.

    Args:
        settings: ``{"seed": int, "<stage>": {"p": probability, <the stage's keyword arguments>}, ...}``;
            a stage that is absent, ``null`` or has ``p: 0`` is left out (its settings are still checked).
            ``None`` or ``{}``: the empty chain.

    Returns:
        The chain (possibly empty).

    Raises:
        ValueError: naming the ``augment.views.<stage>.<key>``: an unknown stage or key, a probability
            outside ``[0, 1]``, or a bad range.
    """
    import inspect

    settings = dict(settings or {})
    unknown = [k for k in settings if k not in STAGES and k not in VIEW_OPTIONS]
    if unknown:
        raise ValueError(f"augment.views.{unknown[0]} is not a view stage; stages: {list(STAGE_ORDER)}, "
                         f"options: {list(VIEW_OPTIONS)}")
    stages = []
    for name in STAGE_ORDER:
        block = settings.get(name)
        if block is None:
            continue
        if not isinstance(block, Mapping):
            raise ValueError(f"augment.views.{name}={block!r} must be a block of settings with a probability p")
        block = dict(block)
        p = block.pop("p", None)
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"augment.views.{name}.p={p!r} must be a probability in [0, 1]")
        valid = [k for k in inspect.signature(STAGES[name]).parameters]
        bad = [k for k in block if k not in valid]
        if bad:
            raise ValueError(f"augment.views.{name}.{bad[0]} is not a setting of the {name} stage; "
                             f"valid settings: {['p', *valid]}")
        transform = STAGES[name](**block)
        if p > 0:
            stages.append((name, transform, float(p)))
    return ViewChain(stages)
