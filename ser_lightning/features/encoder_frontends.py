"""Input frontends of the pretrained speech encoders: variable-length waveforms → log-mel frames.

Each frontend takes a zero-padded batch of 16 kHz waveforms ``(batch, time)`` with the valid
sample counts ``lengths`` ``(batch,)`` and returns the features with their valid frame counts.
Every clip is treated as *followed by silence*: samples beyond a clip's length are zeroed and
enough zeros are appended that no STFT frame of a clip sees another clip's padding or a
reflection of its own end. So a clip's features do not depend on how long the other clips in its
batch are (tests/test_encoders.py checks this).

* :class:`ByolLogMel` — BYOL-A's input (Niizumi et al., "BYOL for Audio", IJCNN 2021, §4.1) as
  used by SERAB (Scheidwasser-Clow et al., ICASSP 2022): mel power spectrogram (n_fft 1024,
  window 400, hop 160, 64 HTK mels, 60–7800 Hz), natural log of (power + float32 eps),
  standardised with corpus statistics: fixed ones (SERAB's RAVDESS values) or, per clip, those of
  the clip's own corpus (``norm`` argument; :meth:`ByolLogMel.frame_moments` gives the sums they
  are computed from).
* :class:`WhisperLogMel` — Whisper's input (Radford et al., "Robust Speech Recognition via
  Large-Scale Weak Supervision", 2022, §2.2): 25 ms Hann window (n_fft 400), hop 160, 80 (or 128)
  Slaney-scale, Slaney-normalised mel filters, ``log10`` of the power clamped at 1e-10, dynamic
  range limited to 8 (i.e. 80 dB) below the clip's maximum, then ``(x + 4) / 4``. Frames per clip:
  ``samples // 160`` (the STFT's last frame is dropped, as Whisper does), either on the clip's own
  length or on Whisper's native 30 s window (``pad_to_30s=True``: 3000 frames).

Both run in float32 with autocast disabled (a ``log`` of a float16 power spectrum loses most of
its dynamic range).

Export (``shape_polymorphic = True``, set on an exported copy by
:func:`ser_lightning.inference.export.make_exportable`): the frame count is read from the input's
*shape* (``time // 160`` for Whisper, ``time // hop + 1`` for BYOL) instead of from the longest
clip's *length*, and the checks of the lengths' values are left out (an exported graph cannot raise
them; lengths below 1 are read as 1). Frames beyond a clip's length are masked exactly as in eager
mode, so when the batch's longest clip fills the input (as it does for one clip, or for a batch
padded to its longest clip) the features are the same; extra padding only adds masked frames. The
exporters then see no Python integer taken from a tensor's values, so the time axis stays dynamic.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

#: Whisper's fixed window: 30 s at 16 kHz, 3000 mel frames.
WHISPER_SAMPLE_RATE = 16000
WHISPER_CHUNK_SAMPLES = 30 * WHISPER_SAMPLE_RATE
WHISPER_HOP = 160
WHISPER_N_FFT = 400


def _check_batch(wave: torch.Tensor, lengths: torch.Tensor | None, name: str,
                 check_values: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate ``(batch, time)`` (or ``(batch, 1, time)``) + lengths; zero the padding.

    Args:
        wave: ``(batch, time)`` or ``(batch, 1, time)`` waveforms.
        lengths: ``(batch,)`` valid samples per clip; ``None``: every clip fills ``time``.
        name: The module named in messages.
        check_values: Check that the lengths lie in ``1..time``. ``False`` (export: an exported graph
            cannot raise) reads lengths below 1 as 1 instead; the shapes are checked either way.

    Raises:
        ValueError: wrong rank, lengths of the wrong shape, or (``check_values``) lengths outside ``1..time``.
    """
    if wave.dim() == 3 and wave.shape[1] == 1:
        wave = wave[:, 0]
    if wave.dim() != 2:
        raise ValueError(f"{name}: expected a waveform batch (batch, time), got shape {tuple(wave.shape)}")
    if lengths is None:
        lengths = torch.full((wave.shape[0],), wave.shape[1], dtype=torch.long, device=wave.device)
    lengths = lengths.to(device=wave.device, dtype=torch.long)
    if lengths.shape != (wave.shape[0],):
        raise ValueError(f"{name}: lengths must have shape ({wave.shape[0]},), got {tuple(lengths.shape)}")
    if not check_values:
        lengths = lengths.clamp(min=1)
    elif bool((lengths < 1).any()) or bool((lengths > wave.shape[1]).any()):
        raise ValueError(f"{name}: lengths must lie in 1..{wave.shape[1]} samples, got "
                         f"{lengths.min().item()}..{lengths.max().item()}")
    valid = torch.arange(wave.shape[1], device=wave.device)[None, :] < lengths[:, None]
    return wave.float() * valid, lengths


def _first_frames(stft: torch.Tensor, n: int) -> torch.Tensor:
    """The first ``n`` frames (last axis) of an STFT that has at least ``n``.

    ``torch._check`` tells the exporter's shape reasoning that ``n`` (an expression of the input's
    length) fits, which it cannot prove through the floor divisions itself; eagerly it is a no-op
    (and ``torch.jit.trace``, whose sizes are tensors, skips it). Plain integers are checked in Python:
    ``torch._check`` imports ``torch.fx``'s symbolic shapes (sympy), half a second the prediction path has no use for.
    """
    if isinstance(n, int) and isinstance(stft.shape[-1], int):
        if n > stft.shape[-1]:
            raise RuntimeError(f"_first_frames: {n} frames asked of an STFT with {stft.shape[-1]}")
    elif not torch.jit.is_tracing():
        torch._check(n <= stft.shape[-1])
    return stft[..., :n]


def dft_kernel(n_fft: int, window: torch.Tensor) -> torch.Tensor:
    """The windowed DFT as a ``conv1d`` kernel, computed in float64 and stored as float32.

    Row ``k`` (``0 … n_fft // 2``) holds ``w[j] · cos(2π k (o + j) / n_fft)`` and row ``n_fft // 2 + 1 + k``
    ``w[j] · sin(…)``, ``j < win_length``, with ``o = (n_fft − win_length) // 2`` the offset at which
    ``torch.stft`` centres a shorter window in its ``n_fft`` frame.

    Args:
        n_fft: FFT size in samples.
        window: ``(win_length,)`` analysis window, ``win_length <= n_fft``.

    Returns:
        ``(2 · (n_fft // 2 + 1), 1, win_length)`` float32.
    """
    win = window.detach().to(torch.float64)
    offset = (n_fft - win.shape[0]) // 2
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    j = torch.arange(win.shape[0], dtype=torch.float64)[None, :]
    phase = 2 * torch.pi * ((k * (offset + j)) % n_fft) / n_fft  # reduced mod n_fft: exact in float64
    return torch.cat([torch.cos(phase) * win, torch.sin(phase) * win]).float()[:, None, :]


def stft_power(wave: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor, n: int,
               kernel: torch.Tensor | None = None) -> torch.Tensor:
    """Power spectrogram ``|STFT|²`` of ``torch.stft(center=True, pad_mode="reflect")``, first ``n`` frames.

    Args:
        wave: ``(batch, time)`` float32.
        n_fft: FFT size in samples.
        hop_length: Hop in samples.
        window: ``(win_length,)`` analysis window.
        n: Frames to keep (at most the STFT's ``time // hop_length + 1``).
        kernel: ``None``: ``torch.stft`` (eager mode: the numbers the models were trained and cached on).
            :func:`dft_kernel`'s output: the same transform as a strided ``conv1d`` over the reflect-padded
            input (export: ONNX Runtime's ``STFT`` operator lost up to 8e-3 in Whisper's log-mel on quiet
            bins of a 30 s clip, against 2e-5 for torch's float32 FFT, both to a float64 reference; the
            convolution stays as close as torch's).

    Returns:
        ``(batch, n_fft // 2 + 1, n)`` float32.
    """
    if kernel is None:
        stft = torch.stft(wave, n_fft, hop_length, win_length=window.shape[0], window=window, center=True,
                          pad_mode="reflect", return_complex=True)
        return _first_frames(stft, n).abs() ** 2
    offset = (n_fft - kernel.shape[-1]) // 2
    x = nn.functional.pad(wave[:, None, :], (n_fft // 2, n_fft // 2), mode="reflect")[..., offset:]
    spec = _first_frames(nn.functional.conv1d(x, kernel, stride=hop_length), n)  # (batch, 2 * n_freqs, frames)
    half = kernel.shape[0] // 2
    return spec[:, :half] ** 2 + spec[:, half:] ** 2


def frame_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """Boolean mask ``(batch, frames)``, True on the first ``lengths[i]`` frames of row ``i``."""
    return torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]


class ByolLogMel(nn.Module):
    """BYOL-A / BYOL-S log-mel frontend, standardised (BYOL-A §4.1; SERAB ``settings.py``).

    Args:
        sample_rate: Input rate in Hz (the pretrained weights assume 16000).
        n_fft: FFT size in samples.
        win_length: Window length in samples.
        hop_length: Hop in samples.
        n_mels: Mel bands (the pretrained network's ``fc`` expects 64).
        f_min: Lowest mel frequency in Hz.
        f_max: Highest mel frequency in Hz.
        norm_mean: Mean of the log-mel values used for standardisation when no per-clip
            statistics are given (SERAB's RAVDESS value by default; ``settings.py`` of SERAB lists
            other corpora).
        norm_std: Standard deviation for standardisation (same default rule).

    Shapes:
        wave ``(batch, time)`` + lengths ``(batch,)`` (+ optional per-clip statistics ``norm``
        ``(batch, 2)``: mean, sd) → features ``(batch, 1, n_mels, frames)`` with
        ``frames = time // hop_length + 1`` and frame lengths ``lengths // hop_length + 1``
        (``(batch,)``). Frames beyond a clip's length are set to 0 (the standardised mean).

    Raises:
        ValueError: a non-positive setting, ``f_max`` not above ``f_min``, ``norm_std <= 0``, a
            malformed batch, or ``norm`` of the wrong shape or with a non-positive sd.
    """

    #: The encoder can standardise each clip with its own corpus's statistics (``norm``).
    takes_norm_stats = True
    #: Frames from the input's shape, no value checks (export; module docstring).
    shape_polymorphic = False

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        win_length: int = 400,
        hop_length: int = 160,
        n_mels: int = 64,
        f_min: float = 60.0,
        f_max: float = 7800.0,
        norm_mean: float = -10.32,
        norm_std: float = 5.00,
    ) -> None:
        super().__init__()
        for key, value in dict(sample_rate=sample_rate, n_fft=n_fft, win_length=win_length,
                               hop_length=hop_length, n_mels=n_mels, norm_std=norm_std).items():
            if value <= 0:
                raise ValueError(f"ByolLogMel: {key}={value} must be positive")
        if not 0 <= f_min < f_max <= sample_rate / 2:
            raise ValueError(f"ByolLogMel: need 0 <= f_min < f_max <= sample_rate/2, got {f_min}, {f_max}")
        self.n_fft, self.win_length, self.hop_length = n_fft, win_length, hop_length
        self.norm_mean, self.norm_std = float(norm_mean), float(norm_std)
        # torchaudio's MelSpectrogram defaults (HTK mels, no filter normalisation); buffers are not
        # persistent so the encoder's state dict holds only the pretrained network's tensors.
        fb = torchaudio.functional.melscale_fbanks(
            n_freqs=n_fft // 2 + 1, f_min=f_min, f_max=f_max, n_mels=n_mels, sample_rate=sample_rate,
            norm=None, mel_scale="htk",
        )  # (n_freqs, n_mels)
        self.register_buffer("filters", fb.T.contiguous(), persistent=False)  # (n_mels, n_freqs)
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)
        self.register_buffer("dft_kernel", dft_kernel(n_fft, self.window), persistent=False)  # export only

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid frame count per clip ``(batch,)`` from sample counts ``(batch,)``."""
        return lengths // self.hop_length + 1

    def log_mel(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Natural-log mel power before standardisation ``(batch, n_mels, frames)`` and frame lengths ``(batch,)``.

        Frames beyond a clip's length hold the log of silence (mask them with :func:`frame_mask`).

        Raises:
            ValueError: a malformed batch.
        """
        wave, lengths = _check_batch(wave, lengths, "ByolLogMel", check_values=not self.shape_polymorphic)
        with torch.autocast(device_type=wave.device.type, enabled=False):
            n_frames = self.frame_lengths(lengths)
            # frames of the batch: its longest clip's, or (export) the input's, so no Python int comes from values
            n = wave.shape[1] // self.hop_length + 1 if self.shape_polymorphic else int(n_frames.max())
            # n_fft // 2 zeros after the longest clip: every clip is followed by silence.
            wave = nn.functional.pad(wave, (0, self.n_fft // 2))
            power = stft_power(wave, self.n_fft, self.hop_length, self.window, n,
                               self.dft_kernel if self.shape_polymorphic else None)
            mel = self.filters @ power  # (batch, n_mels, frames)
            return (mel + torch.finfo(torch.float32).eps).log(), n_frames

    @torch.no_grad()
    def frame_moments(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Per-clip sums over the valid frames of :meth:`log_mel`, for corpus statistics.

        Returns:
            ``(batch, 4)`` float64: valid frames, values counted (valid frames × ``n_mels``),
            their sum and the sum of their squares.
        """
        x, n_frames = self.log_mel(wave, lengths)
        valid = frame_mask(n_frames, x.shape[-1])[:, None, :]  # (batch, 1, frames)
        x = x.double() * valid
        frames = n_frames.double()
        return torch.stack([frames, frames * x.shape[1], x.sum(dim=(1, 2)), (x * x).sum(dim=(1, 2))], dim=1)

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None,
                norm: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised log-mel ``(batch, 1, n_mels, frames)`` and frame lengths ``(batch,)``.

        Args:
            wave: ``(batch, time)`` waveforms. lengths: ``(batch,)`` valid samples.
            norm: ``(batch, 2)`` mean and sd per clip (its corpus's statistics); ``None``: the
                fixed ``norm_mean`` / ``norm_std`` for every clip.
        """
        x, n_frames = self.log_mel(wave, lengths)
        with torch.autocast(device_type=x.device.type, enabled=False):
            if norm is None:
                x = (x - self.norm_mean) / self.norm_std
            else:
                if norm.shape != (x.shape[0], 2):
                    raise ValueError(f"ByolLogMel: norm must have shape ({x.shape[0]}, 2) (mean, sd per clip), "
                                     f"got {tuple(norm.shape)}")
                if not self.shape_polymorphic and bool((norm[:, 1] <= 0).any()):
                    raise ValueError("ByolLogMel: every clip's sd in norm must be positive")
                norm = norm.to(device=x.device, dtype=x.dtype)
                x = (x - norm[:, 0, None, None]) / norm[:, 1, None, None]
            x = x * frame_mask(n_frames, x.shape[-1])[:, None, :]
        return x.unsqueeze(1), n_frames


class WhisperLogMel(nn.Module):
    """Whisper's log-mel frontend in torch (Radford et al. 2022, §2.2).

    Matches ``transformers``' ``WhisperFeatureExtractor`` / OpenAI's ``log_mel_spectrogram`` on a
    clip padded to 30 s (tests/test_encoders.py compares them); with ``pad_to_30s=False`` each
    clip keeps its own length (``samples // 160`` frames) and the dynamic-range limit uses that
    clip's own maximum.

    Args:
        n_mels: Mel bands: 80 (Whisper tiny … large-v2) or 128 (large-v3).
        pad_to_30s: Zero-pad every clip to Whisper's 30 s window (3000 frames) instead of using
            its own length.

    Shapes:
        wave ``(batch, time)`` at 16 kHz + lengths ``(batch,)`` → log-mel
        ``(batch, n_mels, frames)`` and frame lengths ``(batch,)``; frames beyond a clip's length
        hold the values of silence (they are masked by the encoder).

    Raises:
        ValueError: ``n_mels`` not positive, a malformed batch, or a clip longer than 30 s (Whisper's
            position embeddings end there; crop longer clips first).
    """

    #: Frames from the input's shape, no value checks (export; module docstring).
    shape_polymorphic = False

    def __init__(self, n_mels: int = 80, pad_to_30s: bool = False) -> None:
        super().__init__()
        if n_mels <= 0:
            raise ValueError(f"WhisperLogMel: n_mels={n_mels} must be positive")
        self.n_mels, self.pad_to_30s = n_mels, bool(pad_to_30s)
        fb = torchaudio.functional.melscale_fbanks(
            n_freqs=WHISPER_N_FFT // 2 + 1, f_min=0.0, f_max=WHISPER_SAMPLE_RATE / 2, n_mels=n_mels,
            sample_rate=WHISPER_SAMPLE_RATE, norm="slaney", mel_scale="slaney",
        )  # (n_freqs, n_mels)
        self.register_buffer("filters", fb.T.contiguous(), persistent=False)  # (n_mels, n_freqs)
        self.register_buffer("window", torch.hann_window(WHISPER_N_FFT), persistent=False)
        self.register_buffer("dft_kernel", dft_kernel(WHISPER_N_FFT, self.window), persistent=False)  # export only

    @staticmethod
    def frame_lengths(lengths: torch.Tensor) -> torch.Tensor:
        """Valid frame count per clip ``(batch,)`` from sample counts ``(batch,)``."""
        return lengths // WHISPER_HOP

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-mel ``(batch, n_mels, frames)`` and valid frame counts ``(batch,)``."""
        poly = self.shape_polymorphic
        wave, lengths = _check_batch(wave, lengths, "WhisperLogMel", check_values=not poly)
        if not poly and int(lengths.max()) > WHISPER_CHUNK_SAMPLES:
            raise ValueError(f"WhisperLogMel: a clip has {int(lengths.max())} samples, more than Whisper's "
                             f"30 s window ({WHISPER_CHUNK_SAMPLES}); crop clips to at most 30 s")
        with torch.autocast(device_type=wave.device.type, enabled=False):
            if self.pad_to_30s:
                wave = nn.functional.pad(wave, (0, WHISPER_CHUNK_SAMPLES - wave.shape[1]))
                n_frames = torch.full_like(lengths, WHISPER_CHUNK_SAMPLES // WHISPER_HOP)
                n = WHISPER_CHUNK_SAMPLES // WHISPER_HOP
            else:
                n_frames = self.frame_lengths(lengths)
                # frames of the batch: its longest clip's, or (export) the input's, so no Python int comes from values
                n = wave.shape[1] // WHISPER_HOP if poly else int(n_frames.max())
                # n_fft // 2 zeros after the longest clip: no frame sees a reflection of a clip's end.
                wave = nn.functional.pad(wave, (0, WHISPER_N_FFT // 2))
            power = stft_power(wave, WHISPER_N_FFT, WHISPER_HOP, self.window, n,
                               self.dft_kernel if poly else None)  # (batch, n_freqs, frames)
            log_spec = torch.clamp(self.filters @ power, min=1e-10).log10()
            valid = frame_mask(n_frames, n)[:, None, :]
            peak = log_spec.masked_fill(~valid, float("-inf")).amax(dim=(1, 2), keepdim=True)
            log_spec = torch.maximum(log_spec, peak - 8.0)
            return (log_spec + 4.0) / 4.0, n_frames
