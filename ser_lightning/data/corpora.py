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
* ``emodb`` – :func:`parse_emodb` (Burkhardt et al., 2005)
* ``emovo`` – :func:`parse_emovo` (Costantini et al., 2014)
* ``iemocap`` – :func:`parse_iemocap` (Busso et al., 2008)
* ``msppodcast`` – :func:`parse_msppodcast` (Lotfian & Busso, 2019)
* ``esd`` – :func:`parse_esd` (Zhou et al., 2021)
* ``cafe`` – :func:`parse_cafe` (Gournay et al., 2018)
* ``shemo`` – :func:`parse_shemo` (Mohamad Nezami et al., 2019)
* ``aesdd`` – :func:`parse_aesdd` (Vryzas et al., 2018)
* ``jlcorpus`` – :func:`parse_jlcorpus` (James et al., 2018)
* ``turev`` – :func:`parse_turev` (Canpolat, Ormanoğlu & Zeyrek, 2020)
* any ``.csv`` manifest – :func:`parse_manifest`
* ``emobox`` – EmoBox's metadata and official folds (:mod:`ser_lightning.data.emobox`)
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ser_lightning.data.labels import RAVDESS_EMOTIONS, emotion_or_raw
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
    if not 1 <= int(emo) <= len(RAVDESS_EMOTIONS):
        return f"unknown emotion code {emo}"
    if intensity not in ("01", "02") or statement not in ("01", "02"):
        return f"unknown intensity {intensity} or statement {statement}"
    if not 1 <= int(actor) <= 24:
        return f"actor {actor} outside 01-24"
    return Utterance(
        path=str(path),
        corpus="ravdess",
        speaker=f"ravdess_{actor}",
        emotion=RAVDESS_EMOTIONS[int(emo) - 1],
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
    "ps": "pleasant_surprise",
    "pleasant_surprise": "pleasant_surprise",
    "pleasant_surprised": "pleasant_surprise",
}


_TESS_TYPO_RE = re.compile(r"^(OA|YA)_([a-z]+)_([a-z_ ]+)$", re.IGNORECASE)
_TESS_FOLDER_RE = re.compile(r"^(OAF|YAF)_", re.IGNORECASE)


def _parse_tess_file(path: Path) -> ParseResult:
    m = _TESS_RE.match(path.stem)
    fields: dict[str, str] = {}
    if not m:
        # The distributed corpus has one upstream typo, OAF_neutral/OA_bite_neutral: a truncated speaker prefix
        # whose folder names the speaker. Taken from the folder when the two agree.
        m = _TESS_TYPO_RE.match(path.stem)
        folder = _TESS_FOLDER_RE.match(path.parent.name)
        if not (m and folder and folder.group(1).upper().startswith(m.group(1).upper())):
            return "name does not match {OAF,YAF}_{word}_{emotion}"
        fields["speaker_from"] = "folder"
        spk, word, emo = folder.group(1), *m.groups()[1:]
    else:
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
        fields={"word": word.lower(), **fields},
    )


def parse_tess(root: str | Path) -> CorpusScan:
    """Scan TESS (Toronto emotional speech set).

    Naming convention ``{SPK}_{word}_{emotion}.wav`` in per-speaker-emotion folders, e.g.
    ``OAF_angry/OAF_back_angry.wav``: speakers ``OAF`` (older) and ``YAF`` (younger), both
    female (speaker id ``tess_OAF``); ``word`` the spoken NU-6 word (``fields["word"]``);
    emotion angry, disgust, fear, happy, neutral, sad or ``ps`` = pleasant surprise →
    ``pleasant_surprise`` (also ``pleasant_surprise(d)``; case ignored), which label sets with a
    surprise class count as surprise. The distributed copy's one truncated prefix
    (``OAF_neutral/OA_bite_neutral``) takes its speaker from its folder (``fields["speaker_from"]``).

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


# --------------------------------------------------------------------------- TurEV-DB

TUREV_PATTERN = "Angry/1157_kz_acik.wav (<Emotion>/<speaker>_<code>_<word>, code kz/sk/mt/hl)"
_TUREV_RE = re.compile(r"^(\d{4})_([a-z]{2})_(.+)$", re.IGNORECASE)
#: TurEV-DB's emotion codes (Turkish initials): kz kızgın = angry, sk sakin = calm, mt mutlu = happy,
#: hl hüzünlü = sad (Canpolat et al. 2020, §3; the corpus's ``Sound Source/`` folders Angry, Calm, Happy, Sad).
TUREV_CODES = {"kz": "angry", "sk": "calm", "mt": "happy", "hl": "sad"}
_TUREV_FOLDERS = {"angry": "angry", "calm": "calm", "happy": "happy", "sad": "sad"}


def _parse_turev_file(path: Path) -> ParseResult:
    m = _TUREV_RE.match(path.stem)
    if not m:
        return "name does not match <speaker>_<code>_<word>"
    spk, code, word = m.groups()
    emotion = TUREV_CODES.get(code.lower())
    if emotion is None:
        return f"unknown emotion code {code!r} (kz, sk, mt, hl)"
    folder = _TUREV_FOLDERS.get(path.parent.name.lower())
    if folder is not None and folder != emotion:
        return f"emotion code {code!r} ({emotion}) disagrees with its folder {path.parent.name!r}"
    return Utterance(
        path=str(path),
        corpus="turev",
        speaker=f"turev_{spk}",
        emotion=emotion,
        gender=None,
        fields={"word": word.lower(), "code": code.lower()},
    )


def parse_turev(root: str | Path) -> CorpusScan:
    """Scan TurEV-DB (Turkish Emotion Voice Database): isolated Turkish words, 6 speakers, 4 emotions.

    Naming convention ``<Emotion>/<speaker>_<code>_<word>.{wav,flac}``, e.g. ``Angry/1157_kz_acik.wav``:
    ``speaker`` a 4-digit id (1157, 1234, 1358, 1984, 6783, 7895; speaker id ``turev_1157``); ``code``
    kz kızgın = angry, sk sakin = calm, mt mutlu = happy, hl hüzünlü = sad (:data:`TUREV_CODES`);
    ``word`` the spoken word (``fields["word"]``). A file whose code disagrees with its emotion folder
    is skipped with that reason. Gender is not given by the corpus (``None``). Label sets without a calm
    class fold calm into neutral (``data.calm``).

    Source: Canpolat, Ormanoğlu & Zeyrek (2020), "Turkish Emotion Voice Database (TurEV-DB)",
    Proc. 1st Joint Workshop SLTU-CCURL, pp. 368–375 (repository Xeonen/TurEV-DB, folder ``Sound Source/``).
    Licence CC BY-NC-ND 4.0.

    Args:
        root: Directory holding the corpus (searched recursively).

    Returns:
        The scan; non-matching names are in ``skipped``.

    Raises:
        FileNotFoundError: if ``root`` is not a directory or holds no TurEV-DB files.
    """
    return _scan(root, "turev", _parse_turev_file, TUREV_PATTERN)


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


# --------------------------------------------------------------------------- EmoDB

EMODB_PATTERN = "wav/03a01Fa.wav (speaker 03, text a01, emotion W/L/E/A/F/T/N, version a-g)"
_EMODB_RE = re.compile(r"^(\d\d)([ab]\d\d)([WLEAFTN])([a-z])$")
_EMODB_EMOTIONS = {"W": "angry", "L": "boredom", "E": "disgust", "A": "fear", "F": "happy", "T": "sad", "N": "neutral"}
#: EmoDB's ten speakers and their sex (Burkhardt et al., 2005, Table 1).
EMODB_SPEAKERS = {"03": "male", "08": "female", "09": "female", "10": "male", "11": "male",
                  "12": "male", "13": "female", "14": "female", "15": "male", "16": "female"}


def _parse_emodb_file(path: Path) -> ParseResult:
    m = _EMODB_RE.match(path.stem)
    if not m:
        return "name does not match SSTTTEV (e.g. 03a01Fa)"
    spk, text, emo, version = m.groups()
    if spk not in EMODB_SPEAKERS:
        return f"speaker {spk} is not one of EmoDB's {sorted(EMODB_SPEAKERS)}"
    return Utterance(
        path=str(path), corpus="emodb", speaker=f"emodb_{spk}", emotion=_EMODB_EMOTIONS[emo],
        gender=EMODB_SPEAKERS[spk], fields={"sentence": text, "version": version, "language": "de"},
    )


def parse_emodb(root: str | Path) -> CorpusScan:
    """Scan the Berlin Database of Emotional Speech (EmoDB).

    Naming convention ``wav/SSTTTEV.wav``, e.g. ``03a01Fa.wav``: speaker ``SS`` (03, 08–16;
    speaker id ``emodb_03``, sex from :data:`EMODB_SPEAKERS`), text code ``TTT`` (a01…b10,
    ``fields["sentence"]``), emotion letter ``E`` (German initials): W anger → ``angry``, L
    boredom, E disgust, A fear, F happiness → ``happy``, T sadness → ``sad``, N neutral; version
    letter ``V`` (``fields["version"]``). ``fields["language"]`` is ``de``. The ``wav/`` folder
    of the distribution or a flat folder of the clips both work.

    Source: Burkhardt et al. (2005), "A database of German emotional speech", Proc. Interspeech
    2005, 1517–1520.

    Args:
        root: Directory holding the corpus (searched recursively).

    Returns:
        The scan; non-matching names are in ``skipped``.

    Raises:
        FileNotFoundError: if ``root`` is not a directory or holds no EmoDB files.
    """
    return _scan(root, "emodb", _parse_emodb_file, EMODB_PATTERN)


# --------------------------------------------------------------------------- EMOVO

EMOVO_PATTERN = "f1/dis-f1-b1.wav (emotion-speaker-sentence; speakers f1-f3, m1-m3)"
_EMOVO_RE = re.compile(r"^(dis|gio|neu|pau|rab|sor|tri)-([fm][1-3])-([bdln]\d)$", re.IGNORECASE)
_EMOVO_EMOTIONS = {"dis": "disgust", "gio": "happy", "neu": "neutral", "pau": "fear", "rab": "angry",
                   "sor": "surprise", "tri": "sad"}


def _parse_emovo_file(path: Path) -> ParseResult:
    m = _EMOVO_RE.match(path.stem)
    if not m:
        return "name does not match emo-spk-sentence (e.g. dis-f1-b1)"
    emo, spk, sentence = (g.lower() for g in m.groups())
    return Utterance(
        path=str(path), corpus="emovo", speaker=f"emovo_{spk}", emotion=_EMOVO_EMOTIONS[emo],
        gender="female" if spk[0] == "f" else "male", fields={"sentence": sentence, "language": "it"},
    )


def parse_emovo(root: str | Path) -> CorpusScan:
    """Scan EMOVO (Italian emotional speech).

    Naming convention ``SPK/EMO-SPK-SEN.wav``, e.g. ``f1/dis-f1-b1.wav`` (one folder per speaker,
    or flat): emotion ``dis`` disgust, ``gio`` joy → ``happy``, ``neu`` neutral, ``pau`` fear,
    ``rab`` anger → ``angry``, ``sor`` surprise, ``tri`` sadness → ``sad``; speakers f1–f3
    (female) and m1–m3 (male), speaker id ``emovo_f1``; sentence code b1–b3, l1–l4, n1–n5,
    d1–d2 (``fields["sentence"]``); ``fields["language"]`` is ``it``. Case is ignored.

    Source: Costantini et al. (2014), "EMOVO Corpus: an Italian Emotional Speech Database",
    Proc. LREC 2014, 3501–3504.

    Args:
        root: Directory holding the corpus (searched recursively).

    Returns:
        The scan; non-matching names are in ``skipped``.

    Raises:
        FileNotFoundError: if ``root`` is not a directory or holds no EMOVO files.
    """
    return _scan(root, "emovo", _parse_emovo_file, EMOVO_PATTERN)


# --------------------------------------------------------------------------- IEMOCAP

IEMOCAP_PATTERN = ("SessionN/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav, labelled in "
                   "SessionN/dialog/EmoEvaluation/Ses01F_impro01.txt")
_IEMOCAP_UTT_RE = re.compile(r"^Ses0?(\d)[FM]_(impro|script)\w*_([FM])\d{3}$")
_IEMOCAP_LINE_RE = re.compile(
    r"^\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(Ses\w+)\s+(\w+)\s+\[\s*([\d.]+),\s*([\d.]+),\s*([\d.]+)\s*\]"
)
#: IEMOCAP's categorical codes (EmoEvaluation files) → vocabulary words.
IEMOCAP_EMOTIONS = {"neu": "neutral", "hap": "happy", "ang": "angry", "sad": "sad", "exc": "excited",
                    "fru": "frustrated", "sur": "surprise", "fea": "fear", "dis": "disgust",
                    "oth": "other", "xxx": "no_agreement"}


def iemocap_labels(root: str | Path) -> dict[str, dict[str, str]]:
    """Utterance id → label record from every ``SessionN/dialog/EmoEvaluation/*.txt`` under ``root``.

    Each summary line ``[START - END]\\tUTTERANCE\\tCODE\\t[V, A, D]`` gives the consensus
    category and the mean valence, activation and dominance (1–5).

    Returns:
        ``{"Ses01F_impro01_F000": {"code": "neu", "start_s": ..., "end_s": ..., "valence": ...,
        "activation": ..., "dominance": ..., "label_file": ...}, ...}``.
    """
    labels: dict[str, dict[str, str]] = {}
    for txt in sorted(Path(root).rglob("EmoEvaluation/*.txt")):
        if txt.name.startswith("._") or not txt.is_file():
            continue
        for line in txt.read_text(errors="replace").splitlines():
            m = _IEMOCAP_LINE_RE.match(line.strip())
            if m:
                start, end, utt, code, val, act, dom = m.groups()
                labels[utt] = {"code": code.lower(), "start_s": start, "end_s": end, "valence": val,
                               "activation": act, "dominance": dom, "label_file": str(txt)}
    return labels


def _parse_iemocap_file(path: Path, labels: dict[str, dict[str, str]]) -> ParseResult:
    m = _IEMOCAP_UTT_RE.match(path.stem)
    if not m:
        return "not a sentence of IEMOCAP (SesNNX_{impro,script}..._XNNN)"
    session, kind, who = m.groups()
    rec = labels.get(path.stem)
    if rec is None:
        return "no entry in the session's dialog/EmoEvaluation/*.txt"
    code = rec["code"]
    return Utterance(
        path=str(path), corpus="iemocap", speaker=f"iemocap_Ses0{session}{who}",
        emotion=IEMOCAP_EMOTIONS.get(code, code), gender="female" if who == "F" else "male",
        fields={"session": session, "type": "improvised" if kind == "impro" else "scripted",
                "dialog": path.stem.rsplit("_", 1)[0], "code": code, "valence": rec["valence"],
                "activation": rec["activation"], "dominance": rec["dominance"], "language": "en"},
    )


def parse_iemocap(root: str | Path) -> CorpusScan:
    """Scan IEMOCAP: five sessions of improvised and scripted dialogs, labels from EmoEvaluation.

    Layout of the release (``IEMOCAP_full_release/``): ``SessionN/sentences/wav/<dialog>/<utt>.wav``
    (``.flac`` also read) and ``SessionN/dialog/EmoEvaluation/<dialog>.txt``. The utterance id,
    e.g. ``Ses01F_impro01_F000`` or ``Ses01F_script01_1_M012``, names the session (1–5), the
    dialog type (``impro``/``script`` → ``fields["type"]`` ``improvised``/``scripted``) and, in
    its last part, the speaking actor's sex: speaker id ``iemocap_Ses01F`` (ten speakers, two per
    session; the ``F``/``M`` after the session number only tells who wore the markers).
    Categories: neu, hap, ang, sad, exc → ``excited`` (``data.label_set=iemocap4`` merges it into
    happy), fru → ``frustrated``, sur, fea, dis, oth → ``other``, xxx (no majority) →
    ``no_agreement``. ``fields`` hold ``session``, ``type``, ``dialog``, the raw ``code``, the
    mean ``valence``/``activation``/``dominance`` and ``language`` (``en``). Sentences without a
    label line, dialog-level recordings, and label lines without an audio file are in
    ``skipped``. ``data.split=session data.fold=N`` holds out session N (leave-one-session-out).

    Source: Busso et al. (2008), "IEMOCAP: interactive emotional dyadic motion capture
    database", Language Resources and Evaluation 42(4): 335–359.

    Args:
        root: Directory holding the ``SessionN`` folders (searched recursively).

    Returns:
        The scan.

    Raises:
        FileNotFoundError: if ``root`` is not a directory or holds no labelled IEMOCAP sentence.
    """
    root = Path(root).expanduser().resolve()
    labels = iemocap_labels(root) if root.is_dir() else {}
    scan = _scan(root, "iemocap", partial(_parse_iemocap_file, labels=labels), IEMOCAP_PATTERN)
    found = {Path(u.path).stem for u in scan.utterances}
    missing = sorted(set(labels) - found)
    if missing:
        log.warning("iemocap: %d labelled utterance(s) have no audio file, e.g. %s", len(missing), missing[:3])
        scan.skipped += [(labels[m]["label_file"] + f"#{m}", "labelled, but no audio file") for m in missing]
    return scan


# --------------------------------------------------------------------------- MSP-Podcast

MSPPODCAST_PATTERN = "Audios/MSP-PODCAST_0001_0008.wav listed in Labels/labels_consensus.csv"
MSPPODCAST_LABEL_FILES = ("labels_consensus.csv", "labels_concensus.csv")
#: MSP-Podcast's consensus classes (``EmoClass``) → vocabulary words.
MSPPODCAST_EMOTIONS = {"A": "angry", "S": "sad", "H": "happy", "U": "surprise", "F": "fear", "D": "disgust",
                       "C": "contempt", "N": "neutral", "O": "other", "X": "no_agreement"}
_MSP_PARTITIONS = {"train": "train", "development": "val", "validation": "val", "test1": "test"}
_MSP_COLUMNS = ("FileName", "EmoClass", "SpkrID", "Gender", "Split_Set")


def msppodcast_labels(root: Path) -> dict[str, dict[str, str]]:
    """File stem → row of MSP-Podcast's ``labels_consensus.csv`` (also spelt ``labels_concensus.csv``).

    Raises:
        FileNotFoundError: if neither file is under ``root``.
        ValueError: if the table lacks one of ``FileName, EmoClass, SpkrID, Gender, Split_Set``.
    """
    found = [p for name in MSPPODCAST_LABEL_FILES for p in sorted(root.rglob(name))]
    if not found:
        raise FileNotFoundError(f"msppodcast: no {' or '.join(MSPPODCAST_LABEL_FILES)} under {root} (Labels/ folder "
                                "of the MSP-Podcast release)")
    with found[0].open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in _MSP_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{found[0]}: missing column(s) {missing} (columns: {header})")
        rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k} for r in reader]
    return {Path(r["FileName"]).stem: r for r in rows}


def _parse_msppodcast_file(path: Path, labels: dict[str, dict[str, str]]) -> ParseResult:
    row = labels.get(path.stem)
    if row is None:
        return "not listed in labels_consensus.csv"
    code = row["EmoClass"].upper()
    spk = row["SpkrID"]
    if not spk or spk.lower() == "unknown":
        parts = path.stem.split("_")  # MSP-PODCAST_<podcast>_<segment>: unknown speakers grouped by podcast
        spk = f"podcast{parts[1]}" if len(parts) == 3 else "unknown"
    split = row["Split_Set"].strip().lower()
    fields = {"partition": _MSP_PARTITIONS.get(split, split), "split_set": row["Split_Set"], "code": code,
              "language": "en"}
    for col, key in (("EmoAct", "arousal"), ("EmoVal", "valence"), ("EmoDom", "dominance")):
        if row.get(col):
            fields[key] = row[col]
    return Utterance(
        path=str(path), corpus="msppodcast", speaker=f"msppodcast_{spk}",
        emotion=MSPPODCAST_EMOTIONS.get(code, emotion_or_raw(code)), gender=_GENDERS.get(row["Gender"].lower()),
        fields=fields,
    )


def parse_msppodcast(root: str | Path) -> CorpusScan:
    """Scan MSP-Podcast with its consensus labels and partitions.

    Layout of the release: ``Audios/`` (older releases ``Audio/``) holding
    ``MSP-PODCAST_<podcast>_<segment>.wav`` and ``Labels/labels_consensus.csv`` with columns
    ``FileName, EmoClass, EmoAct, EmoVal, EmoDom, SpkrID, Gender, Split_Set``. ``EmoClass``: A
    angry, S sad, H happy, U surprise, F fear, D disgust, C contempt, N neutral, O → ``other``, X
    (no agreement) → ``no_agreement``. ``Split_Set`` goes to ``fields["partition"]``: Train →
    ``train``, Development/Validation → ``val``, Test1 → ``test``, others (Test2, Test3) kept as
    written (``data.split=partition`` leaves them unused). Speaker ``msppodcast_<SpkrID>``; an
    ``Unknown`` speaker becomes ``msppodcast_podcast<id>`` (grouped by podcast, so no unknown
    speaker spans two speaker-split sets). ``fields`` also hold ``arousal``/``valence``/
    ``dominance`` and ``language`` (``en``).

    Source: Lotfian & Busso (2019), "Building naturalistic emotionally balanced speech corpus by
    retrieving emotional speech from existing podcast recordings", IEEE Transactions on
    Affective Computing 10(4): 471–483.

    Args:
        root: Directory holding the release (searched recursively).

    Returns:
        The scan; audio files missing from the table are in ``skipped``.

    Raises:
        FileNotFoundError: no directory, no label table, or no listed audio file.
        ValueError: a label table without its columns.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"msppodcast root {root} is not a directory")
    labels = msppodcast_labels(root)
    return _scan(root, "msppodcast", partial(_parse_msppodcast_file, labels=labels), MSPPODCAST_PATTERN)


# --------------------------------------------------------------------------- ESD

ESD_PATTERN = "0011/Angry/0011_000351.wav or 0011/Angry/train/0011_000351.wav (speaker_index)"
_ESD_RE = re.compile(r"^(\d{4})_(\d{6})$")
_ESD_FOLDERS = {"angry": "angry", "happy": "happy", "neutral": "neutral", "sad": "sad", "surprise": "surprise"}
#: ESD's utterance index ranges per emotion (350 sentences each, in this order).
_ESD_ORDER = ("neutral", "angry", "happy", "sad", "surprise")
_ESD_PARTITIONS = {"train": "train", "evaluation": "val", "test": "test"}
#: ESD speakers 0011–0020 (English) and their sex, as the corpus's README lists them.
ESD_ENGLISH_SPEAKERS = {"0011": "male", "0012": "male", "0013": "male", "0014": "male", "0015": "female",
                        "0016": "female", "0017": "female", "0018": "female", "0019": "female", "0020": "male"}
ESD_MANDARIN_SPEAKERS = {"0001": "female", "0002": "female", "0003": "female", "0004": "male", "0005": "male",
                         "0006": "male", "0007": "female", "0008": "male", "0009": "female", "0010": "male"}


def _parse_esd_file(path: Path, mandarin: bool = False) -> ParseResult:
    m = _ESD_RE.match(path.stem)
    if not m:
        return "name does not match SSSS_NNNNNN"
    spk, idx = m.groups()
    if spk in ESD_MANDARIN_SPEAKERS and not mandarin:
        return "Mandarin speaker (the English speakers are 0011-0020)"
    gender = ESD_ENGLISH_SPEAKERS.get(spk) or ESD_MANDARIN_SPEAKERS.get(spk)
    if gender is None:
        return f"speaker {spk} outside 0001-0020"
    parents = [p.name.lower() for p in path.parents][:3]
    folder = next((_ESD_FOLDERS[p] for p in parents if p in _ESD_FOLDERS), None)
    n = int(idx)
    emotion = folder or (_ESD_ORDER[(n - 1) // 350] if 1 <= n <= 1750 else None)
    if emotion is None:
        return f"no emotion folder and index {idx} outside 000001-001750"
    fields = {"utterance": idx, "language": "zh" if spk in ESD_MANDARIN_SPEAKERS else "en"}
    part = next((_ESD_PARTITIONS[p] for p in parents[:1] if p in _ESD_PARTITIONS), None)
    if part:
        fields["partition"] = part
    return Utterance(path=str(path), corpus="esd", speaker=f"esd_{spk}", emotion=emotion, gender=gender, fields=fields)


def parse_esd(root: str | Path, mandarin: bool = False) -> CorpusScan:
    """Scan ESD (Emotional Speech Dataset), its English speakers 0011–0020 by default.

    Layout: ``SSSS/<Emotion>/SSSS_NNNNNN.wav``, with or without the release's ``train/``,
    ``evaluation/``, ``test/`` sub-folders (→ ``fields["partition"]`` ``train``/``val``/``test``).
    Emotion from the folder (Angry, Happy, Neutral, Sad, Surprise), else from the index (350
    each: 1–350 neutral, 351–700 angry, 701–1050 happy, 1051–1400 sad, 1401–1750 surprise).
    Speaker ``esd_0011``, sex from the corpus's README; ``fields["language"]`` ``en`` (``zh``).

    Source: Zhou et al. (2021), "Seen and unseen emotional style transfer for voice conversion
    with a new emotional speech dataset", Proc. ICASSP 2021, 920–924.

    Args:
        root: Directory holding the speaker folders (searched recursively).
        mandarin: Also read the Mandarin speakers 0001–0010 (else they are in ``skipped``).

    Returns:
        The scan.

    Raises:
        FileNotFoundError: if ``root`` is not a directory or holds no ESD files.
    """
    return _scan(root, "esd", partial(_parse_esd_file, mandarin=mandarin), ESD_PATTERN)


# --------------------------------------------------------------------------- CaFE

CAFE_PATTERN = "CaFE_48k/Colère/Faible/01-C-1-1.wav (actor-emotion-intensity-sentence)"
_CAFE_RE = re.compile(r"^(\d\d)-([CDJNPST])-([12])-([1-6])$", re.IGNORECASE)
_CAFE_EMOTIONS = {"C": "angry", "D": "disgust", "J": "happy", "N": "neutral", "P": "fear", "S": "surprise", "T": "sad"}


def _parse_cafe_file(path: Path) -> ParseResult:
    m = _CAFE_RE.match(path.stem)
    if not m:
        return "name does not match AA-E-I-S (e.g. 01-C-1-1)"
    actor, emo, intensity, sentence = m.groups()
    if not 1 <= int(actor) <= 12:
        return f"actor {actor} outside 01-12"
    return Utterance(
        path=str(path), corpus="cafe", speaker=f"cafe_{actor}", emotion=_CAFE_EMOTIONS[emo.upper()],
        gender="male" if int(actor) % 2 else "female",
        fields={"intensity": "low" if intensity == "1" else "high", "sentence": sentence, "language": "fr"},
    )


def parse_cafe(root: str | Path) -> CorpusScan:
    """Scan CaFE (Canadian French Emotional speech dataset).

    Naming convention ``AA-E-I-S.wav`` in ``<Émotion>/<Intensité>/`` folders (``CaFE_48k/Colère/
    Faible/01-C-1-1.wav``; neutral directly under ``Neutre/``) or flat: actor ``AA`` 01–12 (odd
    male, even female; speaker id ``cafe_01``), emotion ``E`` (French initials) C colère →
    ``angry``, D dégoût → ``disgust``, J joie → ``happy``, N neutre, P peur → ``fear``, S
    surprise, T tristesse → ``sad``; intensity 1 faible / 2 fort (``fields["intensity"]``
    ``low``/``high``); sentence 1–6. ``fields["language"]`` is ``fr``.

    Source: Gournay, Lahaie & Lefebvre (2018), "A Canadian French emotional speech dataset",
    Proc. ACM MMSys 2018, 399–402. doi:10.5281/zenodo.1478765.

    Args:
        root: Directory holding the corpus (searched recursively).

    Returns:
        The scan; non-matching names are in ``skipped``.

    Raises:
        FileNotFoundError: if ``root`` is not a directory or holds no CaFE files.
    """
    return _scan(root, "cafe", _parse_cafe_file, CAFE_PATTERN)


# --------------------------------------------------------------------------- ShEMO

SHEMO_PATTERN = "female/F01A01.wav (sex, speaker, emotion A/F/H/N/S/W, utterance)"
_SHEMO_RE = re.compile(r"^([FM])(\d\d)([AFHNSW])(\d\d)$", re.IGNORECASE)
_SHEMO_EMOTIONS = {"A": "angry", "F": "fear", "H": "happy", "N": "neutral", "S": "sad", "W": "surprise"}


def _parse_shemo_file(path: Path) -> ParseResult:
    m = _SHEMO_RE.match(path.stem)
    if not m:
        return "name does not match XNNENN (e.g. F01A01)"
    sex, num, emo, utt = (g.upper() for g in m.groups())
    return Utterance(
        path=str(path), corpus="shemo", speaker=f"shemo_{sex}{num}", emotion=_SHEMO_EMOTIONS[emo],
        gender="female" if sex == "F" else "male", fields={"utterance": utt, "language": "fa"},
    )


def parse_shemo(root: str | Path) -> CorpusScan:
    """Scan ShEMO (Sharif Emotional Speech Database, Persian).

    Naming convention ``XNNENN.wav`` in ``female/`` and ``male/`` folders (or flat), e.g.
    ``F01A01.wav``: sex ``X`` F/M, speaker number ``NN`` (speaker id ``shemo_F01``), emotion
    ``E`` A anger → ``angry``, F fear, H happiness → ``happy``, N neutral, S sadness → ``sad``, W
    surprise; utterance number (``fields["utterance"]``). ``fields["language"]`` is ``fa``.

    Source: Mohamad Nezami, Jamshid Lou & Karami (2019), "ShEMO: a large-scale validated database
    for Persian speech emotion detection", Language Resources and Evaluation 53(1): 1–16.

    Args:
        root: Directory holding the corpus (searched recursively).

    Returns:
        The scan; non-matching names are in ``skipped``.

    Raises:
        FileNotFoundError: if ``root`` is not a directory or holds no ShEMO files.
    """
    return _scan(root, "shemo", _parse_shemo_file, SHEMO_PATTERN)


# --------------------------------------------------------------------------- AESDD

AESDD_PATTERN = "anger/a01 (1).wav (emotion letter, utterance, (speaker), optional take letter)"
_AESDD_RE = re.compile(r"^([adfhs])(\d\d)\s*\((\d)\)\s*([a-z]?)$", re.IGNORECASE)
_AESDD_EMOTIONS = {"a": "angry", "d": "disgust", "f": "fear", "h": "happy", "s": "sad"}


def _parse_aesdd_file(path: Path) -> ParseResult:
    m = _AESDD_RE.match(path.stem)
    if not m:
        return "name does not match eNN (S) (e.g. a01 (1))"
    emo, utt, spk, take = m.groups()
    fields = {"utterance": utt, "language": "el"}
    if take:
        fields["take"] = take.lower()
    return Utterance(path=str(path), corpus="aesdd", speaker=f"aesdd_{spk}", emotion=_AESDD_EMOTIONS[emo.lower()],
                     gender=None, fields=fields)


def parse_aesdd(root: str | Path) -> CorpusScan:
    """Scan AESDD (Acted Emotional Speech Dynamic Database, Greek).

    Naming convention ``eNN (S).wav`` in one folder per emotion (``anger/``, ``disgust/``,
    ``fear/``, ``happiness/``, ``sadness/``) or flat, e.g. ``anger/a01 (1).wav``: emotion letter
    a angry, d disgust, f fear, h happy, s sad; utterance ``NN`` 01–20 (``fields["utterance"]``);
    speaker ``S`` 1–5 in parentheses (speaker id ``aesdd_1``); a trailing letter marks a second
    take (``a06 (5)b.wav``, ``fields["take"]``). Sex is not in the names (``gender`` ``None``).
    ``fields["language"]`` is ``el``.

    Source: Vryzas et al. (2018), "Speech emotion recognition for performance interaction",
    Journal of the Audio Engineering Society 66(6): 457–467.

    Args:
        root: Directory holding the corpus (searched recursively).

    Returns:
        The scan; non-matching names are in ``skipped``.

    Raises:
        FileNotFoundError: if ``root`` is not a directory or holds no AESDD files.
    """
    return _scan(root, "aesdd", _parse_aesdd_file, AESDD_PATTERN)


# --------------------------------------------------------------------------- JL-Corpus

JLCORPUS_PATTERN = "male1_angry_10a_1.wav (speaker_emotion_sentence_take)"
_JLCORPUS_RE = re.compile(r"^((?:fe)?male\d)_([a-z]+)_(\d+[a-z]?)_(\d+)$", re.IGNORECASE)
#: JL-Corpus's five primary and five secondary emotions.
JLCORPUS_EMOTIONS = ("angry", "sad", "neutral", "happy", "excited",
                     "anxious", "apologetic", "assertive", "concerned", "encouraging")


def _parse_jlcorpus_file(path: Path) -> ParseResult:
    m = _JLCORPUS_RE.match(path.stem)
    if not m:
        return "name does not match speaker_emotion_sentence_take (e.g. male1_angry_10a_1)"
    spk, emo, sentence, take = (g.lower() for g in m.groups())
    if emo not in JLCORPUS_EMOTIONS:
        return f"unknown emotion {emo!r}"
    return Utterance(
        path=str(path), corpus="jlcorpus", speaker=f"jlcorpus_{spk}", emotion=emo,
        gender="female" if spk.startswith("female") else "male",
        fields={"sentence": sentence, "take": take, "language": "en",
                "emotion_type": "primary" if emo in JLCORPUS_EMOTIONS[:5] else "secondary"},
    )


def parse_jlcorpus(root: str | Path) -> CorpusScan:
    """Scan JL-Corpus (New Zealand English, four actors).

    Naming convention ``speaker_emotion_sentence_take.wav``, e.g. ``male1_angry_10a_1.wav`` (in
    ``Raw JL corpus (unchecked and unannotated)/JL(wav+txt)/`` beside ``.txt`` transcripts, or
    any other folder): speakers male1, male2, female1, female2 (speaker id ``jlcorpus_male1``);
    the five primary emotions angry, sad, neutral, happy, excited and the five secondary ones
    anxious, apologetic, assertive, concerned, encouraging (``fields["emotion_type"]``); sentence
    code (``fields["sentence"]``) and take. ``fields["language"]`` is ``en``.

    Source: James, Tian & Watson (2018), "An open source emotional speech corpus for human robot
    interaction applications", Proc. Interspeech 2018, 2768–2772.

    Args:
        root: Directory holding the corpus (searched recursively).

    Returns:
        The scan; non-matching names are in ``skipped``.

    Raises:
        FileNotFoundError: if ``root`` is not a directory or holds no JL-Corpus files.
    """
    return _scan(root, "jlcorpus", _parse_jlcorpus_file, JLCORPUS_PATTERN)


# --------------------------------------------------------------------------- CSV manifest

MANIFEST_REQUIRED = ("path", "label", "speaker")
_GENDERS = {"male": "male", "m": "male", "female": "female", "f": "female"}
_NO_GENDER = ("", "none", "unknown", "na", "n/a")


def parse_manifest(csv_path: str | Path, corpus: str | None = None) -> CorpusScan:
    """Read a generic CSV manifest of labelled audio files.

    Columns ``path``, ``label``, ``speaker`` are required; ``gender`` (male/m/female/f or empty)
    and ``corpus`` are optional; any other column goes into ``fields``. Relative paths are
    resolved against the CSV's directory. Labels are mapped onto the vocabulary
    (:func:`~ser_lightning.data.labels.lookup_emotion`); a label the vocabulary lacks is kept as
    written (lower case), for ``data.unknown_labels`` to act on. Speakers are prefixed with the corpus
    name (``{corpus}_{speaker}``, unless already so prefixed); the corpus is ``corpus`` if given,
    else the row's ``corpus`` column, else the CSV's file stem.

    Args:
        csv_path: Manifest CSV.
        corpus: Corpus name for every row (overrides the ``corpus`` column).

    Returns:
        The scan (``skipped`` is always empty: a bad row is an error).

    Raises:
        FileNotFoundError: if the CSV or a listed audio file does not exist (names the line).
        ValueError: for a missing required column, an empty label, an unknown gender, or no rows.
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
            if not row["label"]:
                raise ValueError(f"{where}: empty label")
            scan.utterances.append(
                Utterance(
                    path=str(path.resolve()),
                    corpus=name,
                    speaker=spk if spk.startswith(f"{name}_") else f"{name}_{spk}",
                    emotion=emotion_or_raw(row["label"]),
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
    "emodb": parse_emodb,
    "emovo": parse_emovo,
    "iemocap": parse_iemocap,
    "msppodcast": parse_msppodcast,
    "esd": parse_esd,
    "cafe": parse_cafe,
    "shemo": parse_shemo,
    "aesdd": parse_aesdd,
    "jlcorpus": parse_jlcorpus,
    "turev": parse_turev,
}

#: Per-file parse functions (name alone), used to recognise a corpus directly inside a data root
#: and to give EmoBox's clips their speakers. IEMOCAP and MSP-Podcast need their label files.
FILE_PARSERS: dict[str, Callable[[Path], ParseResult]] = {
    "ravdess": _parse_ravdess_file,
    "cremad": _parse_cremad_file,
    "tess": _parse_tess_file,
    "savee": _parse_savee_file,
    "emodb": _parse_emodb_file,
    "emovo": _parse_emovo_file,
    "esd": partial(_parse_esd_file, mandarin=True),
    "cafe": _parse_cafe_file,
    "shemo": _parse_shemo_file,
    "aesdd": _parse_aesdd_file,
    "jlcorpus": _parse_jlcorpus_file,
    "turev": _parse_turev_file,
}
_FILE_PARSERS = FILE_PARSERS

#: Directory names searched (in order) under a data root for each corpus.
CORPUS_DIR_NAMES: dict[str, tuple[str, ...]] = {
    "ravdess": ("ravdess", "RAVDESS", "Audio_Speech_Actors_01-24"),
    "cremad": ("cremad", "CREMA-D", "crema-d", "CREMA_D"),
    "tess": ("tess", "TESS", "TESS Toronto emotional speech set data"),
    "savee": ("savee", "SAVEE", "ALL", "AudioData"),
    "emodb": ("emodb", "EmoDB", "EMODB", "emo-db"),
    "emovo": ("emovo", "EMOVO"),
    "iemocap": ("iemocap", "IEMOCAP", "IEMOCAP_full_release"),
    "msppodcast": ("msppodcast", "MSP-Podcast", "MSP-PODCAST", "msp-podcast"),
    "esd": ("esd", "ESD", "Emotion Speech Dataset", "Emotional Speech Dataset (ESD)"),
    "cafe": ("cafe", "CaFE", "CaFE_48k", "CaFE_192k"),
    "shemo": ("shemo", "ShEMO"),
    "aesdd": ("aesdd", "AESDD", "Acted Emotional Speech Dynamic Database"),
    "jlcorpus": ("jlcorpus", "JL-Corpus", "JL corpus", "jl-corpus"),
    "turev": ("turev", "TurEV-DB", "turev-db", "TurEV", "Sound Source"),
}

#: What each corpus is, for tables and reports: language (ISO 639-1) and speakers.
CORPUS_INFO: dict[str, dict[str, str]] = {
    "ravdess": {"language": "en", "speakers": "24"}, "cremad": {"language": "en", "speakers": "91"},
    "tess": {"language": "en", "speakers": "2"}, "savee": {"language": "en", "speakers": "4"},
    "emodb": {"language": "de", "speakers": "10"}, "emovo": {"language": "it", "speakers": "6"},
    "iemocap": {"language": "en", "speakers": "10"}, "msppodcast": {"language": "en", "speakers": "1000+"},
    "esd": {"language": "en", "speakers": "10"}, "cafe": {"language": "fr", "speakers": "12"},
    "shemo": {"language": "fa", "speakers": "87"}, "aesdd": {"language": "el", "speakers": "5"},
    "jlcorpus": {"language": "en", "speakers": "4"}, "turev": {"language": "tr", "speakers": "6"},
}

#: Pseudo-corpus name for EmoBox's metadata (settings under ``data.emobox``).
EMOBOX = "emobox"


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
    if name not in PARSERS and name != EMOBOX:
        raise ValueError(
            f"data.corpora: unknown corpus {corpus!r}; choose one of {sorted(PARSERS)}, {EMOBOX!r} (with data.emobox "
            "settings) or give a path to a .csv manifest"
        )
    return name


_check_name = check_corpus_name


def _holds_corpus(directory: Path, corpus: str) -> bool:
    """Whether an audio file at depth 1 or 2 of ``directory`` parses as ``corpus`` (IEMOCAP: a
    ``SessionN/dialog/EmoEvaluation`` folder; MSP-Podcast: its label table in ``Labels/``)."""
    if corpus == "iemocap":
        return any(directory.glob("Session*/dialog/EmoEvaluation"))
    if corpus == "msppodcast":
        return any((directory / "Labels" / n).is_file() for n in MSPPODCAST_LABEL_FILES)
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
    if corpus == EMOBOX:
        raise ValueError("emobox is not a directory corpus: its clips come from data.emobox.metadata_dir")
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
