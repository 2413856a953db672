"""Waveform and spectrogram augmentation: statistics, bounds, identities, reproducibility."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ser_lightning.features.augment import (
    AddWhiteNoise,
    RandomGain,
    RandomTimeShift,
    SpecAugment,
    SpeedPerturb,
    WaveAugment,
    build_spec_augment,
    build_wave_augment,
)

SR = 16000


def _speech_like(batch: int = 8, num_samples: int = SR, seed: int = 0) -> torch.Tensor:
    """(batch, time) random signals of very different levels."""
    g = torch.Generator().manual_seed(seed)
    levels = torch.logspace(-3, 0, batch)[:, None]
    return levels * torch.randn(batch, num_samples, generator=g)


def _snr_db(clean: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    clean, noisy = clean.double(), noisy.double()
    return 10 * torch.log10(clean.square().mean(-1) / (noisy - clean).square().mean(-1))


def _zero_crossings(x: torch.Tensor) -> torch.Tensor:
    return (torch.sign(x[..., 1:]) != torch.sign(x[..., :-1])).sum(-1)


# ---------------------------------------------------------------- white noise (report 001)


@pytest.mark.parametrize("snr", [20.0, 5.0])
def test_noise_hits_requested_snr(snr):
    torch.manual_seed(0)
    x = _speech_like()
    out = AddWhiteNoise(snr_db=(snr, snr))(x)
    measured = _snr_db(x, out)
    assert torch.all((measured - snr).abs() < 0.5), measured
    # scaled with the drawn noise's own power: exact to float precision
    torch.testing.assert_close(measured, torch.full_like(measured, snr), atol=1e-3, rtol=0)


def test_noise_snr_drawn_within_range_and_varies():
    torch.manual_seed(1)
    x = _speech_like(32).unsqueeze(1)  # (batch, 1, time) accepted and kept
    aug = AddWhiteNoise(snr_db=(15.0, 30.0))
    out = aug(x)
    assert out.shape == x.shape
    measured = _snr_db(x.squeeze(1), out.squeeze(1))
    assert torch.all((measured >= 15.0 - 1e-3) & (measured <= 30.0 + 1e-3))
    torch.testing.assert_close(measured.float(), aug.last_snr_db, atol=1e-3, rtol=0)
    assert measured.max() - measured.min() > 5.0  # per-item SNRs, not one for the batch


def test_noise_leaves_silence_and_unselected_items_alone():
    torch.manual_seed(0)
    x = _speech_like(4)
    x[0] = 0.0
    out = AddWhiteNoise((15.0, 30.0), p=1.0)(x)
    assert torch.equal(out[0], x[0])
    assert not torch.equal(out[1], x[1])
    assert torch.equal(AddWhiteNoise((15.0, 30.0), p=0.0)(x), x)


def test_noise_keeps_dtype():
    x = _speech_like(2).to(torch.float64)
    assert AddWhiteNoise()(x).dtype == torch.float64
    assert AddWhiteNoise()(x.to(torch.bfloat16)).dtype == torch.bfloat16


def test_noise_probability_selects_about_p_items():
    torch.manual_seed(0)
    x = _speech_like(400, num_samples=64)
    out = AddWhiteNoise((20.0, 20.0), p=0.3)(x)
    changed = (out != x).any(-1).float().mean()
    assert 0.2 < changed < 0.4


# ---------------------------------------------------------------- time shift (report 003)


def test_time_shift_is_a_bounded_roll_per_item():
    torch.manual_seed(0)
    batch, time, frac = 16, 1000, 0.3
    x = torch.randn(batch, time)
    out = RandomTimeShift(max_frac=frac)(x)
    assert out.shape == x.shape
    max_shift = int(frac * time)
    shifts = []
    for b in range(batch):
        found = [s for s in range(-max_shift, max_shift + 1) if torch.equal(out[b], torch.roll(x[b], s))]
        assert len(found) == 1, f"item {b} is not a roll of its input within ±{max_shift}"
        shifts.append(found[0])
    assert len(set(shifts)) > 1  # independent per item


def test_time_shift_three_d_and_p_zero():
    x = torch.randn(4, 1, 500)
    assert RandomTimeShift(0.2)(x).shape == (4, 1, 500)
    assert torch.equal(RandomTimeShift(0.2, p=0.0)(x), x)
    assert torch.equal(RandomTimeShift(0.0)(x), x)


# ---------------------------------------------------------------- gain


def test_gain_changes_rms_by_drawn_db():
    torch.manual_seed(0)
    x = _speech_like(32)
    aug = RandomGain(gain_db=(-6.0, 6.0))
    out = aug(x)
    change_db = 20 * torch.log10(out.pow(2).mean(-1).sqrt() / x.pow(2).mean(-1).sqrt())
    assert torch.all(change_db.abs() <= 6.0 + 1e-4)
    torch.testing.assert_close(change_db, aug.last_gain_db, atol=1e-4, rtol=0)
    assert change_db.max() - change_db.min() > 3.0


# ---------------------------------------------------------------- speed (report 000)


def _sines(batch: int, freq_hz: float = 200.0, num_samples: int = SR) -> torch.Tensor:
    t = torch.arange(num_samples) / SR
    return torch.sin(2 * math.pi * freq_hz * t + 0.3).repeat(batch, 1)


def test_speed_identity_factor_and_length():
    x = _sines(3)
    assert torch.equal(SpeedPerturb(SR, factors=(1.0,))(x), x)
    assert torch.equal(SpeedPerturb(SR, factors=(0.9, 1.1), p=0.0)(x), x)
    torch.manual_seed(0)
    out = SpeedPerturb(SR, factors=(0.9, 1.0, 1.1))(x.unsqueeze(1))
    assert out.shape == (3, 1, SR)


@pytest.mark.parametrize("factor", [1.1, 0.9])
def test_speed_changes_rate_by_factor(factor):
    x = _sines(2)
    out = SpeedPerturb(SR, factors=(factor,))(x)
    assert out.shape == x.shape
    centre = slice(SR // 4, 3 * SR // 4)  # away from the zero padding / crop edges
    ratio = _zero_crossings(out[:, centre]).float() / _zero_crossings(x[:, centre]).float()
    torch.testing.assert_close(ratio, torch.full_like(ratio, factor), atol=0.02, rtol=0)
    if factor > 1:  # faster = shorter content, zero-padded at both ends
        assert out[:, :100].abs().max() == 0 and out[:, -100:].abs().max() == 0


def test_speed_mixed_batch_groups_by_factor():
    torch.manual_seed(3)
    x = _sines(24)
    aug = SpeedPerturb(SR, factors=(0.9, 1.0, 1.1))
    out = aug(x)
    factors = aug.last_factors
    assert {round(f, 3) for f in factors.tolist()} == {0.9, 1.0, 1.1}
    centre = slice(SR // 4, 3 * SR // 4)
    ratio = _zero_crossings(out[:, centre]).float() / _zero_crossings(x[:, centre]).float()
    torch.testing.assert_close(ratio, factors, atol=0.02, rtol=0)
    assert torch.equal(out[factors == 1.0], x[factors == 1.0])


# ---------------------------------------------------------------- SpecAugment (report 003, Park et al.)


def _runs(flags: torch.Tensor) -> list[int]:
    """Lengths of consecutive True runs in a 1-D bool tensor."""
    runs, n = [], 0
    for f in flags.tolist():
        if f:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs + ([n] if n else [])


def test_spec_augment_masks_bounded_per_item():
    torch.manual_seed(0)
    batch, ch, n_freq, n_frames = 32, 3, 64, 188
    spec = torch.ones(batch, ch, n_freq, n_frames)
    out = SpecAugment(freq_masks=2, time_masks=2, freq_max_frac=0.1, time_max_frac=0.1)(spec)
    assert out.shape == spec.shape
    zero = out == 0
    assert torch.all(zero == zero[:, :1])  # same mask on all channels of an item
    max_f, max_t = int(0.1 * n_freq), int(0.1 * n_frames)
    freq_widths, time_widths, masked_items = [], [], set()
    for b in range(batch):
        rows = _runs(zero[b, 0].all(dim=1))
        cols = _runs(zero[b, 0].all(dim=0))
        assert len(rows) <= 2 and sum(rows) <= 2 * max_f
        assert len(cols) <= 2 and sum(cols) <= 2 * max_t
        if len(rows) == 2:
            assert max(rows) <= max_f
        if len(cols) == 2:
            assert max(cols) <= max_t
        # nothing but those bands is zeroed
        expected = zero[b, 0].all(dim=1)[:, None] | zero[b, 0].all(dim=0)[None, :]
        assert torch.equal(zero[b, 0], expected)
        freq_widths += rows
        time_widths += cols
        if rows or cols:
            masked_items.add(b)
    assert len(masked_items) > batch // 2
    assert max(freq_widths) >= max_f - 2 and max(time_widths) >= max_t - 4  # widths span the range
    assert len({tuple(zero[b, 0].all(dim=1).nonzero().flatten().tolist()) for b in range(batch)}) > 1


def test_spec_augment_identity_cases():
    spec = torch.randn(4, 1, 64, 100)
    assert torch.equal(SpecAugment(p=0.0)(spec), spec)
    assert isinstance(build_spec_augment(0, 0, 0.1, 0.1), nn.Identity)
    assert isinstance(build_spec_augment(2, 2, 0.1, 0.1), SpecAugment)
    with pytest.raises(ValueError, match="batch, channels, freq, frames"):
        SpecAugment()(torch.randn(64, 100))


# ---------------------------------------------------------------- chain, reproducibility, validation


def test_build_wave_augment_order_and_omission():
    chain = build_wave_augment(
        SR, shift_max_frac=0.3, noise_snr_db=(15, 30), noise_p=0.5, gain_db=(-6, 6), gain_p=0.5,
        speed_factors=(0.9, 1.0, 1.1), speed_p=0.5,
    )
    assert [type(s) for s in chain.stages] == [SpeedPerturb, RandomTimeShift, RandomGain, AddWhiteNoise]
    partial = build_wave_augment(SR, noise_snr_db=(15, 30), noise_p=0.0, gain_db=(-3, 3), gain_p=1.0)
    assert [type(s) for s in partial.stages] == [RandomGain]
    empty = build_wave_augment(SR)
    assert isinstance(empty, WaveAugment) and len(empty) == 0
    x = torch.randn(2, 100)
    assert torch.equal(empty(x), x)


def test_seeded_runs_are_reproducible():
    chain = build_wave_augment(
        SR, shift_max_frac=0.3, noise_snr_db=(15, 30), noise_p=0.5, gain_db=(-6, 6), gain_p=0.5,
        speed_factors=(0.9, 1.0, 1.1), speed_p=0.5,
    )
    spec_aug = build_spec_augment(2, 2, 0.1, 0.1, p=0.8)
    x = _speech_like(8, num_samples=8000)

    def run(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(seed)
        return chain(x), spec_aug(torch.ones(8, 1, 64, 32))

    a, b, c = run(7), run(7), run(8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_reversed_snr_range_message():
    with pytest.raises(ValueError) as err:
        build_wave_augment(SR, noise_snr_db=[30, 15], noise_p=1.0)
    assert str(err.value) == (
        "augment.wave.noise_snr_db=[30, 15] is reversed: lower bound must not exceed upper bound"
    )


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"noise_snr_db": (15, 30), "noise_p": 1.5}, r"augment\.wave\.noise_p=1\.5"),
        ({"gain_db": (6, -6), "gain_p": 0.5}, r"augment\.wave\.gain_db=.* is reversed"),
        ({"gain_p": -0.1}, r"augment\.wave\.gain_p=-0\.1"),
        ({"shift_max_frac": 1.0}, r"augment\.wave\.shift_max_frac=1\.0 .*\[0, 1\)"),
        ({"shift_max_frac": -0.1}, r"augment\.wave\.shift_max_frac=-0\.1"),
        ({"speed_factors": (0.9, 0.0), "speed_p": 1.0}, r"augment\.wave\.speed_factors=.*> 0"),
        ({"speed_factors": (0.9, 1.1), "speed_p": 2.0}, r"augment\.wave\.speed_p=2\.0"),
    ],
)
def test_wave_validation_names_key(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        build_wave_augment(SR, **kwargs)


def test_spec_validation_names_key():
    with pytest.raises(ValueError, match=r"augment\.spec\.freq_max_frac=1\.5"):
        build_spec_augment(2, 2, 1.5, 0.1)
    with pytest.raises(ValueError, match=r"augment\.spec\.time_masks=-1"):
        build_spec_augment(2, -1, 0.1, 0.1)
    with pytest.raises(ValueError, match=r"augment\.spec\.p=1\.2"):
        build_spec_augment(2, 2, 0.1, 0.1, p=1.2)


def test_spec_augment_equals_masking_the_full_plane():
    """The broadcast (freq × 1) / (1 × frames) masks draw and mask exactly as torchaudio on the full plane."""
    import torchaudio

    spec = torch.randn(8, 2, 64, 188)
    torch.manual_seed(5)
    out = SpecAugment(freq_masks=2, time_masks=3, freq_max_frac=0.1, time_max_frac=0.1, p=0.7)(spec)
    torch.manual_seed(5)
    keep = torch.ones(8, 1, 64, 188)
    for _ in range(2):
        keep = torchaudio.functional.mask_along_axis_iid(keep, int(0.1 * 64) + 1, 0.0, axis=2)
    for _ in range(3):
        keep = torchaudio.functional.mask_along_axis_iid(keep, int(0.1 * 188) + 1, 0.0, axis=3)
    selected = (torch.rand(8) < 0.7)[:, None, None, None]
    assert torch.equal(out, spec.masked_fill((keep == 0) & selected, 0.0))


def test_noise_leaves_unselected_items_untouched_and_float32_input_unmodified():
    torch.manual_seed(0)
    x = torch.randn(16, 4000)
    before = x.clone()
    aug = AddWhiteNoise((20.0, 20.0), p=0.5)
    out = aug(x)
    assert torch.equal(x, before)  # the input batch is not written to
    noisy = ~torch.isnan(aug.last_snr_db)
    assert 0 < int(noisy.sum()) < 16
    assert torch.equal(out[~noisy], x[~noisy])
    assert not torch.equal(out[noisy], x[noisy])


def test_time_shift_cpu_roll_equals_the_accelerator_gather():
    from ser_lightning.features.augment import _gather_rows, _roll_rows

    x = torch.randn(6, 301)
    shifts = torch.tensor([0, 5, -5, 150, -150, 300])
    assert torch.equal(_roll_rows(x, shifts), _gather_rows(x, shifts))
    assert torch.equal(_roll_rows(x, shifts)[3], torch.roll(x[3], 150))


def test_noise_accelerator_path_has_the_same_snr(monkeypatch):
    """The sync-free path (full-batch noise, used off the CPU) gives the same exact SNRs and untouched items."""
    from ser_lightning.features import augment

    monkeypatch.setattr(augment, "_on_cpu", lambda x: False)
    torch.manual_seed(0)
    x = torch.randn(12, 4000)
    for aug in (AddWhiteNoise((10.0, 25.0), p=0.5), AddWhiteNoise(sigma=0.05, p=0.5)):
        out = aug(x)
        noisy = ~torch.isnan(aug.last_snr_db)
        assert 0 < int(noisy.sum()) < 12
        assert torch.equal(out[~noisy], x[~noisy])
        realised = 10 * torch.log10(x[noisy].square().mean(-1) / (out[noisy] - x[noisy]).square().mean(-1))
        torch.testing.assert_close(realised, aug.last_snr_db[noisy], atol=1e-3, rtol=0)
    shift = RandomTimeShift(0.3)
    torch.manual_seed(1)
    gathered = shift(x)
    monkeypatch.setattr(augment, "_on_cpu", lambda x: True)
    torch.manual_seed(1)
    assert torch.equal(shift(x), gathered)  # same draws, same rolls on both paths
