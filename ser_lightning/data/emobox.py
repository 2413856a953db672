"""EmoBox's metadata and official folds → :class:`~ser_lightning.data.corpora.CorpusScan`.

EmoBox (Ma et al., 2024, "EmoBox: Multilingual Multi-corpus Speech Emotion Recognition Toolkit
and Benchmark", Proc. Interspeech 2024; GitHub ``emo-box/EmoBox``) fixes train/test folds for 32
corpora in 14 languages. Its metadata is not shipped with this project: point
``data.emobox.metadata_dir`` at a checkout of EmoBox (its root or its ``data/`` folder). Per
corpus, ``data/<corpus>/`` holds

* ``<corpus>.jsonl`` – every clip, one JSON object per line::

      {"key": "emodb-03a02Wb", "dataset": "emodb", "wav": "downloads/emodb/wav/03a02Wb.wav",
       "type": "raw", "sample_rate": 16000, "num_frame": 33978.0, "task": "category",
       "length": 2.12, "emo": "anger", "channel": 1}

* ``fold_<k>/<corpus>_{train,test}_fold_<k>.jsonl`` – the official folds (k from 1; MSP-Podcast,
  MELD and M3ED also have ``<corpus>_valid_fold_<k>.jsonl``);
* ``label_map.json`` (EMOVO: ``label_dict.json``) – the corpus's ``emo`` codes → EmoBox's class
  names (``{"anger": "Angry", "boredem": "Boredom", ...}``).

``wav`` paths are relative to the folder holding EmoBox's ``downloads/`` (``data.emobox.audio_root``).
There is no speaker field: speakers (and sex, sentence, ...) come from this project's parser of
the corpus applied to the file name where one exists
(:data:`~ser_lightning.data.corpora.FILE_PARSERS`); elsewhere every clip is its own speaker, and
``fields["speaker_known"]`` is ``"false"``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ser_lightning.data.corpora import (
    _IEMOCAP_UTT_RE,
    CORPUS_FILE_SUFFIXES,
    FILE_PARSERS,
    CorpusScan,
)
from ser_lightning.data.labels import emotion_or_raw, lookup_emotion
from ser_lightning.data.manifest import Utterance

log = logging.getLogger(__name__)

LABEL_MAP_FILES = ("label_map.json", "label_dict.json")
#: EmoBox fold files' split names → this project's split names.
FOLD_PARTS = {"train": "train", "valid": "val", "test": "test"}
_REQUIRED = ("key", "wav", "emo")


def emobox_corpus_dir(metadata_dir: str | Path, corpus: str) -> Path:
    """The folder holding EmoBox's metadata of ``corpus``.

    Args:
        metadata_dir: EmoBox checkout (its root, its ``data/`` folder, or the corpus folder).
        corpus: EmoBox corpus name (``emodb``, ``iemocap``, ...).

    Raises:
        ValueError: if ``metadata_dir`` or ``corpus`` is not set.
        FileNotFoundError: if no ``<corpus>/`` folder with a label map or JSONL is found; the
            message lists the corpora that are there.
    """
    if not metadata_dir:
        raise ValueError("data.emobox.metadata_dir is not set: point it at your checkout of github.com/emo-box/EmoBox")
    if not corpus:
        raise ValueError("data.emobox.corpus is not set: name an EmoBox corpus, e.g. data.emobox.corpus=emodb")
    base = Path(metadata_dir).expanduser().resolve()
    for d in (base / "data" / corpus, base / corpus, base):
        if d.name == corpus and d.is_dir() and (any((d / f).is_file() for f in LABEL_MAP_FILES)
                                                 or (d / f"{corpus}.jsonl").is_file()):
            return d
    data = base / "data" if (base / "data").is_dir() else base
    have = sorted(p.name for p in data.iterdir() if p.is_dir()) if data.is_dir() else []
    raise FileNotFoundError(
        f"data.emobox.metadata_dir={base}: no EmoBox metadata for corpus {corpus!r} (looked for {base / 'data' / corpus}"
        f" and {base / corpus}); corpora there: {have or 'none'}"
    )


def emobox_label_map(corpus_dir: Path) -> dict[str, str]:
    """The corpus's ``label_map.json`` (or ``label_dict.json``): ``emo`` code → EmoBox class name.

    Raises:
        FileNotFoundError: if neither file exists.
        ValueError: if it is not a JSON object of strings.
    """
    for name in LABEL_MAP_FILES:
        path = corpus_dir / name
        if path.is_file():
            try:
                mapping = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: not valid JSON ({err})") from None
            if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
                raise ValueError(f"{path}: expected a JSON object of emotion code → class name")
            return {str(k): v for k, v in mapping.items()}
    raise FileNotFoundError(f"{corpus_dir}: no {' or '.join(LABEL_MAP_FILES)}")


def emobox_classes(metadata_dir: str | Path, corpus: str) -> list[str]:
    """The corpus's EmoBox classes as vocabulary words, in the order the label map first names them.

    Used for ``data.label_set=emobox`` (IEMOCAP's map sends ``exc`` to Happy, so its classes are
    the usual four).

    Raises:
        ValueError: a class name the vocabulary does not know (the message names it).
        FileNotFoundError: see :func:`emobox_corpus_dir`, :func:`emobox_label_map`.
    """
    corpus_dir = emobox_corpus_dir(metadata_dir, corpus)
    classes: list[str] = []
    for name in emobox_label_map(corpus_dir).values():
        word = lookup_emotion(name)
        if word is None:
            raise ValueError(f"{corpus_dir}: EmoBox class {name!r} is not in the vocabulary; name the classes with "
                             "data.label_set=[...] instead of emobox")
        if word not in classes:
            classes.append(word)
    return classes


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of an EmoBox JSONL file (blank lines ignored).

    Raises:
        FileNotFoundError: if it does not exist.
        ValueError: a line that is not a JSON object or lacks ``key``, ``wav`` or ``emo`` (names
            the file and line).
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{n}: not a JSON object ({err.msg})") from None
        missing = [k for k in _REQUIRED if not isinstance(rec, dict) or k not in rec]
        if missing:
            raise ValueError(f"{path}:{n}: missing field(s) {missing}")
        records.append(rec)
    return records


def emobox_folds(corpus_dir: Path, corpus: str) -> list[int]:
    """Fold numbers with a ``fold_<k>/<corpus>_train_fold_<k>.jsonl``, ascending."""
    folds = []
    for d in corpus_dir.glob("fold_*"):
        k = d.name.split("_", 1)[1]
        if k.isdigit() and (d / f"{corpus}_train_fold_{k}.jsonl").is_file():
            folds.append(int(k))
    return sorted(folds)


def _resolve_audio(audio_root: Path, wav: str) -> Path:
    """``audio_root / wav``; also accepts an ``audio_root`` that is EmoBox's ``downloads/`` itself."""
    path = audio_root / wav
    first = Path(wav).parts[0] if Path(wav).parts else ""
    if not path.exists() and first == audio_root.name:
        path = audio_root / Path(*Path(wav).parts[1:])
    return path


def _speaker_info(corpus: str, path: Path) -> Utterance | None:
    """Speaker, sex and fields from this project's parser of ``corpus`` (file name only)."""
    if corpus == "iemocap":
        m = _IEMOCAP_UTT_RE.match(path.stem)
        if m:
            session, kind, who = m.groups()
            return Utterance(path=str(path), corpus=corpus, speaker=f"iemocap_Ses0{session}{who}", emotion="",
                             gender="female" if who == "F" else "male",
                             fields={"session": session, "type": "improvised" if kind == "impro" else "scripted"})
        return None
    parse = FILE_PARSERS.get(corpus)
    result = parse(path) if parse else None
    return result if isinstance(result, Utterance) else None


def load_emobox(metadata_dir: str | Path, corpus: str, fold: int | None = None,
                audio_root: str | Path | None = None) -> CorpusScan:
    """Clips of an EmoBox corpus with their labels, and their official fold as ``fields["partition"]``.

    Args:
        metadata_dir: EmoBox checkout (root, ``data/`` folder or the corpus folder).
        corpus: EmoBox corpus name.
        fold: Official fold ``k`` (from 1): its train, test (and valid) files give every clip's
            partition (``train``/``test``/``val``). ``None``: every clip of ``<corpus>.jsonl``
            without a partition (cross-corpus scoring, ``eval.py split=all``).
        audio_root: Folder holding EmoBox's ``downloads/`` (the ``wav`` paths are relative to it;
            the ``downloads/`` folder itself also works).

    Returns:
        The scan: one :class:`Utterance` per listed clip found on disk (corpus = the EmoBox corpus
        name; emotion = the label map's class as a vocabulary word, or the code itself where the
        map lacks it); ``skipped`` lists clips not on disk, clips that are not .wav/.flac (EmoBox
        lists video files for some corpora) and segments of longer files (``start_time``).

    Raises:
        ValueError: a missing setting, a fold that does not exist (lists the folds), a clip listed
            twice in one fold, bad JSON.
        FileNotFoundError: metadata not found, or none of the listed clips under ``audio_root``.
    """
    corpus_dir = emobox_corpus_dir(metadata_dir, corpus)
    label_map = emobox_label_map(corpus_dir)
    if audio_root is None:
        raise ValueError("data.emobox.audio_root is not set: the folder holding EmoBox's downloads/ (wav paths are "
                         "relative to it)")
    audio_root = Path(audio_root).expanduser().resolve()
    sources: list[tuple[Path, str | None]] = []
    if fold is None:
        sources.append((corpus_dir / f"{corpus}.jsonl", None))
    else:
        folds = emobox_folds(corpus_dir, corpus)
        if not isinstance(fold, int) or fold not in folds:
            raise ValueError(f"data.fold={fold!r}: EmoBox corpus {corpus!r} has folds {folds} (fold_<k> folders of "
                             f"{corpus_dir})")
        fold_dir = corpus_dir / f"fold_{fold}"
        for part, split in FOLD_PARTS.items():
            path = fold_dir / f"{corpus}_{part}_fold_{fold}.jsonl"
            if part != "valid" or path.is_file():
                sources.append((path, split))
    scan = CorpusScan()
    seen: dict[str, str] = {}
    for jsonl, split in sources:
        for rec in read_jsonl(jsonl):
            key, wav = str(rec["key"]), str(rec["wav"])
            if key in seen:
                raise ValueError(f"{jsonl}: clip {key!r} is also listed in {seen[key]}")
            seen[key] = jsonl.name
            path = _resolve_audio(audio_root, wav)
            if path.suffix.lower() not in CORPUS_FILE_SUFFIXES:
                scan.skipped.append((str(path), f"{path.suffix or 'no extension'} is not .wav/.flac (extract the "
                                                "audio track first)"))
                continue
            if rec.get("start_time") is not None and rec.get("end_time") is not None:
                scan.skipped.append((str(path), f"segment {rec['start_time']}-{rec['end_time']} s of a longer "
                                                "recording: not supported"))
                continue
            if not path.is_file():
                scan.skipped.append((str(path), f"listed in {jsonl.name} but not found under {audio_root}"))
                continue
            emo = str(rec["emo"])
            emotion = lookup_emotion(label_map[emo]) if emo in label_map else None
            info = _speaker_info(corpus, path)
            fields = {k: v for k, v in (info.fields if info else {}).items() if k != "partition"}
            fields.update(key=key, emo=emo, speaker_known="true" if info else "false")
            for src, dst in (("length", "length_s"), ("sample_rate", "sample_rate")):
                if rec.get(src) is not None:
                    fields[dst] = str(rec[src])
            if split is not None:
                fields.update(partition=split, fold=str(fold))
            scan.utterances.append(Utterance(
                path=str(path.resolve()), corpus=corpus, speaker=info.speaker if info else f"{corpus}_{key}",
                emotion=emotion or emotion_or_raw(label_map.get(emo, emo)), gender=info.gender if info else None,
                fields=fields,
            ))
    if scan.skipped:
        reasons = sorted({r.split(" under ")[0] if "not found" in r else r for _, r in scan.skipped})[:3]
        log.warning("emobox %s: %d listed clip(s) left out (listed in skipped.csv), e.g. %s", corpus,
                    len(scan.skipped), reasons)
    if not scan.utterances:
        example = scan.skipped[0][0] if scan.skipped else "none listed"
        raise FileNotFoundError(f"emobox {corpus}: none of the clips listed in {corpus_dir} was found under "
                                f"data.emobox.audio_root={audio_root} (e.g. {example})")
    if not any(u.fields["speaker_known"] == "true" for u in scan.utterances):
        log.warning("emobox %s: speakers unknown (no parser for its file names): validation clips are drawn at random "
                    "from the training fold", corpus)
    scan.utterances.sort(key=lambda u: u.path)
    return scan
