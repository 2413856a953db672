"""Speech-like audio made here, for tests that need a voice without a recording (voice activity detection).

A small source-filter synthesiser in the manner of Klatt's cascade formant synthesiser (D. H. Klatt, "Software
for a cascade/parallel formant synthesizer", JASA 67(3), 1980): a glottal pulse train at a gliding pitch
(about 100-140 Hz, with a -12 dB/octave spectral tilt and a little breath noise) through three formant
resonators whose frequencies move from a consonant locus to a vowel target in each syllable (vowel formants
after Peterson & Barney, 1952, men's averages), syllables of 130-260 ms in words of two to four, short pauses
between words, and lip radiation (+6 dB/octave). It says nothing, but a speech detector hears a voice in it.

Why not a recording: no speech recording can be copied into this repository under the corpora's licences, and
the test machines have no text-to-speech program (espeak-ng is not part of the locked environment); this needs
only numpy and scipy and gives the same samples on every machine for a given seed.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

#: Formants F1-F3 in Hz of a few vowels (Peterson & Barney 1952, men's averages).
VOWELS = {"a": (730, 1090, 2440), "i": (270, 2290, 3010), "u": (300, 870, 2240), "e": (530, 1840, 2480),
          "o": (570, 840, 2410), "ae": (660, 1720, 2410), "er": (490, 1350, 1690)}
#: Formant loci of plosive onsets (roughly d, g, b): where a syllable's formants start before moving to the vowel.
LOCI = ((250, 1800, 2600), (250, 1200, 2300), (250, 900, 2200))
#: Formant bandwidths in Hz.
BANDWIDTHS = (70, 100, 140)
#: Formant tracks and amplitude change every 5 ms.
BLOCK_S = 0.005


def speech_like(duration_s: float = 3.0, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A voiced, syllabic, formant-filtered signal that a voice activity detector takes for speech.

    Args:
        duration_s: Length in seconds (the first 0.1 s and the last ~0.05 s are quiet).
        sample_rate: Rate in Hz (at least 8000).
        seed: Seed of the syllables, vowels, pitch and noise.

    Returns:
        ``(time,)`` float32 samples, peak 0.5.
    """
    rng = np.random.default_rng(seed)
    n = int(duration_s * sample_rate)
    blocks = int(np.ceil(duration_s / BLOCK_S))
    formants = np.tile(np.array(VOWELS["er"], float), (blocks, 1))
    amp = np.zeros(blocks)
    t = 0.1
    while t < duration_s - 0.25:
        for _ in range(rng.integers(2, 5)):  # a word of 2-4 syllables
            onset, vowel = rng.uniform(0.03, 0.06), rng.uniform(0.1, 0.2)
            if t + onset + vowel > duration_s - 0.05:
                break
            b0, b1, b2 = (int(round(x / BLOCK_S)) for x in (t, t + onset, t + onset + vowel))
            target = np.array(VOWELS[list(VOWELS)[rng.integers(len(VOWELS))]], float) * rng.uniform(0.95, 1.05)
            locus = np.array(LOCI[rng.integers(len(LOCI))], float)
            w = np.linspace(0, 1, b1 - b0)[:, None]
            formants[b0:b1] = (1 - w) * locus + w * target
            formants[b1:b2] = target
            amp[b0:b2] = rng.uniform(0.5, 1.0) * np.sin(np.pi * np.linspace(0.05, 0.95, b2 - b0)) ** 0.5
            t += onset + vowel
        t += rng.uniform(0.1, 0.25)  # a pause between words
    time = np.arange(n) / sample_rate
    f0 = 125 * (1 - 0.2 * time / duration_s) * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * time + rng.uniform(0, 6))
                                               + 0.05 * np.sin(2 * np.pi * 2.3 * time + rng.uniform(0, 6)))
    pulses = np.diff(np.floor(np.cumsum(f0 / sample_rate)), prepend=0.0)  # one impulse per pitch period
    source = lfilter([1.0], [1.0, -1.94, 0.9409], pulses) + 0.005 * rng.standard_normal(n)
    hop = int(BLOCK_S * sample_rate)
    out = np.zeros(n)
    states = [np.zeros(2) for _ in BANDWIDTHS]
    for k in range(blocks):  # a cascade of time-varying resonators, the filter state carried across blocks
        seg = source[k * hop:(k + 1) * hop]
        if not len(seg):
            break
        for j, bandwidth in enumerate(BANDWIDTHS):
            r, theta = np.exp(-np.pi * bandwidth / sample_rate), 2 * np.pi * min(formants[k, j], 0.45 * sample_rate) / sample_rate
            a = [1.0, -2 * r * np.cos(theta), r * r]
            seg, states[j] = lfilter([sum(a)], a, seg, zi=states[j])
        out[k * hop:k * hop + len(seg)] = seg
    out = np.diff(out * np.interp(time, np.arange(blocks) * BLOCK_S, amp), prepend=0.0)  # lip radiation
    return (0.5 * out / np.abs(out).max()).astype(np.float32)
