"""Train/validation/test assignment: speaker-independent by default.

Modes (``data.split``):

* ``speaker`` (default) – disjoint speakers in train/val/test, drawn with the seed; male and
  female speakers alternate so held-out sets are gender-balanced where gender is known.
* ``kfold`` – fold ``data.fold`` of ``data.n_folds`` contiguous speaker folds is the test set
  (RAVDESS, 6 folds: actors 1–4, 5–8, …, 21–24); ``val_speakers`` of the remaining speakers,
  drawn with the seed, validate. ``n_folds`` = number of speakers gives leave-one-speaker-out.
  With ``data.speaker_folds`` (a list of speaker groups, e.g. EmoBox's RAVDESS actor groups,
  ``folds=emobox_ravdess``) group ``data.fold`` is the test set instead and ``n_folds`` is
  unused; validation speakers still come from that fold's training speakers only. Speakers are
  named as the corpus names them (RAVDESS actor ``1`` or ``"01"``) or by their full id
  (``ravdess_01``); see :func:`resolve_speaker_folds`.
* ``random`` – stratified random split of files. Speakers leak between sets: a warning is logged.
* ``partition`` – the corpus's own partition, ``fields["partition"]`` (MSP-Podcast's
  ``Split_Set``, EmoBox's official fold ``data.fold``): ``train``, ``val``, ``test``; any other
  partition (MSP-Podcast's Test2) is ``unused``. Without a ``val`` partition, ``val_speakers``
  speakers of the *training* partition validate (clips at random, ``val_frac``, where speakers
  are unknown), so the test partition never steers early stopping.
* ``session`` – leave one session out (IEMOCAP): clips whose ``fields["session"]`` equals
  ``data.fold`` are the test set; ``val_speakers`` of the other sessions' speakers validate.
* ``corpus`` – across corpora: every clip of ``data.test_corpora`` is the test set; the corpora of
  ``data.train_corpora`` (``null``: every other corpus) train, and one speaker in six of each of them
  (at least one, never all of a corpus's speakers; drawn with the seed) validates. Clips of a corpus in
  neither list are ``unused``, so the same ``data.corpora`` (one decoded cache, one frozen-feature cache)
  serves every cell of a cross-corpus protocol.

* ``all`` – every clip trains; nothing validates or tests (the final model of a recipe whose settings, such as
  its number of epochs, were chosen beforehand by a cross-validation; ``train.py`` then fits for
  ``trainer.max_epochs`` and writes ``checkpoints/final.ckpt``).

With ``data.kfold_corpus`` set, ``kfold`` folds that corpus's speakers only (its fold is the test set,
``val_speakers`` of its other speakers validate) and the other corpora of ``data.train_corpora``
(``null``: all of them) train whole; a corpus in neither is ``unused``.
"""

from __future__ import annotations

import logging
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from ser_lightning.data.manifest import Utterance

log = logging.getLogger(__name__)

SPLIT_MODES = ("speaker", "kfold", "random", "partition", "session", "corpus", "all")
#: Share of each training corpus's speakers that validates with ``data.split=corpus`` (RAVDESS: 4 of 24).
CORPUS_VAL_SHARE = 1 / 6
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


def _local_name(speaker: str, corpus: str) -> str:
    """The corpus's own name of a speaker id: ``ravdess_01`` → ``01`` (ids are ``<corpus>_<name>``)."""
    prefix = f"{corpus}_"
    return speaker[len(prefix):] if corpus and speaker.startswith(prefix) else speaker


def _matches(name: str, speaker: str, corpus: str) -> bool:
    """Whether config name ``name`` denotes speaker id ``speaker``: the full id, the corpus's own
    name, or the same number (``1`` denotes RAVDESS actor ``01``)."""
    local = _local_name(speaker, corpus)
    if name in (speaker, local):
        return True
    return name.isdigit() and local.isdigit() and int(name) == int(local)


def check_speaker_folds(groups: Any, setting: str = "data.speaker_folds") -> None:
    """Check the shape of speaker groups without the corpus (see :func:`resolve_speaker_folds`).

    Raises:
        ValueError: not a list of at least two non-empty lists of speaker names (numbers or
            strings); the message names ``setting``.
    """
    if isinstance(groups, (str, bytes)) or not isinstance(groups, Sequence) or len(groups) < 2 or any(
            isinstance(g, (str, bytes)) or not isinstance(g, Sequence) or not g for g in groups):
        raise ValueError(f"{setting}={_show(groups)} must be a list of at least two non-empty speaker lists, "
                         "e.g. [[1, 11, 20, 21], [4, 10, 12, 14]]")
    for k, group in enumerate(groups):
        for name in group:
            if isinstance(name, bool) or not isinstance(name, (int, str)):
                raise ValueError(f"{setting}: {name!r} in group {k} is not a speaker name (a number or a string)")


def _show(value: Any) -> str:
    try:
        from omegaconf import OmegaConf

        return repr(OmegaConf.to_container(value)) if OmegaConf.is_config(value) else repr(value)
    except ImportError:  # pragma: no cover
        return repr(value)


def resolve_speaker_folds(groups: Sequence[Sequence[str | int]], speakers: dict[str, str],
                          setting: str = "data.speaker_folds") -> list[list[str]]:
    """Turn speaker groups as written in the config into lists of speaker ids.

    A name matches a speaker id when it is the full id (``ravdess_01``), the corpus's own name of
    the speaker (the id without its ``<corpus>_`` prefix: ``01``, ``Ses01F``, ``1001``), or the
    same number (``1`` matches actor ``01``).

    Args:
        groups: At least two non-empty lists of speaker names (``int`` or ``str``).
        speakers: Every speaker id of the corpus → its corpus name (``{"ravdess_01": "ravdess"}``).
        setting: Config setting named in error messages.

    Returns:
        One list of speaker ids per group, in the given order.

    Raises:
        ValueError: not a list of at least two non-empty lists; a name that matches no speaker
            of the corpus, or several (two corpora with an actor ``01``: give the full id); a
            speaker in two groups. Speakers in no group are not an error: they always train
            (or validate) and are logged.
    """
    check_speaker_folds(groups, setting)
    ordered = sorted(speakers, key=_natural_key)
    out: list[list[str]] = []
    where: dict[str, int] = {}
    for k, group in enumerate(groups):
        ids = []
        for name in group:
            hits = [s for s in ordered if _matches(str(name), s, speakers[s])]
            if not hits:
                shown = ", ".join(ordered[:6]) + (", ..." if len(ordered) > 6 else "")
                raise ValueError(f"{setting}: speaker {name!r} of group {k} is not a speaker of the corpus "
                                 f"({len(ordered)} speakers: {shown})")
            if len(hits) > 1:
                raise ValueError(f"{setting}: speaker {name!r} of group {k} is ambiguous ({', '.join(hits)}); "
                                 "give the full speaker id")
            sid = hits[0]
            if sid in where:
                raise ValueError(f"{setting}: speaker {sid} is in group {where[sid]} and group {k}; "
                                 "each speaker may be in one group only")
            where[sid] = k
            ids.append(sid)
        out.append(ids)
    outside = [s for s in ordered if s not in where]
    if outside:
        log.warning("%s: %d speaker(s) in no group always train or validate, never test: %s", setting,
                    len(outside), outside)
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
    speaker_groups: Sequence[Sequence[str | int]] | None = None,
    test_corpora: Sequence[str] | None = None,
    train_corpora: Sequence[str] | None = None,
    kfold_corpus: str | None = None,
) -> list[str]:
    """Assign every utterance to ``"train"``, ``"val"`` or ``"test"`` (or ``"unused"``).

    Args:
        utterances: The files (their ``speaker`` and ``gender`` are used).
        labels: Class index per file (used to stratify ``random``).
        mode: ``"speaker"``, ``"kfold"`` or ``"random"`` (see module docstring).
        seed: Seed; the same seed and inputs give the same split.
        val_speakers: Validation speakers (``speaker`` and ``kfold``).
        test_speakers: Test speakers (``speaker``).
        fold: Test fold index for ``kfold``, 0 … ``n_folds - 1`` (0 … number of groups − 1 with
            ``speaker_groups``).
        n_folds: Number of contiguous speaker folds for ``kfold`` (unused with ``speaker_groups``).
        val_frac: Validation fraction for ``random``.
        test_frac: Test fraction for ``random``.
        speaker_groups: ``data.speaker_folds``: explicit speaker groups for ``kfold``, named as
            :func:`resolve_speaker_folds` reads them; ``None`` for contiguous folds.
        test_corpora: ``data.test_corpora``: the test corpora of ``corpus`` mode.
        train_corpora: ``data.train_corpora``: the training corpora of ``corpus`` mode and the extra
            training corpora of ``kfold`` with ``kfold_corpus``; ``None``: every other corpus.
        kfold_corpus: ``data.kfold_corpus``: the corpus whose speakers ``kfold`` folds; ``None``: all speakers.

    Returns:
        One split name per utterance (``"unused"`` for a ``partition`` the split does not use, and for
        the corpora a ``corpus``-mode or ``kfold_corpus`` split leaves out).

    Raises:
        ValueError: unknown mode, a fold out of range, too few speakers for the request, speaker
            groups with another mode than ``kfold``, bad groups (:func:`resolve_speaker_folds`), or
            corpus lists that name absent corpora, overlap or leave nothing to train on.
    """
    if mode not in SPLIT_MODES:
        raise ValueError(f"data.split={mode!r} is not one of {list(SPLIT_MODES)}")
    if speaker_groups is not None and mode != "kfold":
        raise ValueError(f"data.speaker_folds is set but data.split={mode}: speaker groups are the test folds of "
                         "data.split=kfold")
    check_corpus_split(mode, [u.corpus for u in utterances], test_corpora, train_corpora, kfold_corpus)
    if mode == "corpus":
        return _corpus_splits(utterances, test_corpora, train_corpora, seed)
    if mode == "all":
        return ["train"] * len(utterances)
    if kfold_corpus is not None:
        return _kfold_in_corpus(utterances, labels, kfold_corpus, train_corpora, seed=seed, val_speakers=val_speakers,
                                fold=fold, n_folds=n_folds, speaker_groups=speaker_groups)
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
        if speaker_groups is not None:
            folds = resolve_speaker_folds(speaker_groups, {u.speaker: u.corpus for u in utterances})
            if fold is None or isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < len(folds):
                raise ValueError(f"data.fold={fold} must be an integer in 0..{len(folds) - 1} "
                                 f"({len(folds)} groups in data.speaker_folds)")
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


def check_corpus_split(mode: str, corpora: Sequence[str], test_corpora: Sequence[str] | None,
                       train_corpora: Sequence[str] | None, kfold_corpus: str | None) -> None:
    """Check ``data.test_corpora``, ``data.train_corpora`` and ``data.kfold_corpus`` against the split mode
    and the corpora present.

    Args:
        mode: ``data.split``.
        corpora: The corpus of every utterance (or just the corpora present).
        test_corpora: ``data.test_corpora`` (see :func:`assign_splits`).
        train_corpora: ``data.train_corpora`` (see :func:`assign_splits`).
        kfold_corpus: ``data.kfold_corpus`` (see :func:`assign_splits`).

    Raises:
        ValueError: a setting used with a mode that does not take it, a corpus that is not present,
            overlapping lists, or no training corpus left.
    """
    present = sorted(set(corpora))
    if mode != "corpus" and test_corpora:
        raise ValueError(f"data.test_corpora={list(test_corpora)} is set but data.split={mode}: it needs data.split=corpus")
    if kfold_corpus is not None and mode != "kfold":
        raise ValueError(f"data.kfold_corpus={kfold_corpus} is set but data.split={mode}: it needs data.split=kfold")
    if train_corpora is not None and mode not in ("corpus", "kfold"):
        raise ValueError(f"data.train_corpora={list(train_corpora)} needs data.split=corpus or kfold with "
                         f"data.kfold_corpus (data.split={mode})")
    if mode == "kfold" and train_corpora is not None and kfold_corpus is None:
        raise ValueError(f"data.train_corpora={list(train_corpora)} with data.split=kfold needs data.kfold_corpus "
                         "(the corpus whose speakers are folded)")
    named = {"data.test_corpora": list(test_corpora or []), "data.train_corpora": list(train_corpora or []),
             "data.kfold_corpus": [kfold_corpus] if kfold_corpus is not None else []}
    for setting, names in named.items():
        absent = [c for c in names if c not in present]
        if absent:
            raise ValueError(f"{setting}: {absent} not among the corpora of the data ({present}); add them to data.corpora")
    if mode == "corpus":
        if not test_corpora:
            raise ValueError("data.split=corpus needs data.test_corpora (the corpora to test on), e.g. [tess]")
        overlap = sorted(set(test_corpora) & set(train_corpora or []))
        if overlap:
            raise ValueError(f"data.test_corpora and data.train_corpora share {overlap}: a corpus tests or trains, not both")
        if not [c for c in (train_corpora if train_corpora is not None else present) if c not in test_corpora]:
            raise ValueError(f"data.split=corpus: no training corpus is left (corpora {present}, test {list(test_corpora)})")
    if kfold_corpus is not None and train_corpora is not None and kfold_corpus in train_corpora:
        raise ValueError(f"data.train_corpora lists data.kfold_corpus={kfold_corpus}: its speakers are already folded")


def _corpus_splits(utterances: Sequence[Utterance], test_corpora: Sequence[str],
                   train_corpora: Sequence[str] | None, seed: int) -> list[str]:
    """``data.split=corpus`` (see the module docstring)."""
    rng = random.Random(seed)
    test = set(test_corpora)
    train = {u.corpus for u in utterances if u.corpus not in test} if train_corpora is None else set(train_corpora)
    gender = {u.speaker: u.gender for u in utterances}
    val: set[str] = set()
    for corpus in sorted(train):
        speakers = sorted({u.speaker for u in utterances if u.corpus == corpus}, key=_natural_key)
        k = min(max(1, round(len(speakers) * CORPUS_VAL_SHARE)), len(speakers) - 1)
        val.update(_balanced_draw(speakers, k, gender, rng))
    if not val:
        raise ValueError(f"data.split=corpus: the training corpora {sorted(train)} have a single speaker each; "
                         "no validation speaker can be held out")
    return ["test" if u.corpus in test else "val" if u.speaker in val else "train" if u.corpus in train else "unused"
            for u in utterances]


def _kfold_in_corpus(utterances: Sequence[Utterance], labels: Sequence[int], kfold_corpus: str,
                     train_corpora: Sequence[str] | None, **kfold) -> list[str]:
    """``data.split=kfold`` over the speakers of ``kfold_corpus`` alone; the other (training) corpora train whole."""
    inside = [i for i, u in enumerate(utterances) if u.corpus == kfold_corpus]
    folded = assign_splits([utterances[i] for i in inside], [labels[i] for i in inside], mode="kfold", **kfold)
    extra = {u.corpus for u in utterances if u.corpus != kfold_corpus} if train_corpora is None else set(train_corpora)
    out = ["train" if u.corpus in extra else "unused" for u in utterances]
    for i, split in zip(inside, folded):
        out[i] = split
    return out
