"""Per-speaker normalisation of clip embeddings (``data.speaker_norm=true``): a protocol of its own.

Each speaker's clip embeddings are standardised feature-wise with that speaker's own mean and
standard deviation, computed from *all* of that speaker's clips in the data — every split, the
test speakers' clips included — without their labels. This removes speaker-specific offsets (voice,
recording level and channel) before the head sees the embeddings, and it is **transductive**: a
test speaker's statistics come from that speaker's own unlabelled test clips. On a corpus where
every speaker utters every emotion in equal shares (RAVDESS), a speaker's mean is the centre of
that speaker's emotions, which flatters the method; on real data a speaker's recordings may lean
to one emotion. Results are therefore reported as a separate protocol (:data:`PROTOCOL_SPEAKER_NORM`),
beside the plain one (:data:`PROTOCOL_PLAIN`), never instead of it. The method follows the
speaker-level normalisation common in speech emotion recognition (e.g. Busso et al., "Iterative
feature normalization scheme for automatic emotion detection from speech", IEEE Trans. Affective
Computing 4(4), 2013), here applied to frozen features.

In prediction (``predict.py speaker_reference=...``, ``EmotionModel.predict(..., speaker_reference=...)``)
the statistics come from a set of recordings of the speaker given by the user.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

log = logging.getLogger(__name__)

#: ``metrics.json["protocol"]`` of a run without per-speaker normalisation.
PROTOCOL_PLAIN = "plain"
#: ``metrics.json["protocol"]`` of a run with ``data.speaker_norm=true``.
PROTOCOL_SPEAKER_NORM = ("speaker_norm (transductive: each speaker's embeddings standardised with statistics from "
                         "all of that speaker's clips, test speakers included, labels unused)")
#: Lower bound of a standard deviation (a feature that is constant for a speaker is centred, not blown up).
SD_FLOOR = 1e-5


def protocol_name(speaker_norm: bool) -> str:
    """:data:`PROTOCOL_SPEAKER_NORM` or :data:`PROTOCOL_PLAIN`."""
    return PROTOCOL_SPEAKER_NORM if speaker_norm else PROTOCOL_PLAIN


def speaker_statistics(x: np.ndarray, sd_floor: float = SD_FLOOR) -> tuple[np.ndarray, np.ndarray]:
    """Feature-wise mean and standard deviation over one speaker's clips.

    Args:
        x: Embeddings ``(n_clips, *feature_shape)``, e.g. ``(n_clips, hidden_states, pooled_dim)``.
        sd_floor: Lower bound of the standard deviation.

    Returns:
        ``(mean, sd)``, each ``feature_shape`` float64; ``sd`` is the population standard deviation
        (``ddof=0``), at least ``sd_floor``.

    Raises:
        ValueError: no clips.
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        raise ValueError("speaker statistics need at least one clip")
    return x.mean(axis=0), np.maximum(x.std(axis=0), sd_floor)


def standardise(x: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """``(x - mean) / sd`` as float32.

    Args:
        x: Embeddings ``(n, *feature_shape)``.
        mean, sd: ``feature_shape`` (from :func:`speaker_statistics`).
    """
    return ((np.asarray(x, dtype=np.float64) - mean) / sd).astype(np.float32)


def standardise_per_speaker(x: np.ndarray, speakers: Sequence[str],
                            sd_floor: float = SD_FLOOR) -> tuple[np.ndarray, list[tuple[str, int, str]]]:
    """Standardise every speaker's rows with that speaker's own statistics (labels are never read).

    A speaker with a single clip has no spread to estimate: that clip is standardised with the
    statistics of every clip of the data instead (a warning names the speakers; the returned
    table says which statistics each speaker got).

    Args:
        x: Embeddings ``(n_clips, *feature_shape)`` (e.g. ``(n_clips, hidden_states, pooled_dim)``).
        speakers: Speaker of each row ``(n_clips,)``.
        sd_floor: Lower bound of a standard deviation.

    Returns:
        ``(normalised, table)``: the standardised copy ``(n_clips, *feature_shape)`` float32 and
        one ``(speaker, clips, statistics)`` row per speaker, ``statistics`` being ``own`` or
        ``all clips (single clip)``.

    Raises:
        ValueError: ``speakers`` does not have one entry per row, or no rows.
    """
    x = np.asarray(x)
    speakers = np.asarray([str(s) for s in speakers])
    if len(speakers) != len(x):
        raise ValueError(f"speaker normalisation: {len(speakers)} speakers for {len(x)} embedding rows")
    if len(x) == 0:
        raise ValueError("speaker normalisation: no embeddings")
    out = np.empty(x.shape, dtype=np.float32)
    table, single = [], []
    overall = None
    for spk in sorted(set(speakers.tolist())):
        idx = np.flatnonzero(speakers == spk)
        if len(idx) > 1:
            mean, sd = speaker_statistics(x[idx], sd_floor)
            table.append((spk, len(idx), "own"))
        else:
            if overall is None:
                overall = speaker_statistics(x, sd_floor)
            mean, sd = overall
            table.append((spk, 1, "all clips (single clip)"))
            single.append(spk)
        out[idx] = standardise(x[idx], mean, sd)
    if single:
        log.warning("data.speaker_norm: %d speaker(s) have a single clip and get the statistics of all clips "
                    "instead of their own: %s", len(single), single[:20])
    return out, table
