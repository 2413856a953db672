"""EMOVO Corpus: an Italian Emotional Speech Database: the parser and the registry record (``data.corpora=[emovo]``).

Source: Costantini et al. (2014), Proc. LREC 2014, 3501-3504.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser_lightning.data.corpora.base import CorpusScan, ParseResult, scan_directory
from ser_lightning.data.corpora.registry import Corpus, register_corpus
from ser_lightning.data.manifest import Utterance

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
    return scan_directory(root, "emovo", _parse_emovo_file, EMOVO_PATTERN)


CORPUS = register_corpus(Corpus(
    name='emovo',
    title='EMOVO Corpus: an Italian Emotional Speech Database',
    scan=parse_emovo,
    parse_file=_parse_emovo_file,
    pattern=EMOVO_PATTERN,
    dir_names=('emovo', 'EMOVO'),
    language='it',
    speakers='6',
    codes=_EMOVO_EMOTIONS,
    codes_source=("Costantini et al. (2014), 'EMOVO Corpus: an Italian Emotional Speech Database', LREC: disgusto "
                  '(dis), gioia (gio), neutrale (neu), paura (pau), rabbia (rab), sorpresa (sor), tristezza (tri)'),
    source='Costantini et al. (2014), Proc. LREC 2014, 3501-3504',
))
