"""A speaker's statistics for a model trained with per-speaker normalisation (``data.speaker_norm=true``).

Such a model (a separate, transductive protocol: :mod:`ser_lightning.data.speaker_norm`) needs the speaker's
statistics: ``speaker_reference=[a.wav,b.wav,...]`` (or a folder) names recordings of the same speaker; their
windows' pooled encoder states give a mean and sd (:func:`speaker_reference_statistics`), and every window to
classify is standardised with them before the head. Without a reference such a model refuses to predict; a
reference given to a plain model is an error too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_lightning.data.audio import (
    AudioDecodeError,
    trim_silence,
)
from ser_lightning.data.speaker_norm import speaker_statistics
from ser_lightning.inference.loading import LoadedModel, reference_refused
from ser_lightning.inference.windows import (
    AudioArray,
    check_hop_s,
    decode_mono,
    make_window,
    window_length,
    window_starts,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpeakerStats:
    """A speaker's statistics for a speaker-normalised model (:func:`speaker_reference_statistics`).

    Attributes:
        mean: Feature-wise mean of the pooled hidden states ``(hidden_states, pooled_dim)``.
        sd: Feature-wise standard deviation (at least :data:`~ser_lightning.data.speaker_norm.SD_FLOOR`).
        files: Reference files used.
        windows: Model windows they gave (the number of embeddings behind the statistics).
    """

    mean: np.ndarray
    sd: np.ndarray
    files: int
    windows: int


def speaker_reference_statistics(
    reference: Sequence[tuple[Path | AudioArray, str]],
    model: LoadedModel,
    *,
    hop_s: float | None = None,
    trim: bool | None = None,
    trim_db: float | None = None,
    silence_dbfs: float = -60.0,
    batch_size: int = 16,
) -> SpeakerStats:
    """Mean and sd of the pooled hidden states of a speaker's reference recordings.

    Every reference recording goes through the prediction path (decoding, resampling, optional
    silence trimming, windows of the model's clip length every ``hop_s`` seconds); each window's
    pooled hidden states are one sample. In training the statistics came from all of a speaker's
    clips (about 60 per RAVDESS actor, every emotion in equal shares), so a reference should hold
    several recordings of the speaker, ideally not all of one emotion.

    Args:
        reference: ``[(path or AudioArray, display_name)]`` (see :func:`find_audio`).
        model: A speaker-normalised :class:`LoadedModel` (``speaker_norm=True``).
        hop_s: Seconds between window starts; ``None`` = half the model's clip.
        trim: Trim leading/trailing silence; ``None`` = as the model was trained.
        trim_db: Trimming threshold (dB below the loudest frame); ``None`` = the model's.
        silence_dbfs: All-silent threshold (dBFS).
        batch_size: Windows per forward pass.

    Returns:
        The :class:`SpeakerStats`.

    Raises:
        ValueError: the model is not speaker-normalised, a reference recording cannot be read (named),
            or the reference gives fewer than 2 windows (no spread to estimate).
    """
    if not model.speaker_norm or model.embed is None:
        raise ValueError(reference_refused(model.source))
    cfg = model.audio_cfg
    hop_s, hop = check_hop_s(hop_s, cfg)
    trim = cfg.trim_silence if trim is None else bool(trim)
    trim_db = cfg.trim_db if trim_db is None else float(trim_db)
    windows, lengths = [], []
    for path, _ in reference:
        try:
            wave, _ = decode_mono(path, cfg.sample_rate, silence_dbfs)
        except AudioDecodeError as err:
            raise ValueError(f"speaker_reference: {err}") from None
        if trim:
            wave = trim_silence(wave, cfg.sample_rate, trim_db)
        starts = window_starts(len(wave), cfg.num_samples, hop)
        windows += [make_window(wave, s, cfg) for s in starts]
        lengths += [window_length(len(wave), s, cfg) for s in starts]
    if len(windows) < 2:
        raise ValueError(f"speaker_reference: {len(reference)} recording(s) gave {len(windows)} window(s); at least 2 "
                         "are needed to estimate the speaker's spread (give several recordings of the speaker)")
    pooled = np.concatenate([model.embed(np.stack(windows[i:i + batch_size]),
                                         np.asarray(lengths[i:i + batch_size]) if model.takes_lengths else None)
                             for i in range(0, len(windows), batch_size)])
    mean, sd = speaker_statistics(pooled)
    log.info("speaker reference: %d recording(s), %d window(s)", len(reference), len(windows))
    return SpeakerStats(mean, sd, len(reference), len(windows))
