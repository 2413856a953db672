"""Batched, on-device training augmentation for waveforms and spectrograms.

Every module is a plain :class:`torch.nn.Module` that transforms a whole batch at once, draws its
randomness from the global torch RNG on the input's device (so ``seed_everything`` makes a run
reproducible), applies itself to each item independently with probability ``p`` and keeps the
input's shape, dtype and device. They do not look at ``self.training``: call them from the
LightningModule's training step only, never at validation/test time.

Waveform augmentations take ``(batch, time)`` or ``(batch, 1, time)``; :class:`SpecAugment`
takes ``(batch, channels, freq, frames)``.

Sources:
    * Time shift with wrap-around up to 30 % of the clip and SpecAugment with 2 frequency + 2 time
      masks of width up to 10 %: report 003 §3.2.
    * Additive white Gaussian noise at an SNR drawn from 15–30 dB: report 001 §4.2.1 / §5; of a fixed
      standard deviation σ = 0.005: report 000 §3.2.
    * Speed perturbation: report 000 (§ Training, "noise injection, time shifting, speed
      perturbation").
    * SpecAugment: Park et al. 2019, "SpecAugment: A Simple Data Augmentation Method for
      Automatic Speech Recognition" (frequency and time masking; no time warping).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torchaudio
from torch import nn


def _check_prob(p: float, key: str) -> float:
    """Return ``p`` as float. Raises ValueError naming ``key`` unless ``0 <= p <= 1``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{key}={p} is a probability and must be in [0, 1]")
    return float(p)


def _check_range(bounds: Sequence[float], key: str, unit: str) -> tuple[float, float]:
    """Return ``(low, high)``. Raises ValueError naming ``key`` if not two ordered numbers."""
    values = list(bounds)
    if len(values) != 2:
        raise ValueError(f"{key}={values} must be a [low, high] pair in {unit}")
    low, high = float(values[0]), float(values[1])
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{key}={values} must be finite numbers in {unit}")
    if low > high:
        raise ValueError(f"{key}={values} is reversed: lower bound must not exceed upper bound")
    return low, high


def _check_frac(frac: float, key: str) -> float:
    """Return ``frac`` as float. Raises ValueError naming ``key`` unless ``0 <= frac < 1``."""
    if not 0.0 <= frac < 1.0:
        raise ValueError(f"{key}={frac} is a fraction of the length and must be in [0, 1)")
    return float(frac)


def _waveform_op(
    waveform: torch.Tensor, op: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Apply ``op`` (``(batch, time)`` → ``(batch, time)``) to a ``(batch[, 1], time)`` batch.

    Raises:
        ValueError: for any other input shape.
    """
    if waveform.dim() == 2:
        return op(waveform)
    if waveform.dim() == 3 and waveform.shape[1] == 1:
        return op(waveform.squeeze(1)).unsqueeze(1)
    raise ValueError(
        f"expected a waveform batch of shape (batch, time) or (batch, 1, time), got {tuple(waveform.shape)}"
    )


def _item_mask(batch: int, p: float, device: torch.device) -> torch.Tensor:
    """Boolean ``(batch,)``: which items get augmented (each with probability ``p``)."""
    return torch.rand(batch, device=device) < p


def _uniform(batch: int, low: float, high: float, device: torch.device) -> torch.Tensor:
    """Float32 ``(batch,)`` drawn uniformly from ``[low, high]``."""
    return low + (high - low) * torch.rand(batch, device=device)


class RandomTimeShift(nn.Module):
    """Circular time shift per item, with wrap-around (report 003 §3.2: up to 30 %).

    Each selected item is rolled by an integer shift drawn uniformly from
    ``[-floor(max_frac * time), floor(max_frac * time)]`` samples, i.e. item ``b`` becomes
    ``torch.roll(x[b], shift_b)``.

    Args:
        max_frac: Largest shift as a fraction of the clip length, in ``[0, 1)``.
        p: Probability that an item is shifted.

    Shapes:
        ``(batch, time)`` or ``(batch, 1, time)`` → same shape, dtype and device.

    Raises:
        ValueError: if ``max_frac`` is outside ``[0, 1)`` (``augment.wave.shift_max_frac``) or ``p``
            outside ``[0, 1]`` (``augment.wave.shift_p``); in ``forward``, for another input shape.
    """

    def __init__(self, max_frac: float = 0.2, p: float = 1.0) -> None:
        super().__init__()
        self.max_frac = _check_frac(max_frac, "augment.wave.shift_max_frac")
        self.p = _check_prob(p, "augment.wave.shift_p")

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Shift each item; see the class docstring."""
        return _waveform_op(waveform, self._shift)

    def _shift(self, x: torch.Tensor) -> torch.Tensor:
        batch, time = x.shape
        max_shift = int(self.max_frac * time)
        if max_shift == 0 or self.p == 0.0:
            return x
        shift_samples = torch.randint(-max_shift, max_shift + 1, (batch,), device=x.device)
        shift_samples = torch.where(_item_mask(batch, self.p, x.device), shift_samples, 0)
        if _on_cpu(x):
            return _roll_rows(x, shift_samples)
        return _gather_rows(x, shift_samples)

    def extra_repr(self) -> str:
        return f"max_frac={self.max_frac}, p={self.p}"


def _on_cpu(x: torch.Tensor) -> bool:
    """True on CPU, where reading random draws on the host costs nothing; accelerators take sync-free paths."""
    return x.device.type == "cpu"


def _roll_rows(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """``out[b] = torch.roll(x[b], shifts[b])`` by one roll (a plain copy) per shifted row; the CPU path.

    On CPU this is about 15x faster than :func:`_gather_rows` (1.2 ms against 18 ms for 32 clips of
    3 s at 16 kHz: the gather needs an int64 index of ``batch * time`` entries and its remainder;
    ``benchmarks/pipeline.py``). It reads the shifts on the host, which on an accelerator
    would wait for the device, so accelerators use :func:`_gather_rows`.

    Args:
        x: ``(batch, time)``.
        shifts: ``(batch,)`` integer shifts in samples.

    Returns:
        ``(batch, time)``, a new tensor.
    """
    out = x.clone()
    for b, shift in enumerate(shifts.tolist()):
        if shift:
            out[b] = torch.roll(x[b], shift)
    return out


def _gather_rows(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """The same as :func:`_roll_rows` in one batched ``gather``, without a host-device sync (accelerators).

    Args:
        x: ``(batch, time)``.
        shifts: ``(batch,)`` integer shifts in samples.

    Returns:
        ``(batch, time)``.
    """
    time = x.shape[-1]
    # torch.roll semantics: out[t] = x[(t - shift) mod time]
    index = (torch.arange(time, device=x.device) - shifts[:, None]).remainder(time)
    return torch.gather(x, 1, index)


class AddWhiteNoise(nn.Module):
    """Additive white Gaussian noise, at an exact per-item SNR (report 001) or of a fixed std (report 000).

    SNR mode (``snr_db``, the default, report 001 §4.2.1: 15–30 dB): for each selected item an SNR is
    drawn uniformly in dB from ``snr_db``; Gaussian noise ``n`` is drawn and scaled by
    ``sqrt(P_signal / (P_n * 10 ** (snr_db / 10)))`` using the *drawn* noise's own power ``P_n``, so
    ``10 * log10(P_signal / P_noise)`` equals the drawn SNR to float precision. Silent items
    (``P_signal = 0``) are returned unchanged.

    Fixed-std mode (``sigma``, report 000 §3.2: "noise injection (σ = 0.005)"): each selected item
    gets ``sigma * N(0, 1)`` noise in waveform units (full scale = 1.0; the decoded clips are
    peak-normalised by default, ``data.normalize=peak``), whatever its loudness, so quiet clips get
    a lower SNR than loud ones.

    Powers are means of squares over time, computed in float32. ``last_snr_db`` (``(batch,)``) keeps
    the SNR of the last call's noisy items — drawn in SNR mode, realised in fixed-std mode — and NaN
    for items left unchanged or silent, for tests and logging.

    Args:
        snr_db: ``(low, high)`` SNR range in dB; ``(x, x)`` gives a fixed SNR. ``None`` (with
            ``sigma`` unset) means ``(15, 30)``.
        p: Probability that an item gets noise.
        sigma: Noise standard deviation in waveform units, instead of ``snr_db``.

    Shapes:
        ``(batch, time)`` or ``(batch, 1, time)`` → same shape, dtype and device.

    Raises:
        ValueError: if ``snr_db`` is not an ordered finite pair (``augment.wave.noise_snr_db``),
            ``sigma`` is not a finite number > 0 (``augment.wave.noise_sigma``), both are given, or
            ``p`` is outside ``[0, 1]`` (``augment.wave.noise_p``); in ``forward``, for another input shape.
    """

    last_snr_db: torch.Tensor | None

    def __init__(
        self, snr_db: Sequence[float] | None = None, p: float = 1.0, sigma: float | None = None
    ) -> None:
        super().__init__()
        if sigma is not None and snr_db is not None:
            raise ValueError(
                f"augment.wave.noise_snr_db={list(snr_db)} and augment.wave.noise_sigma={sigma} are alternatives: "
                "set one of them to null"
            )
        self.sigma = _check_sigma(sigma) if sigma is not None else None
        self.snr_db = None if sigma is not None else _check_range(
            (15.0, 30.0) if snr_db is None else snr_db, "augment.wave.noise_snr_db", "dB"
        )
        self.p = _check_prob(p, "augment.wave.noise_p")
        self.last_snr_db = None

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Add noise to each selected item; see the class docstring."""
        return _waveform_op(waveform, self._add_noise)

    def _add_noise(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        # Random draws in the same order as before the sigma option existed: same seed, same run.
        drawn_snr_db = _uniform(batch, *self.snr_db, x.device) if self.sigma is None else None
        apply = _item_mask(batch, self.p, x.device)
        xf = x.float()
        signal_power = _mean_square(xf)
        tiny = torch.finfo(torch.float32).tiny
        if _on_cpu(x):
            # Noise for the selected items only: with p = 0.5, half the Gaussian draws of a
            # full-batch randn, the largest cost of this module on CPU.
            rows = apply.nonzero().squeeze(1)
            noise = torch.randn((rows.numel(), x.shape[-1]), device=x.device, dtype=torch.float32)
            noise_power = torch.full((batch,), tiny, device=x.device)
            noise_power[rows] = _mean_square(noise).clamp_min(tiny)
        else:  # no host-device sync on an accelerator: noise for every item, scaled by 0 where unselected
            rows = None
            noise = torch.randn(x.shape, device=x.device, dtype=torch.float32)
            noise_power = _mean_square(noise).clamp_min(tiny)
        if drawn_snr_db is None:
            scale = torch.where(apply, self.sigma, 0.0)
            snr_db = 10.0 * torch.log10(signal_power.clamp_min(tiny) / (scale.square() * noise_power).clamp_min(tiny))
        else:
            snr_db = drawn_snr_db
            scale = torch.sqrt(signal_power / (noise_power * torch.pow(10.0, snr_db / 10.0)))
            scale = torch.where(apply & (signal_power > 0), scale, 0.0)
        self.last_snr_db = torch.where(apply & (signal_power > 0), snr_db, float("nan"))
        if rows is None:
            return torch.addcmul(xf, scale[:, None], noise).to(x.dtype)
        out = xf.clone() if xf is x else xf
        out[rows] = torch.addcmul(xf[rows], scale[rows, None], noise)
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        noise = f"sigma={self.sigma}" if self.sigma is not None else f"snr_db={self.snr_db}"
        return f"{noise}, p={self.p}"


def _mean_square(x: torch.Tensor) -> torch.Tensor:
    """Mean of squares over the last axis, ``(batch, time)`` → ``(batch,)``, without a squared copy."""
    return torch.linalg.vector_norm(x, dim=-1).square() / x.shape[-1]


def _check_sigma(sigma: float) -> float:
    """Return ``sigma`` as float. Raises ValueError naming ``augment.wave.noise_sigma`` unless finite and > 0."""
    value = float(sigma)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"augment.wave.noise_sigma={sigma} must be a finite noise std > 0 in waveform units (full scale 1.0)"
        )
    return value


class RandomGain(nn.Module):
    """Random per-item gain drawn uniformly in dB.

    The waveform is multiplied by ``10 ** (gain_db / 20)``; no clipping is applied (the result
    may exceed ±1 for peak-normalised input).

    Args:
        gain_db: ``(low, high)`` gain range in dB.
        p: Probability that an item's gain is changed.

    Shapes:
        ``(batch, time)`` or ``(batch, 1, time)`` → same shape, dtype and device.

    Raises:
        ValueError: if ``gain_db`` is not an ordered finite pair (``augment.wave.gain_db``) or ``p`` is
            outside ``[0, 1]`` (``augment.wave.gain_p``); in ``forward``, for another input shape.
    """

    last_gain_db: torch.Tensor | None

    def __init__(self, gain_db: Sequence[float] = (-6.0, 6.0), p: float = 1.0) -> None:
        super().__init__()
        self.gain_db = _check_range(gain_db, "augment.wave.gain_db", "dB")
        self.p = _check_prob(p, "augment.wave.gain_p")
        self.last_gain_db = None

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Scale each selected item; see the class docstring. ``last_gain_db`` keeps the gains."""
        return _waveform_op(waveform, self._gain)

    def _gain(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        gain_db = _uniform(batch, *self.gain_db, x.device)
        gain_db = torch.where(_item_mask(batch, self.p, x.device), gain_db, 0.0)
        self.last_gain_db = gain_db
        return (x.float() * torch.pow(10.0, gain_db / 20.0)[:, None]).to(x.dtype)

    def extra_repr(self) -> str:
        return f"gain_db={self.gain_db}, p={self.p}"


class SpeedPerturb(nn.Module):
    """Speed perturbation by resampling, drawn per item from a discrete set (report 000).

    Factor ``f`` plays the clip ``f`` times faster (pitch and tempo change together, as
    ``sox speed``): the item is resampled from ``round(sample_rate * f)`` Hz to ``sample_rate`` Hz
    with :func:`torchaudio.functional.resample`, giving about ``time / f`` samples, then centre-
    cropped (``f < 1``) or centre zero-padded (``f > 1``) back to ``time``. Items are grouped by
    factor so there is one resample call per distinct factor in the batch; ``f = 1`` and
    unselected items are passed through untouched. The chosen factors of the last call are kept
    in ``last_factors`` (``(batch,)``).

    Args:
        sample_rate: Waveform sample rate in Hz (sets the integer resampling ratio).
        factors: Allowed speed factors, each ``> 0``; one is drawn uniformly per item.
        p: Probability that an item is perturbed.

    Shapes:
        ``(batch, time)`` or ``(batch, 1, time)`` → same shape, dtype and device.

    Raises:
        ValueError: if ``factors`` is empty or has a factor ``<= 0`` (``augment.wave.speed_factors``),
            ``sample_rate <= 0`` (``data.sample_rate``) or ``p`` is outside ``[0, 1]``
            (``augment.wave.speed_p``); in ``forward``, for another input shape.
    """

    last_factors: torch.Tensor | None

    def __init__(
        self,
        sample_rate: int = 16000,
        factors: Sequence[float] = (0.9, 1.0, 1.1),
        p: float = 1.0,
    ) -> None:
        super().__init__()
        if sample_rate <= 0:
            raise ValueError(f"data.sample_rate={sample_rate} must be a positive number of Hz")
        factors = [float(f) for f in factors]
        if not factors or any(not (math.isfinite(f) and f > 0) for f in factors):
            raise ValueError(f"augment.wave.speed_factors={factors} must be a non-empty list of factors > 0")
        if any(round(sample_rate * f) <= 0 for f in factors):
            raise ValueError(
                f"augment.wave.speed_factors={factors} has a factor too small for sample_rate={sample_rate} Hz"
            )
        self.sample_rate = int(sample_rate)
        self.factors = tuple(factors)
        self.p = _check_prob(p, "augment.wave.speed_p")
        self.last_factors = None

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Speed-perturb each selected item; see the class docstring."""
        return _waveform_op(waveform, self._perturb)

    def _perturb(self, x: torch.Tensor) -> torch.Tensor:
        batch, time = x.shape
        choice = torch.randint(len(self.factors), (batch,), device=x.device)
        apply = _item_mask(batch, self.p, x.device)
        table = torch.tensor(self.factors, device=x.device)
        self.last_factors = torch.where(apply, table[choice], 1.0)
        out = x.clone()
        for k, factor in enumerate(self.factors):
            orig_freq = round(self.sample_rate * factor)
            if orig_freq == self.sample_rate:
                continue
            rows = torch.nonzero(apply & (choice == k)).squeeze(1)
            if rows.numel() == 0:
                continue
            resampled = torchaudio.functional.resample(
                x[rows].float(), orig_freq=orig_freq, new_freq=self.sample_rate
            )
            out[rows] = _center_fit(resampled, time).to(x.dtype)
        return out

    def extra_repr(self) -> str:
        return f"sample_rate={self.sample_rate}, factors={self.factors}, p={self.p}"


def _center_fit(x: torch.Tensor, length: int) -> torch.Tensor:
    """Centre-crop or centre zero-pad ``(batch, time)`` to ``(batch, length)``."""
    time = x.shape[-1]
    if time >= length:
        start = (time - length) // 2
        return x[..., start : start + length]
    left = (length - time) // 2
    return nn.functional.pad(x, (left, length - time - left))


class SpecAugment(nn.Module):
    """Frequency and time masking (Park et al. 2019; report 003 §3.2: 2 + 2 masks, ≤ 10 %).

    For each selected item, ``freq_masks`` bands of ``w ~ U{0, …, floor(freq_max_frac * freq)}``
    bins and ``time_masks`` bands of up to ``floor(time_max_frac * frames)`` frames are set to
    ``0.0`` (the mean after per-utterance normalisation). Widths and positions are independent per
    item (:func:`torchaudio.functional.mask_along_axis_iid`) and shared by that item's channels
    (static/Δ/ΔΔ stay aligned). Masks may overlap. Maximum widths are computed from the input
    shape at call time.

    Args:
        freq_masks: Number of frequency masks per item.
        time_masks: Number of time masks per item.
        freq_max_frac: Largest frequency mask as a fraction of ``freq``, in ``[0, 1)``.
        time_max_frac: Largest time mask as a fraction of ``frames``, in ``[0, 1)``.
        p: Probability that an item is masked.

    Shapes:
        ``(batch, channels, freq, frames)`` → same shape, dtype and device.

        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> spec = torch.ones(4, 3, 64, 100)
        >>> masked = SpecAugment(freq_masks=2, time_masks=2)(spec)
        >>> masked.shape, bool((masked == 0).any()), bool(((masked == 0) == (masked[:, :1] == 0)).all())
        (torch.Size([4, 3, 64, 100]), True, True)

    Raises:
        ValueError: for negative mask counts (``augment.spec.freq_masks`` / ``augment.spec.time_masks``),
            fractions outside ``[0, 1)`` (``augment.spec.freq_max_frac`` / ``augment.spec.time_max_frac``),
            ``p`` outside ``[0, 1]`` (``augment.spec.p``); in ``forward``, for a non-4-D input.
    """

    def __init__(
        self,
        freq_masks: int = 2,
        time_masks: int = 2,
        freq_max_frac: float = 0.1,
        time_max_frac: float = 0.1,
        p: float = 1.0,
    ) -> None:
        super().__init__()
        for key, count in (("augment.spec.freq_masks", freq_masks), ("augment.spec.time_masks", time_masks)):
            if count < 0 or int(count) != count:
                raise ValueError(f"{key}={count} must be a non-negative integer")
        self.freq_masks = int(freq_masks)
        self.time_masks = int(time_masks)
        self.freq_max_frac = _check_frac(freq_max_frac, "augment.spec.freq_max_frac")
        self.time_max_frac = _check_frac(time_max_frac, "augment.spec.time_max_frac")
        self.p = _check_prob(p, "augment.spec.p")

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """Mask each selected item; see the class docstring.

        Raises:
            ValueError: if ``spec`` is not ``(batch, channels, freq, frames)``.
        """
        if spec.dim() != 4:
            raise ValueError(
                f"SpecAugment expects (batch, channels, freq, frames), got {tuple(spec.shape)}"
            )
        batch, _, n_freq, n_frames = spec.shape
        # mask_along_axis_iid draws widths floor(U * mask_param) in [0, mask_param - 1]
        freq_param = int(self.freq_max_frac * n_freq) + 1
        time_param = int(self.time_max_frac * n_frames) + 1
        # The masks are drawn on a (batch, 1, freq, 1) and a (batch, 1, 1, frames) plane and combined
        # by broadcasting: mask_along_axis_iid's draws depend only on the batch size and the masked
        # axis, so this equals masking a full (batch, 1, freq, frames) plane, at a fraction of the cost.
        keep_freq = torch.ones(batch, 1, n_freq, 1, device=spec.device)
        for _ in range(self.freq_masks):
            keep_freq = torchaudio.functional.mask_along_axis_iid(keep_freq, freq_param, 0.0, axis=2)
        keep_time = torch.ones(batch, 1, 1, n_frames, device=spec.device)
        for _ in range(self.time_masks):
            keep_time = torchaudio.functional.mask_along_axis_iid(keep_time, time_param, 0.0, axis=3)
        selected = _item_mask(batch, self.p, spec.device)[:, None, None, None]
        masked = ((keep_freq == 0) | (keep_time == 0)) & selected
        return spec.masked_fill(masked, 0.0)

    def extra_repr(self) -> str:
        return (
            f"freq_masks={self.freq_masks}, time_masks={self.time_masks}, "
            f"freq_max_frac={self.freq_max_frac}, time_max_frac={self.time_max_frac}, p={self.p}"
        )


class WaveAugment(nn.Module):
    """An ordered chain of waveform augmentations; an empty chain is the identity.

    Args:
        stages: Modules applied in order, each ``(batch[, 1], time)`` → same shape.

    Shapes:
        ``(batch, time)`` or ``(batch, 1, time)`` → same shape, dtype and device.

        >>> import torch
        >>> chain = build_wave_augment(16000, shift_max_frac=0.2, noise_snr_db=[15, 30], speed_factors=[0.9, 1.1],
        ...                            speed_p=1.0, gain_db=[-6, 6], gain_p=1.0)
        >>> wave = torch.randn(8, 48000)
        >>> out = chain(wave)
        >>> out.shape == wave.shape, out.dtype, len(chain) > 0
        (True, torch.float32, True)
        >>> torch.equal(WaveAugment()(wave), wave)  # the empty chain is the identity
        True
    """

    def __init__(self, stages: Sequence[nn.Module] = ()) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Apply every stage in order."""
        for stage in self.stages:
            waveform = stage(waveform)
        return waveform

    def __len__(self) -> int:
        return len(self.stages)


def build_wave_augment(
    sample_rate: int,
    shift_max_frac: float = 0.0,
    noise_snr_db: Sequence[float] | None = None,
    noise_p: float = 0.0,
    noise_sigma: float | None = None,
    gain_db: Sequence[float] | None = None,
    gain_p: float = 0.0,
    speed_factors: Sequence[float] | None = None,
    speed_p: float = 0.0,
) -> nn.Module:
    """Build the waveform augmentation chain from ``augment.*`` config values.

    Order: speed → shift → gain → noise (noise last so its SNR is relative to the final signal).
    A stage is omitted when its probability is 0 or its range/factors are ``None`` (noise: when both
    ``noise_snr_db`` and ``noise_sigma`` are ``None``; shift: when
    ``shift_max_frac == 0``; it is applied with ``p = 1``); speed factors that are all 1.0 are
    omitted too. Settings of omitted stages are still validated.

    Args:
        sample_rate: Waveform sample rate in Hz.
        shift_max_frac: Largest circular time shift as a fraction of the clip (report 003: 0.3).
        noise_snr_db: ``(low, high)`` SNR range in dB for white noise (report 001: 15–30).
        noise_p: Per-item probability of noise.
        noise_sigma: Fixed noise std in waveform units instead of an SNR range (report 000: 0.005);
            ``noise_snr_db`` must then be ``None``.
        gain_db: ``(low, high)`` gain range in dB.
        gain_p: Per-item probability of a gain change.
        speed_factors: Discrete speed factors (report 000), e.g. ``(0.9, 1.0, 1.1)``.
        speed_p: Per-item probability of speed perturbation.

    Returns:
        A :class:`WaveAugment` (possibly empty, i.e. the identity).

    Raises:
        ValueError: naming the ``augment.<name>`` key of an invalid setting.
    """
    _check_frac(shift_max_frac, "augment.wave.shift_max_frac")
    for key, p in (("augment.wave.noise_p", noise_p), ("augment.wave.gain_p", gain_p), ("augment.wave.speed_p", speed_p)):
        _check_prob(p, key)
    stages: list[nn.Module] = []
    if speed_factors is not None:
        speed = SpeedPerturb(sample_rate, speed_factors, p=speed_p)
        if speed_p > 0 and any(round(sample_rate * f) != sample_rate for f in speed.factors):
            stages.append(speed)
    if shift_max_frac > 0:
        stages.append(RandomTimeShift(shift_max_frac, p=1.0))
    if gain_db is not None:
        gain = RandomGain(gain_db, p=gain_p)
        if gain_p > 0:
            stages.append(gain)
    if noise_snr_db is not None or noise_sigma is not None:
        noise = AddWhiteNoise(noise_snr_db, p=noise_p, sigma=noise_sigma)
        if noise_p > 0:
            stages.append(noise)
    return WaveAugment(stages)


def build_spec_augment(
    freq_masks: int = 0,
    time_masks: int = 0,
    freq_max_frac: float = 0.1,
    time_max_frac: float = 0.1,
    p: float = 1.0,
) -> nn.Module:
    """Build :class:`SpecAugment` from ``augment.*`` config values.

    Args:
        freq_masks: Frequency masks per item (report 003: 2).
        time_masks: Time masks per item (report 003: 2).
        freq_max_frac: Largest frequency mask as a fraction of the bins (report 003: 0.1).
        time_max_frac: Largest time mask as a fraction of the frames (report 003: 0.1).
        p: Per-item probability of masking.

    Returns:
        :class:`SpecAugment`, or :class:`torch.nn.Identity` when both counts are 0 or ``p == 0``.

    Raises:
        ValueError: naming the ``augment.<name>`` key of an invalid setting.
    """
    spec = SpecAugment(freq_masks, time_masks, freq_max_frac, time_max_frac, p)
    if (freq_masks == 0 and time_masks == 0) or p == 0:
        return nn.Identity()
    return spec
