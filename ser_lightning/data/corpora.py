"""Corpus parsers: a directory of audio files (or a CSV manifest) → :class:`Utterance` rows.

Every parser walks its corpus root recursively for audio files (``.wav`` / ``.flac``, any case),
reads speaker, emotion and gender from the file name (the corpus's documented naming convention),
and returns a :class:`CorpusScan`. Audio files that do not follow the convention are never dropped
silently: they are listed in :attr:`CorpusScan.skipped` with a reason and logged as a warning.

Supported corpora (see each parser for its naming convention and source paper):

* ``ravdess`` – :func:`parse_ravdess` (Livingstone & Russo, 2018)
* ``cremad`` – :func:`parse_cremad` (Cao et al., 2014)
* ``tess`` – :func:`parse_tess` (Dupuis & Pichora-Fuller, 2010)
* ``savee`` – :func:`parse_savee` (Haq & Jackson, 2009)
* any ``.csv`` manifest – :func:`parse_manifest`
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ser_lightning.data.labels import VOCABULARY, canonical_emotion
from ser_lightning.data.manifest import Utterance

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac")

#: What a parse function returns per file: an utterance, or the reason the file was skipped.
ParseResult = Utterance | str


@dataclass
class CorpusScan:
    """Result of scanning a corpus.

    Attributes:
        utterances: Parsed utterances, sorted by path.
        skipped: ``(path, reason)`` for audio files that did not follow the corpus's naming
            convention (or were excluded by it, e.g. RAVDESS song files).
    """

    utterances: list[Utterance] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


# --------------------------------------------------------------------------- shared walk


def _audio_files(root: Path) -> Iterator[Path]:
    return (p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def _scan(root: str | Path, corpus: str, parse: Callable[[Path], ParseResult], pattern: str) -> CorpusScan:
    """Apply ``parse`` to every audio file under ``root``; collect utterances and skips."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{corpus} root {root} is not a directory")
    scan = CorpusScan()
    for path in sorted(_audio_files(root)):
        result = parse(path)
        if isinstance(result, str):
            scan.skipped.append((str(path), result))
        else:
            scan.utterances.append(result)
    if scan.skipped:
        examples = "; ".join(f"{Path(p).name} ({r})" for p, r in scan.skipped[:3])
        log.warning(
            "%s: skipped %d audio file(s) under %s not matching %s, e.g. %s",
            corpus, len(scan.skipped), root, pattern, examples,
        )
    if not scan.utterances:
        found = f"{len(scan.skipped)} audio file(s), none matching" if scan.skipped else "no .wav/.flac files"
        raise FileNotFoundError(
            f"no {corpus} utterances under {root}: found {found}; expected file names like {pattern}"
        )
    return scan


# --------------------------------------------------------------------------- RAVDESS

RAVDESS_PATTERN = "03-01-EE-II-SS-RR-AA.wav (e.g. Actor_01/03-01-05-02-01-01-01.wav)"
_RAVDESS_RE = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")


def _parse_ravdess_file(path: Path) -> ParseResult:
    m = _RAVDESS_RE.match(path.stem)
    if not m:
        return "name does not match 03-01-EE-II-SS-RR-AA"
    modality, channel, emo, intensity, statement, repetition, actor = m.groups()
    if modality != "03":
        return f"modality {modality} is not audio-only (03)"
    if channel == "02":
        return "song, not speech"
    if channel != "01":
        return f"unknown vocal channel {channel}"
    if not 1 <= int(emo) <= len(VOCABULARY):
        return f"unknown emotion code {emo}"
    if intensity not in ("01", "02") or statement not in ("01", "02"):
        return f"unknown intensity {intensity} or statement {statement}"
    if not 1 <= int(actor) <= 24:
        return f"actor {actor} outside 01-24"
    return Utterance(
        path=str(path),
        corpus="ravdess",
        speaker=f"ravdess_{actor}",
        emotion=VOCABULARY[int(emo) - 1],
        gender="male" if int(actor) % 2 else "female",
        fields={
            "modality": modality,
            "vocal_channel": channel,
            "intensity": "normal" if intensity == "01" else "strong",
            "statement": "kids" if statement == "01" else "dogs",
            "repetition": repetition,
            "actor": actor,
        },
    )


def parse_ravdess(root: str | Path) -> CorpusScan:
    """Scan RAVDESS audio-only speech.

    Naming convention ``03-01-EE-II-SS-RR-AA.{wav,flac}`` (usually in ``Actor_AA/`` folders):
    modality ``03`` = audio-only, vocal channel ``01`` = speech (``02`` = song, skipped),
    ``EE`` emotion 01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fear, 07 disgust,
    08 surprise; ``II`` intensity 01 normal / 02 strong; ``SS`` statement 01 "Kids are talking
    by the door" / 02 "Dogs are sitting by the door"; ``RR`` repetition; ``AA`` actor 01–24
    (odd = male, even = female). Speaker id ``ravdess_AA``; ``fields`` hold ``modality``,
    ``vocal_channel``, ``intensity`` (``normal``/``strong``), ``statement`` (``kids``/``dogs``),
    ``repetition`` and ``actor``.

    Source: Livingstone & Russo (2018), "The Ryerson Audio-Visual Database of Emotional Speech
    and Song (RAVDESS)", PLoS ONE 13(5): e0196391.

    Args:
        root: Directory holding the corpus (searched recursively).

    Returns:
        The scan; song files and non-matching names are in ``skipped``.

    Raises:
        FileNotFoundError: if ``root`` is not a directory or holds no RAVDESS speech files.
    """
    return _scan(root, "ravdess", _parse_ravdess_file, RAVDESS_PATTERN)


# --------------------------------------------------------------------------- CREMA-D

CREMAD_PATTERN = "AudioWAV/SSSS_SEN_EMO_LV.wav (e.g. 1001_DFA_ANG_XX.wav)"
_CREMAD_RE = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
_CREMAD_EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
_CREMAD_INTENSITY = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
CREMAD_DEMOGRAPHICS = "VideoDemographics.csv"


def _parse_cremad_file(path: Path, genders: dict[str, str] | None = None) -> ParseResult:
    m = _CREMAD_RE.match(path.stem)
    if not m:
        return "name does not match SSSS_SEN_EMO_LV"
    spk, sentence, emo, level = m.groups()
    if not 1001 <= int(spk) <= 1091:
        return f"speaker {spk} outside 1001-1091"
    if emo not in _CREMAD_EMOTIONS:
        return f"unknown emotion code {emo}"
    if level not in _CREMAD_INTENSITY:
        return f"unknown intensity code {level}"
    return Utterance(
        path=str(path),
        corpus="cremad",
        speaker=f"cremad_{spk}",
        emotion=_CREMAD_EMOTIONS[emo],
        gender=(genders or {}).get(spk),
        fields={"sentence": sentence, "intensity": _CREMAD_INTENSITY[level]},
    )


def _cremad_genders(root: Path) -> dict[str, str] | None:
    """ActorID → ``male``/``female`` from ``VideoDemographics.csv`` under ``root`` or beside it."""
    found = sorted(root.rglob(CREMAD_DEMOGRAPHICS)) or sorted(root.parent.glob(CREMAD_DEMOGRAPHICS))
    if not found:
        log.warning("cremad: no %s under %s or its parent; gender unknown", CREMAD_DEMOGRAPHICS, root)
        return None
    with found[0].open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in ("ActorID", "Sex") if c not in header]
        if missing:
            raise ValueError(f"{found[0]}: missing column(s) {missing} (columns: {header})")
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    return {r["ActorID"]: r["Sex"].lower() for r in rows if r["Sex"].lower() in ("male", "female")}


def parse_cremad(root: str | Path) -> CorpusScan:
    """Scan CREMA-D.

    Naming convention ``AudioWAV/SSSS_SEN_EMO_LV.wav``, e.g. ``1001_DFA_ANG_XX.wav``: speaker
    ``SSSS`` 1001–1091 (speaker id ``cremad_1001``); ``SEN`` one of the 12 sentence codes
    (``fields["sentence"]``); ``EMO`` ANG angry, DIS disgust, FEA fear, HAP happy, NEU neutral,
    SAD sad; ``LV`` intensity LO/MD/HI/XX (``fields["intensity"]`` = ``low``/``medium``/``high``/
    ``unspecified``). Gender comes from the corpus's ``VideoDemographics.csv`` (columns
    ``ActorID``, ``Sex``) found anywhere under ``root`` or in its parent; ``None`` without it.

    Source: Cao et al. (2014), "CREMA-D: Crowd-sourced Emotional Multimodal Actors Dataset",
    IEEE Transactions on Affective Computing 5(4): 377–390.

    Args:
        root: Directory holding the corpus (searched recursively).

    Returns:
        The scan; non-matching names are in ``skipped``.

    Raises:
        FileNotFoundError: if ``root`` is not a directory or holds no CREMA-D files.
        ValueError: if the demographics table lacks its ``ActorID``/``Sex`` columns.
    """
    root = Path(root).expanduser().resolve()
    genders = _cremad_genders(root) if root.is_dir() else None
    return _scan(root, "cremad", partial(_parse_cremad_file, genders=genders), CREMAD_PATTERN)


# --------------------------------------------------------------------------- TESS

TESS_PATTERN = "OAF_angry/OAF_back_angry.wav ({OAF,YAF}_{word}_{emotion})"
_TESS_RE = re.compile(r"^(OAF|YAF)_([a-z]+)_([a-z_ ]+)$", re.IGNORECASE)
_TESS_EMOTIONS = {
    "angry": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happy",
    "neutral": "neutral",
    "sad": "sad",
    "ps": "surprise",
    "pleasant_surprise": "surprise",
    "pleasant_surprised": "surprise",
}


def _parse_tess_file(path: Path) -> ParseResult:
    m = _TESS_RE.match(path.stem)
    if not m:
        return "name does not match {OAF,YAF}_{word}_{emotion}"
    spk, word, emo = m.groups()
    emotion = _TESS_EMOTIONS.get(emo.lower().replace(" ", "_"))
    if emotion is None:
        return f"unknown emotion {emo!r}"
    return Utterance(
        path=str(path),
        corpus="tess",
        speaker=f"tess_{spk.upper()}",
        emotion=emotion,
        gender="female",
        fields={"word": word.lower()},
    )


def parse_tess(root: str | Path) -> CorpusScan:
    """Scan TESS (Toronto emotional speech set).

    Naming convention ``{SPK}_{word}_{emotion}.wav`` in per-speaker-emotion folders, e.g.
    ``OAF_angry/OAF_back_angry.wav``: speakers ``OAF`` (older) and ``YAF`` (younger), both
    female (speaker id ``tess_OAF``); ``word`` the spoken NU-6 word (``fields["word"]``);
    emotion angry, disgust, fear, happy, neutral, sad or ``ps`` = pleasant surprise →
    ``surprise`` (also ``pleasant_surprise(d)``; case ignored).

    Source: Dupuis & Pichora-Fuller (2010), "Toronto emotional speech set (TESS)",
    University of Toronto, Psychology Department. doi:10.5683/SP2/E8H2MF.

    Args:
        root: Directory holding the corpus (searched recursively).

    Returns:
        The scan; non-matching names are in ``skipped``.

    Raises:
        FileNotFoundError: if ``root`` is not a directory or holds no TESS files.
    """
    return _scan(root, "tess", _parse_tess_file, TESS_PATTERN)


# --------------------------------------------------------------------------- SAVEE

SAVEE_PATTERN = "DC_a01.wav or DC/a01.wav (speaker DC/JE/JK/KL, code a/d/f/h/n/sa/su, number)"
SAVEE_SPEAKERS = ("DC", "JE", "JK", "KL")
_SAVEE_CODES = {"sa": "sad", "su": "surprise", "a": "angry", "d": "disgust", "f": "fear", "h": "happy", "n": "neutral"}
_SAVEE_RE = re.compile(r"^(?:(DC|JE|JK|KL)_)?(sa|su|a|d|f|h|n)(\d{2})$", re.IGNORECASE)


def _parse_savee_file(path: Path) -> ParseResult:
    m = _SAVEE_RE.match(path.stem)
    if not m:
        return "name does not match SPK_cNN or SPK/cNN"
    spk = (m.group(1) or path.parent.name).upper()
    if spk not in SAVEE_SPEAKERS:
        return f"no SAVEE speaker ({'/'.join(SAVEE_SPEAKERS)}) in the name or folder"
    return Utterance(
        path=str(path),
        corpus="savee",
        speaker=f"savee_{spk}",
        emotion=_SAVEE_CODES[m.group(2).lower()],
        gender="male",
        fields={"sentence": m.group(3)},
    )


def parse_savee(root: str | Path) -> CorpusScan:
    """Scan SAVEE (Surrey Audio-Visual Expressed Emotion).

    Naming convention: flat ``DC_a01.wav`` or one folder per speaker ``DC/a01.wav``. Speakers
    DC, JE, JK, KL, all male (speaker id ``savee_DC``); emotion code ``a`` angry, ``d`` disgust,
    ``f`` fear, ``h`` happy, ``n`` neutral, ``sa`` sad, ``su`` surprise; then the two-digit
    sentence number (``fields["sentence"]``).

    Source: Haq & Jackson (2009), "Speaker-dependent audio-visual emotion recognition",
    Proc. AVSP 2009, 53–58.

    Args:
        root: Directory holding the corpus (searched recursively).

    Returns:
        The scan; non-matching names are in ``skipped``.

    Raises:
        FileNotFoundError: if ``root`` is not a directory or holds no SAVEE files.
    """
    return _scan(root, "savee", _parse_savee_file, SAVEE_PATTERN)


# --------------------------------------------------------------------------- CSV manifest

MANIFEST_REQUIRED = ("path", "label", "speaker")
_GENDERS = {"male": "male", "m": "male", "female": "female", "f": "female"}
_NO_GENDER = ("", "none", "unknown", "na", "n/a")


def parse_manifest(csv_path: str | Path, corpus: str | None = None) -> CorpusScan:
    """Read a generic CSV manifest of labelled audio files.

    Columns ``path``, ``label``, ``speaker`` are required; ``gender`` (male/m/female/f or empty)
    and ``corpus`` are optional; any other column goes into ``fields``. Relative paths are
    resolved against the CSV's directory. Labels go through
    :func:`~ser_lightning.data.labels.canonical_emotion`. Speakers are prefixed with the corpus
    name (``{corpus}_{speaker}``, unless already so prefixed); the corpus is ``corpus`` if given,
    else the row's ``corpus`` column, else the CSV's file stem.

    Args:
        csv_path: Manifest CSV.
        corpus: Corpus name for every row (overrides the ``corpus`` column).

    Returns:
        The scan (``skipped`` is always empty: a bad row is an error).

    Raises:
        FileNotFoundError: if the CSV or a listed audio file does not exist (names the line).
        ValueError: for a missing required column, an unknown label or gender, or no rows.
    """
    csv_path = Path(csv_path).expanduser().resolve()
    if not csv_path.is_file():
        raise FileNotFoundError(f"manifest {csv_path} does not exist")
    scan = CorpusScan()
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [c.strip() for c in reader.fieldnames or []]
        for col in MANIFEST_REQUIRED:
            if col not in header:
                raise ValueError(f"manifest {csv_path} is missing column {col!r} (columns: {header}; required: {list(MANIFEST_REQUIRED)})")
        for raw in reader:
            row = {k.strip(): (v or "").strip() for k, v in raw.items() if k}
            where = f"{csv_path}:{reader.line_num}"
            path = Path(row["path"]).expanduser()
            path = path if path.is_absolute() else csv_path.parent / path
            if not row["path"] or not path.is_file():
                raise FileNotFoundError(f"{where}: audio file {path} does not exist")
            gender = row.get("gender", "").lower()
            if gender not in _GENDERS and gender not in _NO_GENDER:
                raise ValueError(f"{where}: gender {row['gender']!r} is not male/female (or empty)")
            name = corpus or row.get("corpus") or csv_path.stem
            spk = row["speaker"]
            if not spk:
                raise ValueError(f"{where}: empty speaker")
            scan.utterances.append(
                Utterance(
                    path=str(path.resolve()),
                    corpus=name,
                    speaker=spk if spk.startswith(f"{name}_") else f"{name}_{spk}",
                    emotion=canonical_emotion(row["label"], source=where),
                    gender=_GENDERS.get(gender),
                    fields={k: v for k, v in row.items() if k not in (*MANIFEST_REQUIRED, "gender", "corpus")},
                )
            )
    if not scan.utterances:
        raise ValueError(f"manifest {csv_path} has no rows")
    scan.utterances.sort(key=lambda u: u.path)
    return scan


# --------------------------------------------------------------------------- lookup

PARSERS: dict[str, Callable[[str | Path], CorpusScan]] = {
    "ravdess": parse_ravdess,
    "cremad": parse_cremad,
    "tess": parse_tess,
    "savee": parse_savee,
}

#: Per-file parse functions, used to recognise a corpus directly inside a data root.
_FILE_PARSERS: dict[str, Callable[[Path], ParseResult]] = {
    "ravdess": _parse_ravdess_file,
    "cremad": _parse_cremad_file,
    "tess": _parse_tess_file,
    "savee": _parse_savee_file,
}

#: Directory names searched (in order) under a data root for each corpus.
CORPUS_DIR_NAMES: dict[str, tuple[str, ...]] = {
    "ravdess": ("ravdess", "RAVDESS", "Audio_Speech_Actors_01-24"),
    "cremad": ("cremad", "CREMA-D", "crema-d", "CREMA_D"),
    "tess": ("tess", "TESS", "TESS Toronto emotional speech set data"),
    "savee": ("savee", "SAVEE", "ALL", "AudioData"),
}


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
    if name not in PARSERS:
        raise ValueError(
            f"data.corpora: unknown corpus {corpus!r}; choose one of {sorted(PARSERS)} or give a path to a .csv manifest"
        )
    return name


_check_name = check_corpus_name


def _holds_corpus(directory: Path, corpus: str) -> bool:
    """Whether an audio file at depth 1 or 2 of ``directory`` parses as ``corpus``."""
    parse = _FILE_PARSERS[corpus]
    candidates = (p for pattern in ("*", "*/*") for p in directory.glob(pattern) if p.suffix.lower() in AUDIO_EXTENSIONS)
    return any(isinstance(parse(p), Utterance) for p in candidates)


def find_corpus_root(data_root: str | Path, corpus: str) -> Path:
    """Locate a corpus's directory inside a data root.

    Tries ``data_root / name`` for each name in :data:`CORPUS_DIR_NAMES` (in order), then
    accepts ``data_root`` itself if it directly holds the corpus's files (e.g. RAVDESS's
    ``Actor_XX`` folders).

    Args:
        data_root: Data root (``data.root`` / ``$SER_DATA_DIR``).
        corpus: Corpus name, one of :data:`PARSERS`.

    Returns:
        The corpus directory.

    Raises:
        ValueError: for an unknown corpus name (the message lists the valid ones).
        FileNotFoundError: if the data root does not exist or holds no such corpus; the message
            names the directory, the sub-directory names tried, and how to fix it.
    """
    corpus = _check_name(corpus)
    data_root = Path(data_root).expanduser().resolve()
    names = CORPUS_DIR_NAMES[corpus]
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
    if _holds_corpus(data_root, corpus):
        return data_root
    raise FileNotFoundError(
        f"no {corpus} corpus in {data_root}: tried sub-directories {list(names)} and the "
        f"directory itself; {fix}"
    )


def scan_corpus(data_root: str | Path, corpus: str) -> CorpusScan:
    """Scan one corpus by name, or a CSV manifest by path.

    Args:
        data_root: Data root holding the corpus directories.
        corpus: A name in :data:`PARSERS` (case ignored), or a path ending in ``.csv`` (relative
            paths are tried against the working directory, then ``data_root``).

    Returns:
        The corpus's scan.

    Raises:
        ValueError: for an unknown corpus name.
        FileNotFoundError: if the corpus or manifest cannot be found or holds no files.
    """
    if corpus.lower().endswith(".csv"):
        path = Path(corpus).expanduser()
        if not path.is_absolute() and not path.exists() and (Path(data_root) / path).exists():
            path = Path(data_root) / path
        return parse_manifest(path)
    name = _check_name(corpus)
    return PARSERS[name](find_corpus_root(data_root, name))


def scan_corpora(data_root: str | Path, corpora: Sequence[str], skip_missing: bool = False) -> CorpusScan:
    """Scan several corpora and concatenate them.

    Args:
        data_root: Data root holding the corpus directories.
        corpora: Corpus names and/or manifest CSV paths (see :func:`scan_corpus`); a single
            string is taken as a one-item list.
        skip_missing: Leave out (with a warning) named corpora that are not under ``data_root``
            instead of failing; at least one must be present.

    Returns:
        All utterances (in the order of ``corpora``) and all skipped files.

    Raises:
        ValueError: if ``corpora`` is empty or the same audio file appears twice.
        FileNotFoundError: see :func:`scan_corpus`.
    """
    corpora = [corpora] if isinstance(corpora, str) else list(corpora)
    if not corpora:
        raise ValueError("corpora is empty: give at least one corpus name or .csv manifest path")
    total = CorpusScan()
    seen: dict[str, str] = {}
    missing: list[str] = []
    for corpus in corpora:
        try:
            scan = scan_corpus(data_root, corpus)
        except FileNotFoundError as err:
            if not skip_missing or corpus.lower().endswith(".csv"):
                raise
            log.warning("corpus %s left out: %s", corpus, err)
            missing.append(corpus)
            continue
        for u in scan.utterances:
            if u.path in seen:
                raise ValueError(f"audio file {u.path} is listed twice (in {seen[u.path]!r} and {corpus!r})")
            seen[u.path] = corpus
        total.utterances += scan.utterances
        total.skipped += scan.skipped
    if missing and len(missing) == len(corpora):
        raise FileNotFoundError(f"none of the corpora {corpora} was found under {data_root}")
    return total
