"""Name → corpus registry: each corpus is one record of what it is and how to read it.

In the spirit of timm's model registry (and of this package's :mod:`ser_lightning.models.registry`): a corpus
module registers one :class:`Corpus` when it is imported, and everything else — the data module's scan, the
cross-corpus tables, the data-root search, EmoBox's speaker lookup — asks the registry instead of keeping its
own table. A new corpus is one small module in :mod:`ser_lightning.data.corpora` (imported by its
``__init__``), one ``conf/data/<name>.yaml`` and its documented code table in ``tests/test_label_codes.py``.

Public: :class:`Corpus`, :func:`register_corpus`, :func:`corpus_record`, :func:`list_corpora`,
:func:`check_corpus_name`, :func:`find_corpus_root`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ser_lightning.data.corpora.base import CORPUS_FILE_SUFFIXES, CorpusScan, ParseResult
from ser_lightning.data.manifest import Utterance

#: Pseudo-corpus name for EmoBox's metadata (settings under ``data.emobox``; :mod:`ser_lightning.data.emobox`).
EMOBOX = "emobox"


@dataclass(frozen=True)
class Corpus:
    """What a corpus is and how to read it.

    Attributes:
        name: The ``data.corpora`` entry (lower case), also the speaker-id prefix (``ravdess_01``).
        title: The corpus's full name.
        scan: Directory → :class:`~ser_lightning.data.corpora.base.CorpusScan` (the corpus's parser).
        parse_file: Path → utterance or skip reason, from the path alone; ``None`` when labels live in separate
            files (IEMOCAP, MSP-Podcast). Used to recognise the corpus directly inside a data root and to give
            EmoBox's clips their speakers.
        pattern: The file names the parser expects, for messages.
        dir_names: Directory names searched (in order) under a data root (:func:`find_corpus_root`).
        language: ISO 639-1 code of the speech.
        speakers: Number of speakers in the release (a string: ``1000+``).
        codes: Label code as the corpus writes it (file name, folder or label table) → this package's
            vocabulary word (:mod:`ser_lightning.data.labels`); the table the parser reads.
        codes_source: Where the codes are documented (``tests/test_label_codes.py`` checks the parser against
            that documentation, not against :attr:`codes`).
        source: The corpus's paper.
        holds: Directory → whether it directly holds this corpus, for corpora that :attr:`parse_file` cannot
            recognise (label files); ``None``: an audio file at depth 1 or 2 that :attr:`parse_file` accepts.
    """

    name: str
    title: str
    scan: Callable[[str | Path], CorpusScan]
    parse_file: Callable[[Path], ParseResult] | None
    pattern: str
    dir_names: tuple[str, ...]
    language: str
    speakers: str
    codes: Mapping[str, str]
    codes_source: str
    source: str
    holds: Callable[[Path], bool] | None = field(default=None, compare=False)

    def found_in(self, directory: Path) -> bool:
        """Whether ``directory`` directly holds this corpus (see :attr:`holds`)."""
        if self.holds is not None:
            return self.holds(directory)
        if self.parse_file is None:
            return False
        candidates = (p for pattern in ("*", "*/*") for p in directory.glob(pattern)
                      if p.suffix.lower() in CORPUS_FILE_SUFFIXES)
        return any(isinstance(self.parse_file(p), Utterance) for p in candidates)


_CORPORA: dict[str, Corpus] = {}


def register_corpus(record: Corpus) -> Corpus:
    """Register a corpus under its name.

    Raises:
        ValueError: the name is taken, or is not lower case.
    """
    if record.name in _CORPORA or record.name == EMOBOX:
        raise ValueError(f"corpus {record.name!r} is registered twice")
    if record.name != record.name.lower():
        raise ValueError(f"corpus name {record.name!r} must be lower case")
    _CORPORA[record.name] = record
    return record


def list_corpora() -> list[str]:
    """Registered corpus names, sorted.

    >>> import ser_lightning.data.corpora
    >>> "ravdess" in list_corpora() and "emobox" not in list_corpora()
    True
    """
    return sorted(_CORPORA)


def corpus_record(name: str) -> Corpus:
    """The :class:`Corpus` of a name (case ignored).

    Raises:
        ValueError: an unknown name (the message lists the registered ones).
    """
    record = _CORPORA.get(str(name).lower())
    if record is None:
        raise ValueError(f"unknown corpus {name!r}; choose one of {sorted(_CORPORA)}")
    return record


def check_corpus_name(corpus: str) -> str:
    """Check a ``data.corpora`` entry without touching the disk.

    Args:
        corpus: A corpus name (case ignored) or a path ending in ``.csv``.

    Returns:
        The lower-case corpus name, or the manifest path unchanged.

    Raises:
        ValueError: an unknown corpus name (the message lists the valid ones).
    """
    if str(corpus).lower().endswith(".csv"):
        return str(corpus)
    name = str(corpus).lower()
    if name not in _CORPORA and name != EMOBOX:
        raise ValueError(
            f"data.corpora: unknown corpus {corpus!r}; choose one of {sorted(_CORPORA)}, {EMOBOX!r} (with data.emobox "
            "settings) or give a path to a .csv manifest"
        )
    return name


def find_corpus_root(data_root: str | Path, corpus: str) -> Path:
    """Locate a corpus's directory inside a data root.

    Tries ``data_root / name`` for each of the corpus's :attr:`Corpus.dir_names` (in order), then
    accepts ``data_root`` itself if it directly holds the corpus's files (e.g. RAVDESS's
    ``Actor_XX`` folders).

    Args:
        data_root: Data root (``data.root`` / ``$SER_DATA_DIR``).
        corpus: A registered corpus name.

    Returns:
        The corpus directory.

    Raises:
        ValueError: for an unknown corpus name (the message lists the valid ones).
        FileNotFoundError: if the data root does not exist or holds no such corpus; the message
            names the directory, the sub-directory names tried, and how to fix it.
    """
    corpus = check_corpus_name(corpus)
    if corpus == EMOBOX:
        raise ValueError("emobox is not a directory corpus: its clips come from data.emobox.metadata_dir")
    record = _CORPORA[corpus]
    data_root = Path(data_root).expanduser().resolve()
    names = record.dir_names
    if corpus == "ravdess":
        fix = "set data.root=DIR or SER_DATA_DIR to the directory holding it, or run `make data` to download RAVDESS"
    else:
        fix = (
            f"set data.root=DIR or SER_DATA_DIR to the directory holding it, or place the {corpus} "
            f"corpus in {data_root / names[0]} (no automatic download exists for {corpus})"
        )
    if not data_root.is_dir():
        raise FileNotFoundError(
            f"data root {data_root} does not exist (looked there for {corpus} in sub-directories {list(names)}); {fix}"
        )
    for name in names:
        if (data_root / name).is_dir():
            return data_root / name
    if record.found_in(data_root):
        return data_root
    raise FileNotFoundError(
        f"no {corpus} corpus in {data_root}: tried sub-directories {list(names)} and the "
        f"directory itself; {fix}"
    )
