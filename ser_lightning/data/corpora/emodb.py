"""Berlin Database of Emotional Speech (EmoDB): the parser and the registry record (``data.corpora=[emodb]``).

Source: Burkhardt et al. (2005), Proc. Interspeech 2005, 1517-1520.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser_lightning.data.corpora.base import CorpusScan, ParseResult, scan_directory
from ser_lightning.data.corpora.registry import Corpus, register_corpus
from ser_lightning.data.manifest import Utterance

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
    return scan_directory(root, "emodb", _parse_emodb_file, EMODB_PATTERN)


CORPUS = register_corpus(Corpus(
    name='emodb',
    title='Berlin Database of Emotional Speech (EmoDB)',
    scan=parse_emodb,
    parse_file=_parse_emodb_file,
    pattern=EMODB_PATTERN,
    dir_names=('emodb', 'EmoDB', 'EMODB', 'emo-db'),
    language='de',
    speakers='10',
    codes=_EMODB_EMOTIONS,
    codes_source=('EmoDB documentation (emodb.bilderbar.info/docu, Burkhardt et al. 2005), position 6 of the name: W '
                  'Ärger (anger), L Langeweile (boredom), E Ekel (disgust), A Angst (fear), F Freude (happiness), T '
                  'Trauer (sadness), N neutral'),
    source='Burkhardt et al. (2005), Proc. Interspeech 2005, 1517-1520',
))
