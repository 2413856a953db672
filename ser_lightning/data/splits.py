"""Train/validation/test assignment: speaker-independent by default.

Modes (``data.split``):

* ``speaker`` (default) – disjoint speakers in train/val/test, drawn with the seed; male and
  female speakers alternate so held-out sets are gender-balanced where gender is known.
* ``kfold`` – fold ``data.fold`` of ``data.n_folds`` contiguous speaker folds is the test set
  (RAVDESS, 6 folds: actors 1–4, 5–8, …, 21–24); ``val_speakers`` of the remaining speakers,
  drawn with the seed, validate. ``n_folds`` = number of speakers gives leave-one-speaker-out.
  ``data.speaker_folds`` (a list of speaker-id lists) gives the folds explicitly instead, e.g.
  EmoBox's RAVDESS actor groups.
* ``random`` – stratified random split of files. Speakers leak between sets: a warning is logged.
* ``partition`` – the corpus's own partition, ``fields["partition"]`` (MSP-Podcast's
  ``Split_Set``, EmoBox's official fold ``data.fold``): ``train``, ``val``, ``test``; any other
  partition (MSP-Podcast's Test2) is ``unused``. Without a ``val`` partition, ``val_speakers``
  speakers of the *training* partition validate (clips at random, ``val_frac``, where speakers
  are unknown), so the test partition never steers early stopping.
* ``session`` – leave one session out (IEMOCAP): clips whose ``fields["session"]`` equals
  ``data.fold`` are the test set; ``val_speakers`` of the other sessions' speakers validate.
"""

from __future__ import annotations

import logging
import random
import re
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from ser_lightning.data.manifest import Utterance

log = logging.getLogger(__name__)

SPLIT_MODES = ("speaker", "kfold", "random", "partition", "session")
#: Names a corpus's partition field may carry → split name.
PARTITION_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "dev": "val",
                   "development": "val", "test": "test"}
SPLITS = ("train", "val", "test")


def _natural_key(s: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def speaker_folds(speakers: Sequence[str], n_folds: int) -> list[list[str]]:
    """Split speakers, in natural sort order, into ``n_folds`` contiguous folds.

    Args:
        speakers: Speaker ids (duplicates ignored).
        n_folds: Number of folds, 2 … number of speakers.

    Returns:
        ``n_folds`` lists of speakers; sizes differ by at most one.

    Raises:
        ValueError: if ``n_folds`` is out of range.
    """
    ordered = sorted(set(speakers), key=_natural_key)
    if not 2 <= n_folds <= len(ordered):
        raise ValueError(f"data.n_folds={n_folds} must be between 2 and the number of speakers ({len(ordered)})")
    return [list(f) for f in np.array_split(np.array(ordered, dtype=object), n_folds)]


def explicit_folds(folds: Sequence[Sequence[str]], speakers: Sequence[str]) -> list[list[str]]:
    """Check explicit speaker folds (``data.speaker_folds``) against the corpus's speakers.

    Args:
        folds: Lists of speaker ids, one list per fold (at least two; speakers in no fold always train).
        speakers: Speaker ids present in the data.

    Returns:
        The folds as lists of strings.

    Raises:
        ValueError: fewer than two folds, an empty fold, a speaker that is not in the data, or a
            speaker in two folds (the message names it).
    """
    out = [[str(s) for s in f] for f in folds]
    if len(out) < 2 or any(not f for f in out):
        raise ValueError(f"data.speaker_folds must hold at least two non-empty lists of speaker ids, got {out}")
    known, seen = set(speakers), set()
    for f in out:
        for s in f:
            if s not in known:
                raise ValueError(f"data.speaker_folds names speaker {s!r}, which is not in the data "
                                 f"(speakers: {sorted(known, key=_natural_key)[:6]}...)")
            if s in seen:
                raise ValueError(f"data.speaker_folds lists speaker {s!r} in more than one fold")
            seen.add(s)
    return out


def _balanced_draw(candidates: Sequence[str], k: int, gender: dict[str, str | None], rng: random.Random) -> list[str]:
    """Draw k speakers, alternating genders where known."""
    groups: dict[str | None, list[str]] = defaultdict(list)
    for s in sorted(candidates, key=_natural_key):
        groups[gender.get(s)].append(s)
    for g in groups.values():
        rng.shuffle(g)
    order = sorted(groups, key=lambda g: str(g))
    picked: list[str] = []
    while len(picked) < k and any(groups.values()):
        for g in order:
            if groups[g] and len(picked) < k:
                picked.append(groups[g].pop())
    return picked


def assign_splits(
    utterances: Sequence[Utterance],
    labels: Sequence[int],
    mode: str = "speaker",
    seed: int = 0,
    val_speakers: int = 4,
    test_speakers: int = 4,
    fold: int | None = None,
    n_folds: int = 6,
    val_frac: float = 0.1,
    test_frac: float = 0.2,
    folds: Sequence[Sequence[str]] | None = None,
) -> list[str]:
    """Assign every utterance to ``"train"``, ``"val"`` or ``"test"``.

    Args:
        utterances: The files (their ``speaker`` and ``gender`` are used).
        labels: Class index per file (used to stratify ``random``).
        mode: ``"speaker"``, ``"kfold"`` or ``"random"`` (see module docstring).
        seed: Seed; the same seed and inputs give the same split.
        val_speakers: Validation speakers (``speaker`` and ``kfold``).
        test_speakers: Test speakers (``speaker``).
        fold: Test fold index for ``kfold``, 0 … ``n_folds - 1``.
        n_folds: Number of speaker folds for ``kfold``.
        val_frac: Validation fraction for ``random``.
        test_frac: Test fraction for ``random``.
        folds: Explicit speaker folds for ``kfold`` (lists of speaker ids; ``n_folds`` is then
            their number); ``None``: ``n_folds`` contiguous folds.

    Returns:
        One split name per utterance (``"unused"`` for a ``partition`` the split does not use).

    Raises:
        ValueError: unknown mode, a fold out of range, too few speakers for the request, or
            explicit folds naming unknown or repeated speakers.
    """
    if mode not in SPLIT_MODES:
        raise ValueError(f"data.split={mode!r} is not one of {list(SPLIT_MODES)}")
    if mode == "partition":
        return _partition_splits(utterances, labels, seed, val_speakers, val_frac)
    if mode == "session":
        return _session_splits(utterances, fold, seed, val_speakers)
    rng = random.Random(seed)
    if mode == "random":
        log.warning(
            "data.split=random: files are split at random, so the same speakers appear in train, "
            "val and test; accuracy will be optimistic (not speaker-independent)"
        )
        if not (0 < val_frac < 1 and 0 < test_frac < 1 and val_frac + test_frac < 1):
            raise ValueError(f"data.val_frac={val_frac} and data.test_frac={test_frac} must be in (0, 1) with a sum below 1")
        out = ["train"] * len(utterances)
        by_label: dict[int, list[int]] = defaultdict(list)
        for i, y in enumerate(labels):
            by_label[y].append(i)
        for y in sorted(by_label):
            idx = by_label[y]
            rng.shuffle(idx)
            n_test, n_val = round(len(idx) * test_frac), round(len(idx) * val_frac)
            for i in idx[:n_test]:
                out[i] = "test"
            for i in idx[n_test : n_test + n_val]:
                out[i] = "val"
        return out

    gender = {u.speaker: u.gender for u in utterances}
    speakers = sorted(gender, key=_natural_key)
    if mode == "kfold":
        if folds is not None:
            folds = explicit_folds(folds, speakers)
            n_folds = len(folds)
        else:
            folds = speaker_folds(speakers, n_folds)
        if fold is None or not 0 <= fold < n_folds:
            raise ValueError(f"data.fold={fold} must be an integer in 0..{n_folds - 1} (data.n_folds={n_folds})")
        test = set(folds[fold])
    else:
        if test_speakers < 1 or val_speakers < 1 or test_speakers + val_speakers >= len(speakers):
            raise ValueError(
                f"data.test_speakers={test_speakers} and data.val_speakers={val_speakers} need at least "
                f"one each and must leave training speakers ({len(speakers)} speakers in total)"
            )
        test = set(_balanced_draw(speakers, test_speakers, gender, rng))
    rest = [s for s in speakers if s not in test]
    if val_speakers < 1 or val_speakers >= len(rest):
        raise ValueError(f"data.val_speakers={val_speakers} must be in 1..{len(rest) - 1} ({len(rest)} speakers remain after the test set)")
    val = set(_balanced_draw(rest, val_speakers, gender, rng))
    return ["test" if u.speaker in test else "val" if u.speaker in val else "train" for u in utterances]


def _val_from_train(utterances: Sequence[Utterance], labels: Sequence[int], out: list[str], seed: int,
                    val_speakers: int, val_frac: float) -> None:
    """Turn part of the ``train`` rows of ``out`` into ``val``: whole speakers where every training
    clip has a known speaker (``fields["speaker_known"]`` is not ``"false"``), else a stratified
    random ``val_frac`` of the clips (logged)."""
    rng = random.Random(seed)
    train = [i for i, s in enumerate(out) if s == "train"]
    known = all(utterances[i].fields.get("speaker_known", "true") != "false" for i in train)
    speakers = sorted({utterances[i].speaker for i in train}, key=_natural_key)
    if known and len(speakers) > 1:
        if not 1 <= val_speakers < len(speakers):
            raise ValueError(f"data.val_speakers={val_speakers} must be in 1..{len(speakers) - 1} (speakers of the "
                             "training partition)")
        gender = {utterances[i].speaker: utterances[i].gender for i in train}
        val = set(_balanced_draw(speakers, val_speakers, gender, rng))
        for i in train:
            if utterances[i].speaker in val:
                out[i] = "val"
        return
    log.warning("validation clips drawn at random (data.val_frac=%s) from the training partition: its speakers are "
                "unknown or one", val_frac)
    by_label: dict[int, list[int]] = defaultdict(list)
    for i in train:
        by_label[labels[i]].append(i)
    for y in sorted(by_label):
        idx = by_label[y]
        rng.shuffle(idx)
        for i in idx[: max(1, round(len(idx) * val_frac)) if len(idx) > 1 else 0]:
            out[i] = "val"


def _partition_splits(utterances: Sequence[Utterance], labels: Sequence[int], seed: int, val_speakers: int,
                      val_frac: float) -> list[str]:
    """``data.split=partition`` (see the module docstring)."""
    missing = [u.path for u in utterances if "partition" not in u.fields]
    if missing:
        raise ValueError(f"data.split=partition: {len(missing)} clip(s) have no partition (e.g. {missing[0]}); it needs "
                         "a corpus with its own partitions (msppodcast, esd with train/evaluation/test folders) or "
                         "data=emobox with data.fold")
    out = [PARTITION_NAMES.get(u.fields["partition"].lower(), "unused") for u in utterances]
    unused = {u.fields["partition"] for u, s in zip(utterances, out) if s == "unused"}
    if unused:
        log.warning("data.split=partition: %d clip(s) of partition(s) %s are not used", out.count("unused"), sorted(unused))
    if "val" not in out:
        _val_from_train(utterances, labels, out, seed, val_speakers, val_frac)
    return out


def _session_splits(utterances: Sequence[Utterance], fold: int | str | None, seed: int, val_speakers: int) -> list[str]:
    """``data.split=session``: session ``fold`` is the test set (see the module docstring)."""
    sessions = sorted({u.fields.get("session", "") for u in utterances} - {""}, key=_natural_key)
    if not sessions or any("session" not in u.fields for u in utterances):
        raise ValueError("data.split=session needs a session on every clip (IEMOCAP)")
    if fold is None or str(fold) not in sessions:
        raise ValueError(f"data.fold={fold} must name the held-out session, one of {sessions} (data.split=session)")
    out = ["test" if u.fields["session"] == str(fold) else "train" for u in utterances]
    _val_from_train(utterances, [0] * len(utterances), out, seed, val_speakers, 0.1)
    return out
