"""MSP-Podcast: the parser and the registry record (``data.corpora=[msppodcast]``).

Source: Lotfian & Busso (2019), IEEE Transactions on Affective Computing 10(4): 471-483.
"""

from __future__ import annotations

import csv
from functools import partial
from pathlib import Path

from ser_lightning.data.corpora.base import GENDERS, CorpusScan, ParseResult, scan_directory
from ser_lightning.data.corpora.registry import Corpus, register_corpus
from ser_lightning.data.labels import emotion_or_raw
from ser_lightning.data.manifest import Utterance

MSPPODCAST_PATTERN = "Audios/MSP-PODCAST_0001_0008.wav listed in Labels/labels_consensus.csv"
MSPPODCAST_LABEL_FILES = ("labels_consensus.csv", "labels_concensus.csv")
#: MSP-Podcast's consensus classes (``EmoClass``) → vocabulary words.
MSPPODCAST_EMOTIONS = {"A": "angry", "S": "sad", "H": "happy", "U": "surprise", "F": "fear", "D": "disgust",
                       "C": "contempt", "N": "neutral", "O": "other", "X": "no_agreement"}
_MSP_PARTITIONS = {"train": "train", "development": "val", "validation": "val", "test1": "test"}
_MSP_COLUMNS = ("FileName", "EmoClass", "SpkrID", "Gender", "Split_Set")


def msppodcast_labels(root: Path) -> dict[str, dict[str, str]]:
    """File stem → row of MSP-Podcast's ``labels_consensus.csv`` (also spelt ``labels_concensus.csv``).

    Raises:
        FileNotFoundError: if neither file is under ``root``.
        ValueError: if the table lacks one of ``FileName, EmoClass, SpkrID, Gender, Split_Set``.
    """
    found = [p for name in MSPPODCAST_LABEL_FILES for p in sorted(root.rglob(name))]
    if not found:
        raise FileNotFoundError(f"msppodcast: no {' or '.join(MSPPODCAST_LABEL_FILES)} under {root} (Labels/ folder "
                                "of the MSP-Podcast release)")
    with found[0].open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in _MSP_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{found[0]}: missing column(s) {missing} (columns: {header})")
        rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k} for r in reader]
    return {Path(r["FileName"]).stem: r for r in rows}


def _parse_msppodcast_file(path: Path, labels: dict[str, dict[str, str]]) -> ParseResult:
    row = labels.get(path.stem)
    if row is None:
        return "not listed in labels_consensus.csv"
    code = row["EmoClass"].upper()
    spk = row["SpkrID"]
    if not spk or spk.lower() == "unknown":
        parts = path.stem.split("_")  # MSP-PODCAST_<podcast>_<segment>: unknown speakers grouped by podcast
        spk = f"podcast{parts[1]}" if len(parts) == 3 else "unknown"
    split = row["Split_Set"].strip().lower()
    fields = {"partition": _MSP_PARTITIONS.get(split, split), "split_set": row["Split_Set"], "code": code,
              "language": "en"}
    for col, key in (("EmoAct", "arousal"), ("EmoVal", "valence"), ("EmoDom", "dominance")):
        if row.get(col):
            fields[key] = row[col]
    return Utterance(
        path=str(path), corpus="msppodcast", speaker=f"msppodcast_{spk}",
        emotion=MSPPODCAST_EMOTIONS.get(code, emotion_or_raw(code)), gender=GENDERS.get(row["Gender"].lower()),
        fields=fields,
    )


def parse_msppodcast(root: str | Path) -> CorpusScan:
    """Scan MSP-Podcast with its consensus labels and partitions.

    Layout of the release: ``Audios/`` (older releases ``Audio/``) holding
    ``MSP-PODCAST_<podcast>_<segment>.wav`` and ``Labels/labels_consensus.csv`` with columns
    ``FileName, EmoClass, EmoAct, EmoVal, EmoDom, SpkrID, Gender, Split_Set``. ``EmoClass``: A
    angry, S sad, H happy, U surprise, F fear, D disgust, C contempt, N neutral, O → ``other``, X
    (no agreement) → ``no_agreement``. ``Split_Set`` goes to ``fields["partition"]``: Train →
    ``train``, Development/Validation → ``val``, Test1 → ``test``, others (Test2, Test3) kept as
    written (``data.split=partition`` leaves them unused). Speaker ``msppodcast_<SpkrID>``; an
    ``Unknown`` speaker becomes ``msppodcast_podcast<id>`` (grouped by podcast, so no unknown
    speaker spans two speaker-split sets). ``fields`` also hold ``arousal``/``valence``/
    ``dominance`` and ``language`` (``en``).

    Source: Lotfian & Busso (2019), "Building naturalistic emotionally balanced speech corpus by
    retrieving emotional speech from existing podcast recordings", IEEE Transactions on
    Affective Computing 10(4): 471–483.

    Args:
        root: Directory holding the release (searched recursively).

    Returns:
        The scan; audio files missing from the table are in ``skipped``.

    Raises:
        FileNotFoundError: no directory, no label table, or no listed audio file.
        ValueError: a label table without its columns.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"msppodcast root {root} is not a directory")
    labels = msppodcast_labels(root)
    return scan_directory(root, "msppodcast", partial(_parse_msppodcast_file, labels=labels), MSPPODCAST_PATTERN)


CORPUS = register_corpus(Corpus(
    name='msppodcast',
    title='MSP-Podcast',
    scan=parse_msppodcast,
    parse_file=None,
    pattern=MSPPODCAST_PATTERN,
    dir_names=('msppodcast', 'MSP-Podcast', 'MSP-PODCAST', 'msp-podcast'),
    language='en',
    speakers='1000+',
    codes=MSPPODCAST_EMOTIONS,
    codes_source=('MSP-Podcast release, Labels/labels_consensus.csv, EmoClass (Lotfian & Busso 2019): A angry, S sad, H'
                  ' happy, U surprise, F fear, D disgust, C contempt, N neutral, O other, X no agreement'),
    source='Lotfian & Busso (2019), IEEE Transactions on Affective Computing 10(4): 471-483',
    holds=lambda directory: any((directory / "Labels" / n).is_file() for n in MSPPODCAST_LABEL_FILES),
))
