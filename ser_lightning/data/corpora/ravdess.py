"""The Ryerson Audio-Visual Database of Emotional Speech and Song (RAVDESS), audio-only speech: the parser and the registry record (``data.corpora=[ravdess]``).

Source: Livingstone & Russo (2018), PLoS ONE 13(5): e0196391.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser_lightning.data.corpora.base import CorpusScan, ParseResult, scan_directory
from ser_lightning.data.corpora.registry import Corpus, register_corpus
from ser_lightning.data.labels import RAVDESS_EMOTIONS
from ser_lightning.data.manifest import Utterance

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
    return scan_directory(root, "ravdess", _parse_ravdess_file, RAVDESS_PATTERN)


CORPUS = register_corpus(Corpus(
    name='ravdess',
    title='The Ryerson Audio-Visual Database of Emotional Speech and Song (RAVDESS), audio-only speech',
    scan=parse_ravdess,
    parse_file=_parse_ravdess_file,
    pattern=RAVDESS_PATTERN,
    dir_names=('ravdess', 'RAVDESS', 'Audio_Speech_Actors_01-24'),
    language='en',
    speakers='24',
    codes={f"{i:02d}": e for i, e in enumerate(RAVDESS_EMOTIONS, 1)},
    codes_source=("Livingstone & Russo (2018), PLoS ONE 13(5): e0196391, and the RAVDESS Zenodo record 1188976, 'File "
                  "naming convention': Emotion (01 = neutral, 02 = calm, 03 = happy, 04 = sad, 05 = angry, 06 = "
                  'fearful, 07 = disgust, 08 = surprised)'),
    source='Livingstone & Russo (2018), PLoS ONE 13(5): e0196391',
))
