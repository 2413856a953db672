"""Canadian French Emotional speech dataset (CaFE): the parser and the registry record (``data.corpora=[cafe]``).

Source: Gournay, Lahaie & Lefebvre (2018), Proc. ACM MMSys 2018, 399-402.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser_lightning.data.corpora.base import CorpusScan, ParseResult, scan_directory
from ser_lightning.data.corpora.registry import Corpus, register_corpus
from ser_lightning.data.manifest import Utterance

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
    return scan_directory(root, "cafe", _parse_cafe_file, CAFE_PATTERN)


CORPUS = register_corpus(Corpus(
    name='cafe',
    title='Canadian French Emotional speech dataset (CaFE)',
    scan=parse_cafe,
    parse_file=_parse_cafe_file,
    pattern=CAFE_PATTERN,
    dir_names=('cafe', 'CaFE', 'CaFE_48k', 'CaFE_192k'),
    language='fr',
    speakers='12',
    codes=_CAFE_EMOTIONS,
    codes_source=('CaFE Readme.txt (Gournay, Lahaie & Lefebvre 2018, doi:10.5281/zenodo.1478765), second field E: C = '
                  'Colère (Anger), D = Dégoût (Disgust), J = Joie (Happiness), N = Neutre (Neutral), P = Peur (Fear), S'
                  ' = Surprise, T = Tristesse (Sadness)'),
    source='Gournay, Lahaie & Lefebvre (2018), Proc. ACM MMSys 2018, 399-402',
))
