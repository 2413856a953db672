"""Augmented views of training clips for the frozen-feature path (``data.train_views``, ``augment.views``).

A frozen encoder's embedding of a clip is computed once and cached
(:mod:`ser_lightning.data.feature_cache`), so on-the-fly waveform augmentation would defeat the cache.
Instead each clip gets ``data.train_views`` (K) augmented copies, made once by the seeded chain of
:mod:`ser_lightning.features.robust` (noise, reverberation, telephone band, codecs, speed, pitch,
gain), embedded once and cached like the crop windows of :mod:`ser_lightning.data.crops`. Every
training clip then contributes its clean embedding and its K views' embeddings as training items,
all with the clip's label (and speaker); validation and test clips stay clean.

* **Deterministic.** View ``j`` of a clip is made with the seed :func:`view_seed` of
  ``augment.views.seed``, the clip's identity (its corpus and its path under the data root, so the
  same file gets the same views whatever else is loaded) and ``j``.
* **Like a decoded clip.** After the chain a view goes through the decoding's own level
  normalisation (``data.normalize``: peak or RMS; :func:`~ser_lightning.data.audio.normalize`) and is
  cut to ``data.duration_s``, so it reaches the encoder as a recording with that degradation would
  (with ``data.normalize=peak`` or ``rms`` this also undoes a plain ``gain`` stage; gain still changes
  what a codec sees).
* **Which clips.** Views are embedded for every clip of each corpus that has training or validation
  clips in the run (the refit trains on the validation speakers too), test clips of such a corpus
  included: one cache then serves every fold and seed of a corpus, and clips of a corpus used only for
  testing (``data.split=corpus``) cost nothing.
* **One cache per view index** (:func:`views_identity`): view ``j``'s embeddings are keyed on ``j``, the
  seed, every active stage's resolved settings and the versions of the libraries that compute them, on
  top of the whole clips' key (audio cache, clips, encoder). A change of the chain or the seed
  re-extracts; the same settings reuse; a larger K reuses the views it already has and extracts only
  the new ones (view ``j`` does not depend on K).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from ser_lightning.data.audio import normalize
from ser_lightning.features.robust import ViewChain, build_view_chain, stage_seed

#: Bump when the way a view is made changes (so old caches are not reused).
VIEWS_FORMAT = 1
#: Libraries whose output the views depend on (their versions enter the cache key).
VIEW_LIBRARIES = ("audiomentations", "pyroomacoustics", "av", "soxr", "scipy", "numpy", "python-stretch")


def check_view_settings(train_views: int, chain: ViewChain, clip_length: str, train_windows: bool,
                        speaker_norm: bool) -> None:
    """Reject bad view settings with one line naming the setting.

    Args:
        train_views: ``data.train_views`` (K).
        chain: The chain built from ``augment.views``.
        clip_length: ``data.clip_length``.
        train_windows: Whether the training clips are crop windows on the frozen-feature path
            (``data.train_crop_s`` with ``data.train_crops`` > 0).
        speaker_norm: ``data.speaker_norm``.

    Raises:
        ValueError: K not a whole number >= 0; K > 0 without a stage in ``augment.views``, with fixed-length
            clips, with training windows or with per-speaker normalisation.
    """
    if isinstance(train_views, bool) or not isinstance(train_views, int) or train_views < 0:
        raise ValueError(f"data.train_views={train_views!r} must be a whole number of augmented views per training "
                         "clip, 0 (off) or more")
    if train_views == 0:
        return
    if len(chain) == 0:
        raise ValueError(f"data.train_views={train_views} needs augment.views with at least one stage of probability "
                         "> 0 (e.g. augment=robust)")
    if clip_length != "whole":
        raise ValueError(f"data.train_views={train_views} embeds views of whole clips for a frozen encoder; "
                         f"data.clip_length={clip_length} (use a frozen encoder model, e.g. model=whisper_tiny)")
    if train_windows:
        raise ValueError(f"data.train_views={train_views} makes views of whole training clips, but data.train_crop_s "
                         "with data.train_crops > 0 makes the training items windows; set data.train_crops=0 or "
                         "data.train_views=0")
    if speaker_norm:
        raise ValueError(f"data.train_views={train_views} does not combine with data.speaker_norm=true "
                         "(per-speaker statistics of clean clips); set one of them off")


def clip_identity(path: str, corpus: str, root: str | Path) -> str:
    """A clip's identity for its views' seeds: ``<corpus>:<path relative to the data root>``
    (the absolute path where the file is not under ``root``)."""
    p = Path(path)
    try:
        rel = p.relative_to(Path(root)).as_posix()
    except ValueError:
        rel = p.as_posix()
    return f"{corpus}:{rel}"


def view_seed(seed: int, clip_id: str, view: int) -> int:
    """The seed of view ``view`` of clip ``clip_id`` under ``augment.views.seed`` = ``seed``."""
    return stage_seed(int(seed), clip_id, int(view))


def make_view(wave: np.ndarray, chain: ViewChain, sample_rate: int, seed: int, normalize_mode: str,
              target_rms_dbfs: float, max_samples: int) -> tuple[np.ndarray, list[dict]]:
    """One augmented view of one clip: the chain, the decoding's normalisation, cut to ``max_samples``.

    Args:
        wave: The clip's valid samples ``(time,)``.
        chain: The view chain. sample_rate: Hz. seed: :func:`view_seed`.
        normalize_mode: ``data.normalize``. target_rms_dbfs: its RMS target.
        max_samples: ``data.duration_s`` in samples.

    Returns:
        ``(view (time',) float32 with time' <= max_samples, what each applied stage drew)``.
    """
    x, applied = chain(np.asarray(wave, dtype=np.float32), sample_rate, seed)
    x = normalize(x, normalize_mode, target_rms_dbfs)[:max_samples]
    return np.ascontiguousarray(x, dtype=np.float32), applied


def library_versions() -> dict[str, str]:
    """Installed versions of :data:`VIEW_LIBRARIES` (``"absent"`` where one is not installed)."""
    out = {}
    for name in VIEW_LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def _plain(value: Any) -> Any:
    """JSON-able copy (tuples → lists, numpy scalars → Python)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def views_identity(chain: ViewChain, view: int, seed: int) -> dict:
    """What the cache of view ``view`` is keyed on besides the clips and the encoder (see the module docstring).

    Args:
        chain: The view chain (its active stages' resolved settings and probabilities are read).
        view: The view index ``j`` (0 ... K - 1).
        seed: ``augment.views.seed``.
    """
    stages = [{"stage": name, "p": p, **_plain(vars(t))} for name, t, p in chain.stages]
    return {"format": VIEWS_FORMAT, "view": int(view), "seed": int(seed), "stages": stages,
            "libraries": library_versions()}


def build_views(settings: Mapping[str, Any] | None) -> tuple[ViewChain, int]:
    """The chain and seed of an ``augment.views`` block (``seed`` default 0).

    Raises:
        ValueError: a bad block (:func:`~ser_lightning.features.robust.build_view_chain`) or seed.
    """
    settings = dict(settings or {})
    seed = settings.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"augment.views.seed={seed!r} must be a whole number >= 0")
    return build_view_chain(settings), seed
