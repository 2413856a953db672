"""What every corpus parser shares: the scan result, and the walk that applies a per-file parser to a directory.

A parser never drops an audio file silently: a file that does not follow the corpus's naming convention is listed
in :attr:`CorpusScan.skipped` with the reason and logged as a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ser_lightning.data.manifest import Utterance

#: The parsers' log (one name for every corpus module, so that a caller can listen to all of them).
log = logging.getLogger("ser_lightning.data.corpora")

#: File-name suffixes a corpus walk takes (case ignored): the formats the corpora are distributed in. Prediction
#: takes more (every format the decoder reads: :data:`ser_lightning.data.audio.AUDIO_EXTENSIONS`).
CORPUS_FILE_SUFFIXES = (".wav", ".flac")

#: What a per-file parser returns: an utterance, or the reason the file was skipped.
ParseResult = Utterance | str


@dataclass
class CorpusScan:
    """Result of scanning a corpus.

    Attributes:
        utterances: Parsed utterances, sorted by path.
        skipped: ``(path, reason)`` for audio files that did not follow the corpus's naming
            convention (or were excluded by it, e.g. RAVDESS song files).
    """

    utterances: list[Utterance] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def audio_files(root: Path) -> Iterator[Path]:
    """Files under ``root`` (recursively) whose suffix is one of :data:`CORPUS_FILE_SUFFIXES`."""
    return (p for p in root.rglob("*") if p.suffix.lower() in CORPUS_FILE_SUFFIXES and p.is_file())


def scan_directory(root: str | Path, corpus: str, parse: Callable[[Path], ParseResult], pattern: str) -> CorpusScan:
    """Apply ``parse`` to every audio file under ``root``; collect utterances and skips.

    Args:
        root: The corpus directory (searched recursively).
        corpus: Corpus name, for messages.
        parse: Per-file parser: a path → an :class:`~ser_lightning.data.manifest.Utterance` or the reason it
            is skipped.
        pattern: The expected file names, for messages.

    Returns:
        The scan (utterances sorted by path).

    Raises:
        FileNotFoundError: ``root`` is not a directory, or no file under it parses.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{corpus} root {root} is not a directory")
    scan = CorpusScan()
    for path in sorted(audio_files(root)):
        result = parse(path)
        if isinstance(result, str):
            scan.skipped.append((str(path), result))
        else:
            scan.utterances.append(result)
    if scan.skipped:
        examples = "; ".join(f"{Path(p).name} ({r})" for p, r in scan.skipped[:3])
        log.warning(
            "%s: skipped %d audio file(s) under %s not matching %s, e.g. %s",
            corpus, len(scan.skipped), root, pattern, examples,
        )
    if not scan.utterances:
        found = f"{len(scan.skipped)} audio file(s), none matching" if scan.skipped else "no .wav/.flac files"
        raise FileNotFoundError(
            f"no {corpus} utterances under {root}: found {found}; expected file names like {pattern}"
        )
    return scan


#: Spellings of a speaker's sex in label tables (manifests, MSP-Podcast) → ``male``/``female``.
GENDERS = {"male": "male", "m": "male", "female": "female", "f": "female"}
