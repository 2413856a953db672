"""Turkish Emotion Voice Database (TurEV-DB): the parser and the registry record (``data.corpora=[turev]``).

Source: Canpolat, Ormanoğlu & Zeyrek (2020), Proc. 1st Joint Workshop SLTU-CCURL, 368-375.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser_lightning.data.corpora.base import CorpusScan, ParseResult, scan_directory
from ser_lightning.data.corpora.registry import Corpus, register_corpus
from ser_lightning.data.manifest import Utterance

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
    return scan_directory(root, "turev", _parse_turev_file, TUREV_PATTERN)


CORPUS = register_corpus(Corpus(
    name='turev',
    title='Turkish Emotion Voice Database (TurEV-DB)',
    scan=parse_turev,
    parse_file=_parse_turev_file,
    pattern=TUREV_PATTERN,
    dir_names=('turev', 'TurEV-DB', 'turev-db', 'TurEV', 'Sound Source'),
    language='tr',
    speakers='6',
    codes=TUREV_CODES,
    codes_source=("TurEV-DB (Canpolat, Ormanoğlu & Zeyrek 2020, repository Xeonen/TurEV-DB, 'Sound "
                  "Source/<Emotion>/<speaker>_<code>_<word>'): kz kızgın angry, sk sakin calm, mt mutlu happy, hl "
                  'hüzünlü sad'),
    source='Canpolat, Ormanoğlu & Zeyrek (2020), Proc. 1st Joint Workshop SLTU-CCURL, 368-375',
))
