"""Surrey Audio-Visual Expressed Emotion (SAVEE): the parser and the registry record (``data.corpora=[savee]``).

Source: Haq & Jackson (2009), Proc. AVSP 2009, 53-58.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser_lightning.data.corpora.base import CorpusScan, ParseResult, scan_directory
from ser_lightning.data.corpora.registry import Corpus, register_corpus
from ser_lightning.data.manifest import Utterance

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
    return scan_directory(root, "savee", _parse_savee_file, SAVEE_PATTERN)


CORPUS = register_corpus(Corpus(
    name='savee',
    title='Surrey Audio-Visual Expressed Emotion (SAVEE)',
    scan=parse_savee,
    parse_file=_parse_savee_file,
    pattern=SAVEE_PATTERN,
    dir_names=('savee', 'SAVEE', 'ALL', 'AudioData'),
    language='en',
    speakers='4',
    codes=_SAVEE_CODES,
    codes_source=("SAVEE AudioData/Info.txt (Haq & Jackson, 2009): 'The letters 'a', 'd', 'f', 'h', 'n', 'sa' and 'su' "
                  "represent 'anger', 'disgust', 'fear', 'happiness', 'neutral', 'sadness' and 'surprise' emotion "
                  "classes respectively'"),
    source='Haq & Jackson (2009), Proc. AVSP 2009, 53-58',
))
