"""A generic CSV manifest of labelled audio files (``data.corpora=[/path/to/manifest.csv]``)."""

from __future__ import annotations

import csv
from pathlib import Path

from ser_lightning.data.corpora.base import GENDERS, CorpusScan
from ser_lightning.data.labels import emotion_or_raw
from ser_lightning.data.manifest import Utterance

MANIFEST_REQUIRED = ("path", "label", "speaker")
_NO_GENDER = ("", "none", "unknown", "na", "n/a")


def parse_manifest(csv_path: str | Path, corpus: str | None = None) -> CorpusScan:
    """Read a generic CSV manifest of labelled audio files.

    Columns ``path``, ``label``, ``speaker`` are required; ``gender`` (male/m/female/f or empty)
    and ``corpus`` are optional; any other column goes into ``fields``. Relative paths are
    resolved against the CSV's directory. Labels are mapped onto the vocabulary
    (:func:`~ser_lightning.data.labels.lookup_emotion`); a label the vocabulary lacks is kept as
    written (lower case), for ``data.unknown_labels`` to act on. Speakers are prefixed with the corpus
    name (``{corpus}_{speaker}``, unless already so prefixed); the corpus is ``corpus`` if given,
    else the row's ``corpus`` column, else the CSV's file stem.

    Args:
        csv_path: Manifest CSV.
        corpus: Corpus name for every row (overrides the ``corpus`` column).

    Returns:
        The scan (``skipped`` is always empty: a bad row is an error).

    Raises:
        FileNotFoundError: if the CSV or a listed audio file does not exist (names the line).
        ValueError: for a missing required column, an empty label, an unknown gender, or no rows.
    """
    csv_path = Path(csv_path).expanduser().resolve()
    if not csv_path.is_file():
        raise FileNotFoundError(f"manifest {csv_path} does not exist")
    scan = CorpusScan()
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [c.strip() for c in reader.fieldnames or []]
        for col in MANIFEST_REQUIRED:
            if col not in header:
                raise ValueError(f"manifest {csv_path} is missing column {col!r} (columns: {header}; required: {list(MANIFEST_REQUIRED)})")
        for raw in reader:
            row = {k.strip(): (v or "").strip() for k, v in raw.items() if k}
            where = f"{csv_path}:{reader.line_num}"
            path = Path(row["path"]).expanduser()
            path = path if path.is_absolute() else csv_path.parent / path
            if not row["path"] or not path.is_file():
                raise FileNotFoundError(f"{where}: audio file {path} does not exist")
            gender = row.get("gender", "").lower()
            if gender not in GENDERS and gender not in _NO_GENDER:
                raise ValueError(f"{where}: gender {row['gender']!r} is not male/female (or empty)")
            name = corpus or row.get("corpus") or csv_path.stem
            spk = row["speaker"]
            if not spk:
                raise ValueError(f"{where}: empty speaker")
            if not row["label"]:
                raise ValueError(f"{where}: empty label")
            scan.utterances.append(
                Utterance(
                    path=str(path.resolve()),
                    corpus=name,
                    speaker=spk if spk.startswith(f"{name}_") else f"{name}_{spk}",
                    emotion=emotion_or_raw(row["label"]),
                    gender=GENDERS.get(gender),
                    fields={k: v for k, v in row.items() if k not in (*MANIFEST_REQUIRED, "gender", "corpus")},
                )
            )
    if not scan.utterances:
        raise ValueError(f"manifest {csv_path} has no rows")
    scan.utterances.sort(key=lambda u: u.path)
    return scan
