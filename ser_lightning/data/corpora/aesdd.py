"""Acted Emotional Speech Dynamic Database (AESDD), Greek: the parser and the registry record (``data.corpora=[aesdd]``).

Source: Vryzas et al. (2018), Journal of the Audio Engineering Society 66(6): 457-467.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser_lightning.data.corpora.base import CorpusScan, ParseResult, scan_directory
from ser_lightning.data.corpora.registry import Corpus, register_corpus
from ser_lightning.data.manifest import Utterance

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
    return scan_directory(root, "aesdd", _parse_aesdd_file, AESDD_PATTERN)


CORPUS = register_corpus(Corpus(
    name='aesdd',
    title='Acted Emotional Speech Dynamic Database (AESDD), Greek',
    scan=parse_aesdd,
    parse_file=_parse_aesdd_file,
    pattern=AESDD_PATTERN,
    dir_names=('aesdd', 'AESDD', 'Acted Emotional Speech Dynamic Database'),
    language='el',
    speakers='5',
    codes=_AESDD_EMOTIONS,
    codes_source=('AESDD (Vryzas et al. 2018, JAES 66(6)): folders anger, disgust, fear, happiness, sadness; file names'
                  " start with the emotion's letter a, d, f, h, s"),
    source='Vryzas et al. (2018), Journal of the Audio Engineering Society 66(6): 457-467',
))
