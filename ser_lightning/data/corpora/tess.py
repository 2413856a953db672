"""Toronto emotional speech set (TESS): the parser and the registry record (``data.corpora=[tess]``).

Source: Dupuis & Pichora-Fuller (2010), University of Toronto, doi:10.5683/SP2/E8H2MF.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser_lightning.data.corpora.base import CorpusScan, ParseResult, scan_directory
from ser_lightning.data.corpora.registry import Corpus, register_corpus
from ser_lightning.data.manifest import Utterance

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
    return scan_directory(root, "tess", _parse_tess_file, TESS_PATTERN)


CORPUS = register_corpus(Corpus(
    name='tess',
    title='Toronto emotional speech set (TESS)',
    scan=parse_tess,
    parse_file=_parse_tess_file,
    pattern=TESS_PATTERN,
    dir_names=('tess', 'TESS', 'TESS Toronto emotional speech set data'),
    language='en',
    speakers='2',
    codes=_TESS_EMOTIONS,
    codes_source=('TESS, Dupuis & Pichora-Fuller (2010), doi:10.5683/SP2/E8H2MF: seven emotions (anger, disgust, fear, '
                  "happiness, pleasant surprise, sadness, neutral), file names 'OAF_<word>_<emotion>' with the "
                  "distribution's suffixes angry, disgust, fear, happy, neutral, ps, sad"),
    source='Dupuis & Pichora-Fuller (2010), University of Toronto, doi:10.5683/SP2/E8H2MF',
))
