"""Batched spectral frontends: waveform batch → log-mel or MFCC "image" for a 2-D CNN.

Both frontends are plain :class:`torch.nn.Module` s built from torchaudio transforms
(:class:`~torchaudio.transforms.MelSpectrogram`, :class:`~torchaudio.transforms.AmplitudeToDB`,
:class:`~torchaudio.transforms.MFCC`, :class:`~torchaudio.transforms.ComputeDeltas`), so they run on
whatever device the batch lives on and can sit inside the LightningModule (features on the GPU,
augmentation between waveform and spectrogram).

Sources: report 003 §3.2/§3.4.2 (log-mel spectrograms for CNNs, 16 kHz), report 001 (MFCC vs mel
comparison), report 002 (MFCC + Δ + ΔΔ as three input channels).

Shapes follow torchaudio order: waveform ``(batch, time)`` or ``(batch, 1, time)`` →
features ``(batch, channels, n_feats, frames)`` with ``frames = num_samples // hop_length + 1``
(centred STFT).

Note:
    The spectrogram is always computed in float32, autocast disabled: an STFT and a ``log10`` in
    float16/bfloat16 lose most of the dynamic range of the dB scale. The dB conversion is applied
    to a 4-D ``(batch, 1, n_mels, frames)`` tensor on purpose: torchaudio's ``top_db`` clamp uses
    *one* cut-off for the whole batch when given a 3-D tensor, which would make an item's
    features depend on the loudest other item in its batch.
"""

from __future__ import annotations

from typing import Any

import torch
import torchaudio
from torch import nn

NORMALIZE_MODES = ("utterance", "none")
FRONTENDS = ("logmel", "mfcc", "raw")

_EPS = 1e-5
_CHUNK_BYTES = 4 << 20  # bytes of float32 STFT frames per CPU chunk (see _per_chunk)


def _validate_spectral(
    *,
    sample_rate: int,
    n_fft: int,
    hop_length: int,
    win_length: int | None,
    n_mels: int,
    f_min: float,
    f_max: float | None,
    normalize: str,
) -> None:
    """Check the STFT / mel settings shared by both frontends.

    Raises:
        ValueError: naming the offending ``features.<name>`` config key.
    """
    if sample_rate <= 0:
        raise ValueError(f"features.sample_rate={sample_rate} must be a positive number of Hz")
    if n_fft <= 0:
        raise ValueError(f"features.n_fft={n_fft} must be a positive number of samples")
    if hop_length <= 0:
        raise ValueError(f"features.hop_length={hop_length} must be a positive number of samples")
    if win_length is not None and not 0 < win_length <= n_fft:
        raise ValueError(
            f"features.win_length={win_length} must be in [1, features.n_fft={n_fft}] samples (or null)"
        )
    n_bins = n_fft // 2 + 1
    if n_mels <= 0:
        raise ValueError(f"features.n_mels={n_mels} must be positive")
    if n_mels > n_bins:
        raise ValueError(
            f"features.n_mels={n_mels} is larger than the n_fft // 2 + 1 = {n_bins} frequency bins "
            f"of features.n_fft={n_fft}; raise features.n_fft or lower features.n_mels"
        )
    nyquist = sample_rate / 2
    if f_max is not None and f_max > nyquist:
        raise ValueError(
            f"features.f_max={f_max} Hz is above the Nyquist frequency sample_rate / 2 = {nyquist} Hz "
            f"of features.sample_rate={sample_rate}"
        )
    upper = nyquist if f_max is None else f_max
    if not 0.0 <= f_min < upper:
        raise ValueError(f"features.f_min={f_min} Hz must be in [0, f_max={upper}) Hz")
    if normalize not in NORMALIZE_MODES:
        raise ValueError(f"features.normalize={normalize!r} is not one of {list(NORMALIZE_MODES)}")


def _as_mono_batch(waveform: torch.Tensor) -> torch.Tensor:
    """Return ``(batch, 1, time)`` float32 from ``(batch, time)`` or ``(batch, 1, time)``.

    Raises:
        ValueError: for any other shape.
    """
    if waveform.dim() == 2:
        waveform = waveform.unsqueeze(1)
    elif waveform.dim() != 3 or waveform.shape[1] != 1:
        raise ValueError(
            f"expected a waveform batch of shape (batch, time) or (batch, 1, time), got {tuple(waveform.shape)}"
        )
    return waveform.float()


def _utterance_normalize(features: torch.Tensor) -> torch.Tensor:
    """Standardise each item and channel over ``(n_feats, frames)``.

    Args:
        features: ``(batch, channels, n_feats, frames)``.

    Returns:
        Same shape, zero mean and unit (population) standard deviation per ``(item, channel)``;
        a constant plane becomes all zeros.
    """
    std, mean = torch.std_mean(features, dim=(-2, -1), keepdim=True, correction=0)
    return (features - mean) / (std + _EPS)


def _capturing_graph() -> bool:
    """True while tracing, scripting, exporting or compiling (the fast path below is eager-only)."""
    return bool(
        torch.jit.is_scripting()
        or torch.jit.is_tracing()
        or torch.onnx.is_in_onnx_export()
        or torch.compiler.is_compiling()
        or torch.compiler.is_exporting()
    )


def _per_chunk(fn, x: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """``fn(x)``, computed on CPU in chunks of items whose STFT frames fit in about 4 MiB.

    The STFT frames of a whole batch (32 clips of 3 s at 16 kHz, ``n_fft`` 1024: 25 MB), its complex
    spectrum and power spectrum do not fit in a CPU cache; a few items at a time do, and the same
    log-mel is about 1.3-1.5x faster (``benchmarks/pipeline.py``). Each item's features
    depend on that item alone, so the result equals ``fn(x)`` to float32 rounding. On other
    devices, and while tracing, scripting, exporting or compiling, ``fn(x)`` is returned directly.

    Args:
        fn: Item-wise frontend, ``(batch, 1, time)`` → ``(batch, channels, n_feats, frames)``.
        x: Waveforms ``(batch, 1, time)``.
        n_fft: FFT size in samples.
        hop_length: STFT hop in samples.

    Returns:
        ``fn(x)``.
    """
    frame_bytes = (x.shape[-1] // hop_length + 1) * n_fft * 4
    chunk = max(1, _CHUNK_BYTES // frame_bytes)
    if x.device.type != "cpu" or x.shape[0] <= chunk or _capturing_graph():
        return fn(x)
    return torch.cat([fn(part) for part in x.split(chunk)])


def _mel_power(melspec: torchaudio.transforms.MelSpectrogram, x: torch.Tensor) -> torch.Tensor:
    """``melspec(x)`` for a ``power=2`` :class:`~torchaudio.transforms.MelSpectrogram`, faster on CPU.

    torchaudio computes the power spectrogram as ``stft.abs().pow(2)``: a complex ``abs`` (a
    ``hypot`` per bin) that took about half of the CPU time of the whole log-mel frontend (the pipeline
    benchmark, ``benchmarks/pipeline.py``). Here the STFT is squared as ``real² + imag²`` and the
    module's own mel filterbank is applied. For the usual settings (centred, reflect padding,
    window as long as ``n_fft``, not normalised, one-sided) the STFT is also framed here — reflect
    padding by two flipped slices, ``unfold``, window, ``torch.fft.rfft`` over each frame — and
    the power and mel product are taken in the FFT's own frame-major layout: the same arithmetic as
    ``torch.stft`` in the same order, so the mel power spectrogram is bit-identical to the
    torchaudio path below, about 1.3x faster. Other settings go through
    :func:`torchaudio.functional.spectrogram`; the result equals ``melspec(x)`` to float32 rounding
    (relative difference ≲ 3e-7 per bin; ≲ 1e-5 dB after :class:`~torchaudio.transforms.AmplitudeToDB`).
    While tracing, scripting, exporting or compiling, ``melspec(x)`` itself is called, so
    exported graphs are unchanged.

    Args:
        melspec: The frontend's mel transform (its ``spectrogram.power`` must be 2).
        x: Waveforms ``(..., time)`` float32.

    Returns:
        Mel power spectrogram ``(..., n_mels, frames)`` float32.
    """
    s = melspec.spectrogram
    if _capturing_graph() or s.power != 2.0:
        return melspec(x)
    half = s.n_fft // 2
    if (s.center and s.pad_mode == "reflect" and s.pad == 0 and not s.normalized and s.onesided
            and s.window.numel() == s.n_fft and x.shape[-1] > half):
        padded = torch.cat([x[..., 1:half + 1].flip(-1), x, x[..., -half - 1:-1].flip(-1)], dim=-1)
        frames = padded.unfold(-1, s.n_fft, s.hop_length) * s.window  # (..., frames, n_fft)
        spec = torch.fft.rfft(frames, dim=-1)  # complex (..., frames, n_fft // 2 + 1)
        power = torch.addcmul(spec.real.square(), spec.imag, spec.imag)
        return torch.matmul(power, melspec.mel_scale.fb).transpose(-1, -2)  # (..., n_mels, frames)
    spec = torchaudio.functional.spectrogram(
        x, pad=s.pad, window=s.window, n_fft=s.n_fft, hop_length=s.hop_length, win_length=s.win_length,
        power=None, normalized=s.normalized, center=s.center, pad_mode=s.pad_mode, onesided=s.onesided,
    )  # complex (..., n_fft // 2 + 1, frames)
    power = torch.addcmul(spec.real.square(), spec.imag, spec.imag)
    return melspec.mel_scale(power)


class _Frontend(nn.Module):
    """Shared shape bookkeeping: ``frames`` and ``output_shape`` from the centred-STFT formula."""

    hop_length: int
    out_channels: int
    n_feats: int

    def frames(self, num_samples: int) -> int:
        """Number of STFT frames for a clip of ``num_samples`` samples (centred STFT).

        Args:
            num_samples: Waveform length in samples.

        Returns:
            ``num_samples // hop_length + 1``.
        """
        return num_samples // self.hop_length + 1

    def output_shape(self, num_samples: int) -> tuple[int, int, int]:
        """Feature shape for one clip of ``num_samples`` samples, without the batch dimension.

        Args:
            num_samples: Waveform length in samples.

        Returns:
            ``(channels, n_feats, frames)``.
        """
        return (self.out_channels, self.n_feats, self.frames(num_samples))


class LogMelFrontend(_Frontend):
    """Log-mel spectrogram in dB, optionally standardised per utterance (report 003 §3.2).

    ``MelSpectrogram(power=2)`` → ``AmplitudeToDB("power", top_db)`` per item →
    optional per-utterance standardisation, always in float32.

    Args:
        sample_rate: Waveform sample rate in Hz.
        n_fft: FFT size in samples.
        hop_length: STFT hop in samples.
        win_length: Window length in samples (``None`` = ``n_fft``).
        n_mels: Number of mel bands.
        f_min: Lowest mel filter edge in Hz.
        f_max: Highest mel filter edge in Hz (``None`` = ``sample_rate / 2``).
        top_db: Dynamic range kept below each item's loudest bin, in dB (``None`` = no clamp).
        normalize: ``"utterance"`` (zero mean / unit std per item over freq and frames) or
            ``"none"`` (raw dB, 0 dB = power 1).

    Shapes:
        ``(batch, time)`` or ``(batch, 1, time)`` → ``(batch, 1, n_mels, frames)`` float32, with
        ``frames = time // hop_length + 1``.

        >>> import torch
        >>> LogMelFrontend(sample_rate=16000, n_mels=64, hop_length=256)(torch.zeros(2, 48000)).shape
        torch.Size([2, 1, 64, 188])
        >>> LogMelFrontend(n_mels=64, hop_length=256).output_shape(48000)  # (channels, n_mels, frames)
        (1, 64, 188)

    Raises:
        ValueError: on an invalid setting, naming its ``features.<name>`` key: non-positive
            ``n_fft``/``hop_length``, ``n_mels > n_fft // 2 + 1``, ``f_max`` above Nyquist,
            ``f_min`` outside ``[0, f_max)``, non-positive ``top_db``, unknown ``normalize``.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 256,
        win_length: int | None = None,
        n_mels: int = 64,
        f_min: float = 0.0,
        f_max: float | None = None,
        top_db: float | None = 80.0,
        normalize: str = "utterance",
    ) -> None:
        super().__init__()
        _validate_spectral(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            win_length=win_length,
            n_mels=n_mels,
            f_min=f_min,
            f_max=f_max,
            normalize=normalize,
        )
        if top_db is not None and top_db <= 0:
            raise ValueError(f"features.top_db={top_db} must be a positive number of dB (or null)")
        self.sample_rate = sample_rate
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.n_feats = n_mels
        self.out_channels = 1
        self.normalize = normalize
        self.melspec = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=n_fft,
            win_length=win_length,
            hop_length=hop_length,
            f_min=f_min,
            f_max=f_max,
            n_mels=n_mels,
            power=2.0,
        )
        self.to_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=top_db)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Compute log-mel features.

        Args:
            waveform: ``(batch, time)`` or ``(batch, 1, time)``, any float dtype.

        Returns:
            ``(batch, 1, n_mels, frames)`` float32.

        Raises:
            ValueError: if ``waveform`` has another shape.
        """
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            x = _as_mono_batch(waveform)  # (batch, 1, time)
            s = self.melspec.spectrogram
            return _per_chunk(self._features, x, s.n_fft, s.hop_length)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 1, time)`` float32 → ``(batch, 1, n_mels, frames)``: mel power → dB → normalisation."""
        mel = _mel_power(self.melspec, x)  # (batch, 1, n_mels, frames)
        feats = self.to_db(mel)  # 4-D → per-item top_db cut-off
        if self.normalize == "utterance":
            feats = _utterance_normalize(feats)
        return feats


class MFCCFrontend(_Frontend):
    """MFCCs with optional Δ and ΔΔ as extra channels (reports 001 and 002).

    ``torchaudio.transforms.MFCC`` (log-mel in dB with an 80 dB per-item ``top_db`` → DCT-II,
    orthonormal) → ``ComputeDeltas`` (5-frame window) stacked on the channel axis → optional
    per-utterance standardisation of each channel, always in float32.

    Args:
        sample_rate: Waveform sample rate in Hz.
        n_mfcc: Number of cepstral coefficients kept.
        n_mels: Number of mel bands before the DCT.
        n_fft: FFT size in samples.
        hop_length: STFT hop in samples.
        f_min: Lowest mel filter edge in Hz.
        f_max: Highest mel filter edge in Hz (``None`` = ``sample_rate / 2``).
        deltas: 0 (static only), 1 (+Δ) or 2 (+Δ, +ΔΔ).
        normalize: ``"utterance"`` (zero mean / unit std per item *and channel* over coefficients
            and frames) or ``"none"``.

    Shapes:
        ``(batch, time)`` or ``(batch, 1, time)`` → ``(batch, 1 + deltas, n_mfcc, frames)``
        float32; channels are static, Δ, ΔΔ in that order.

        >>> import torch
        >>> MFCCFrontend(sample_rate=16000, n_mfcc=40, deltas=2, hop_length=256)(torch.zeros(2, 1, 16000)).shape
        torch.Size([2, 3, 40, 63])

    Raises:
        ValueError: on an invalid setting, naming its ``features.<name>`` key: those of
            :class:`LogMelFrontend`, plus ``n_mfcc`` outside ``[1, n_mels]`` and ``deltas`` not in
            ``{0, 1, 2}``.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mfcc: int = 40,
        n_mels: int = 64,
        n_fft: int = 1024,
        hop_length: int = 256,
        f_min: float = 0.0,
        f_max: float | None = None,
        deltas: int = 0,
        normalize: str = "utterance",
    ) -> None:
        super().__init__()
        _validate_spectral(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            win_length=None,
            n_mels=n_mels,
            f_min=f_min,
            f_max=f_max,
            normalize=normalize,
        )
        if not 0 < n_mfcc <= n_mels:
            raise ValueError(
                f"features.n_mfcc={n_mfcc} must be in [1, features.n_mels={n_mels}]: "
                "the DCT cannot return more coefficients than mel bands"
            )
        if deltas not in (0, 1, 2):
            raise ValueError(f"features.deltas={deltas} must be 0, 1 or 2")
        self.sample_rate = sample_rate
        self.hop_length = hop_length
        self.n_mfcc = n_mfcc
        self.n_feats = n_mfcc
        self.deltas = deltas
        self.out_channels = 1 + deltas
        self.normalize = normalize
        self.mfcc = torchaudio.transforms.MFCC(
            sample_rate=sample_rate,
            n_mfcc=n_mfcc,
            melkwargs={
                "n_fft": n_fft,
                "hop_length": hop_length,
                "n_mels": n_mels,
                "f_min": f_min,
                "f_max": f_max,
                "power": 2.0,
            },
        )
        self.compute_deltas = torchaudio.transforms.ComputeDeltas(win_length=5)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Compute MFCC (+Δ, +ΔΔ) features.

        Args:
            waveform: ``(batch, time)`` or ``(batch, 1, time)``, any float dtype.

        Returns:
            ``(batch, 1 + deltas, n_mfcc, frames)`` float32.

        Raises:
            ValueError: if ``waveform`` has another shape.
        """
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            x = _as_mono_batch(waveform)  # (batch, 1, time)
            s = self.mfcc.MelSpectrogram.spectrogram
            return _per_chunk(self._features, x, s.n_fft, s.hop_length)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 1, time)`` float32 → ``(batch, 1 + deltas, n_mfcc, frames)``."""
        if _capturing_graph():
            static = self.mfcc(x)  # (batch, 1, n_mfcc, frames); 4-D → per-item top_db
        else:  # torchaudio's MFCC.forward with the faster power spectrogram (_mel_power)
            mel_db = self.mfcc.amplitude_to_DB(_mel_power(self.mfcc.MelSpectrogram, x))
            static = torch.matmul(mel_db.transpose(-1, -2), self.mfcc.dct_mat).transpose(-1, -2)
        channels = [static]
        for _ in range(self.deltas):
            channels.append(self.compute_deltas(channels[-1]))
        feats = torch.cat(channels, dim=1)
        if self.normalize == "utterance":
            feats = _utterance_normalize(feats)
        return feats


class RawFrontend(nn.Module):
    """Identity frontend for networks that read the waveform itself (Wav2Vec2, checkpoint ensembles).

    Args:
        sample_rate: Waveform sample rate in Hz (kept for the model card; unused).
        **_: Spectral settings of the composed ``features`` config are accepted and ignored, so a
            waveform model works whatever ``features=`` is selected.

    Shapes:
        ``(batch, time)`` or ``(batch, 1, time)`` → ``(batch, time)`` float32.
    """

    out_channels = 1

    def __init__(self, sample_rate: int = 16000, **_: Any) -> None:
        super().__init__()
        self.sample_rate = sample_rate

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Return the waveform batch as ``(batch, time)`` float32."""
        return _as_mono_batch(waveform)[:, 0]


_REGISTRY: dict[str, type[nn.Module]] = {"logmel": LogMelFrontend, "mfcc": MFCCFrontend, "raw": RawFrontend}


def frontend_class(name: str) -> type[nn.Module]:
    """The frontend class configured as ``features.name=<name>``.

    Raises:
        ValueError: for an unknown ``name`` (the message lists the choices).
    """
    if name not in _REGISTRY:
        raise ValueError(f"features.name={name!r} is not one of {list(FRONTENDS)}")
    return _REGISTRY[name]


def build_frontend(name: str, **kwargs: Any) -> nn.Module:
    """Build a frontend by config name.

    Args:
        name: ``"logmel"`` (:class:`LogMelFrontend`), ``"mfcc"`` (:class:`MFCCFrontend`) or
            ``"raw"`` (:class:`RawFrontend`, the waveform itself).
        **kwargs: Constructor arguments of that class.

    Returns:
        The frontend module; it has ``out_channels``, ``frames(num_samples)`` and
        ``output_shape(num_samples)``.

    Raises:
        ValueError: for an unknown ``name`` (the message lists the choices) or an invalid setting.
    """
    return frontend_class(name)(**kwargs)
