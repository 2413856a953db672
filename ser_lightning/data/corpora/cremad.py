"""CREMA-D: Crowd-sourced Emotional Multimodal Actors Dataset: the parser and the registry record (``data.corpora=[cremad]``).

Source: Cao et al. (2014), IEEE Transactions on Affective Computing 5(4): 377-390.
"""

from __future__ import annotations

import csv
import re
from functools import partial
from pathlib import Path

from ser_lightning.data.corpora.base import CorpusScan, ParseResult, log, scan_directory
from ser_lightning.data.corpora.registry import Corpus, register_corpus
from ser_lightning.data.manifest import Utterance

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
    return scan_directory(root, "cremad", partial(_parse_cremad_file, genders=genders), CREMAD_PATTERN)


CORPUS = register_corpus(Corpus(
    name='cremad',
    title='CREMA-D: Crowd-sourced Emotional Multimodal Actors Dataset',
    scan=parse_cremad,
    parse_file=_parse_cremad_file,
    pattern=CREMAD_PATTERN,
    dir_names=('cremad', 'CREMA-D', 'crema-d', 'CREMA_D'),
    language='en',
    speakers='91',
    codes=_CREMAD_EMOTIONS,
    codes_source=("CREMA-D README (github.com/CheyneyComputerScience/CREMA-D), 'Filename labeling conventions': Anger "
                  '(ANG), Disgust (DIS), Fear (FEA), Happy/Joy (HAP), Neutral (NEU), Sad (SAD); Cao et al. (2014)'),
    source='Cao et al. (2014), IEEE Transactions on Affective Computing 5(4): 377-390',
))
