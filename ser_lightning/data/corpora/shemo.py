"""Sharif Emotional Speech Database (ShEMO), Persian: the parser and the registry record (``data.corpora=[shemo]``).

Source: Mohamad Nezami, Jamshid Lou & Karami (2019), Language Resources and Evaluation 53(1): 1-16.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser_lightning.data.corpora.base import CorpusScan, ParseResult, scan_directory
from ser_lightning.data.corpora.registry import Corpus, register_corpus
from ser_lightning.data.manifest import Utterance

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
    return scan_directory(root, "shemo", _parse_shemo_file, SHEMO_PATTERN)


CORPUS = register_corpus(Corpus(
    name='shemo',
    title='Sharif Emotional Speech Database (ShEMO), Persian',
    scan=parse_shemo,
    parse_file=_parse_shemo_file,
    pattern=SHEMO_PATTERN,
    dir_names=('shemo', 'ShEMO'),
    language='fa',
    speakers='87',
    codes=_SHEMO_EMOTIONS,
    codes_source=('ShEMO README (github.com/pariajm/sharif-emotional-speech-dataset, Mohamad Nezami et al. 2019), '
                  "'Description of Labels': A anger, F fear, H happiness, N neutral, S sadness, W surprise"),
    source='Mohamad Nezami, Jamshid Lou & Karami (2019), Language Resources and Evaluation 53(1): 1-16',
))
