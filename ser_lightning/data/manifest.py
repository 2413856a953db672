"""The manifest row every corpus parser yields, and CSV I/O for lists of rows."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Utterance:
    """One audio file of a corpus, with its labels.

    Attributes:
        path: Absolute path of the audio file.
        corpus: Corpus name (``"ravdess"``, ``"cremad"``, ``"tess"``, ``"savee"``, or the
            manifest's corpus name).
        speaker: Speaker id, unique across corpora (prefixed with the corpus, e.g.
            ``"ravdess_01"``), so combined corpora never merge two people.
        emotion: Canonical emotion, one of :data:`ser_lightning.data.labels.VOCABULARY`.
        gender: ``"male"``, ``"female"`` or ``None`` when unknown.
        fields: Corpus-specific fields (intensity, statement, repetition, ...), as strings.
    """

    path: str
    corpus: str
    speaker: str
    emotion: str
    gender: str | None = None
    fields: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


MANIFEST_COLUMNS = ("path", "corpus", "speaker", "emotion", "gender", "fields")


def write_manifest(rows: Iterable[Utterance], path: str | Path, extra: Sequence[dict] | None = None) -> None:
    """Write utterances to CSV (one row per file; ``fields`` as JSON).

    Args:
        rows: Utterances to write.
        path: Output CSV path (parent directories are created).
        extra: Optional per-row extra columns (same length as ``rows``), e.g. ``label``, ``split``.
    """
    rows = list(rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra_cols: list[str] = list(extra[0].keys()) if extra else []
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([*MANIFEST_COLUMNS, *extra_cols])
        for i, u in enumerate(rows):
            w.writerow(
                [u.path, u.corpus, u.speaker, u.emotion, u.gender or "", json.dumps(u.fields, sort_keys=True)]
                + ([extra[i][c] for c in extra_cols] if extra else [])
            )
