"""Emotional Speech Dataset (ESD), English speakers: the parser and the registry record (``data.corpora=[esd]``).

Source: Zhou et al. (2021), Proc. ICASSP 2021, 920-924.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

from ser_lightning.data.corpora.base import CorpusScan, ParseResult, scan_directory
from ser_lightning.data.corpora.registry import Corpus, register_corpus
from ser_lightning.data.manifest import Utterance

ESD_PATTERN = "0011/Angry/0011_000351.wav or 0011/Angry/train/0011_000351.wav (speaker_index)"
_ESD_RE = re.compile(r"^(\d{4})_(\d{6})$")
_ESD_FOLDERS = {"angry": "angry", "happy": "happy", "neutral": "neutral", "sad": "sad", "surprise": "surprise"}
#: ESD's utterance index ranges per emotion (350 sentences each, in this order).
_ESD_ORDER = ("neutral", "angry", "happy", "sad", "surprise")
_ESD_PARTITIONS = {"train": "train", "evaluation": "val", "test": "test"}
#: ESD speakers 0011–0020 (English) and their sex, as the corpus's README lists them.
ESD_ENGLISH_SPEAKERS = {"0011": "male", "0012": "male", "0013": "male", "0014": "male", "0015": "female",
                        "0016": "female", "0017": "female", "0018": "female", "0019": "female", "0020": "male"}
ESD_MANDARIN_SPEAKERS = {"0001": "female", "0002": "female", "0003": "female", "0004": "male", "0005": "male",
                         "0006": "male", "0007": "female", "0008": "male", "0009": "female", "0010": "male"}


def _parse_esd_file(path: Path, mandarin: bool = False) -> ParseResult:
    m = _ESD_RE.match(path.stem)
    if not m:
        return "name does not match SSSS_NNNNNN"
    spk, idx = m.groups()
    if spk in ESD_MANDARIN_SPEAKERS and not mandarin:
        return "Mandarin speaker (the English speakers are 0011-0020)"
    gender = ESD_ENGLISH_SPEAKERS.get(spk) or ESD_MANDARIN_SPEAKERS.get(spk)
    if gender is None:
        return f"speaker {spk} outside 0001-0020"
    parents = [p.name.lower() for p in path.parents][:3]
    folder = next((_ESD_FOLDERS[p] for p in parents if p in _ESD_FOLDERS), None)
    n = int(idx)
    emotion = folder or (_ESD_ORDER[(n - 1) // 350] if 1 <= n <= 1750 else None)
    if emotion is None:
        return f"no emotion folder and index {idx} outside 000001-001750"
    fields = {"utterance": idx, "language": "zh" if spk in ESD_MANDARIN_SPEAKERS else "en"}
    part = next((_ESD_PARTITIONS[p] for p in parents[:1] if p in _ESD_PARTITIONS), None)
    if part:
        fields["partition"] = part
    return Utterance(path=str(path), corpus="esd", speaker=f"esd_{spk}", emotion=emotion, gender=gender, fields=fields)


def parse_esd(root: str | Path, mandarin: bool = False) -> CorpusScan:
    """Scan ESD (Emotional Speech Dataset), its English speakers 0011–0020 by default.

    Layout: ``SSSS/<Emotion>/SSSS_NNNNNN.wav``, with or without the release's ``train/``,
    ``evaluation/``, ``test/`` sub-folders (→ ``fields["partition"]`` ``train``/``val``/``test``).
    Emotion from the folder (Angry, Happy, Neutral, Sad, Surprise), else from the index (350
    each: 1–350 neutral, 351–700 angry, 701–1050 happy, 1051–1400 sad, 1401–1750 surprise).
    Speaker ``esd_0011``, sex from the corpus's README; ``fields["language"]`` ``en`` (``zh``).

    Source: Zhou et al. (2021), "Seen and unseen emotional style transfer for voice conversion
    with a new emotional speech dataset", Proc. ICASSP 2021, 920–924.

    Args:
        root: Directory holding the speaker folders (searched recursively).
        mandarin: Also read the Mandarin speakers 0001–0010 (else they are in ``skipped``).

    Returns:
        The scan.

    Raises:
        FileNotFoundError: if ``root`` is not a directory or holds no ESD files.
    """
    return scan_directory(root, "esd", partial(_parse_esd_file, mandarin=mandarin), ESD_PATTERN)


CORPUS = register_corpus(Corpus(
    name='esd',
    title='Emotional Speech Dataset (ESD), English speakers',
    scan=parse_esd,
    parse_file=partial(_parse_esd_file, mandarin=True),
    pattern=ESD_PATTERN,
    dir_names=('esd', 'ESD', 'Emotion Speech Dataset', 'Emotional Speech Dataset (ESD)'),
    language='en',
    speakers='10',
    codes=_ESD_FOLDERS,
    codes_source=('ESD README (github.com/HLTSingapore/Emotional-Speech-Data, Zhou et al. 2021): per speaker, one '
                  'folder per emotion, Angry, Happy, Neutral, Sad, Surprise'),
    source='Zhou et al. (2021), Proc. ICASSP 2021, 920-924',
))
