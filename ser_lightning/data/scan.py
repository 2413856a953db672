"""Scan corpora by name, CSV manifest or EmoBox metadata: the one entry the datamodule uses.

Dispatches to the corpus parsers (:mod:`ser_lightning.data.corpora`), the manifest reader and EmoBox's
metadata (:mod:`ser_lightning.data.emobox`), and concatenates several corpora.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ser_lightning.data.corpora import (
    EMOBOX,
    CorpusScan,
    check_corpus_name,
    corpus_record,
    find_corpus_root,
    parse_manifest,
)
from ser_lightning.data.emobox import load_emobox

log = logging.getLogger(__name__)


def scan_corpus(data_root: str | Path, corpus: str, emobox: dict | None = None) -> CorpusScan:
    """Scan one corpus by name, or a CSV manifest by path, or EmoBox's metadata.

    Args:
        data_root: Data root holding the corpus directories.
        corpus: A registered corpus name (:func:`~ser_lightning.data.corpora.list_corpora`; case ignored), ``emobox``, or a path ending in
            ``.csv`` (relative paths are tried against the working directory, then ``data_root``).
        emobox: For ``emobox``: keyword arguments of
            :func:`~ser_lightning.data.emobox.load_emobox` (``metadata_dir``, ``corpus``,
            ``fold``, ``audio_root``; ``audio_root`` defaults to ``data_root``).

    Returns:
        The corpus's scan.

    Raises:
        ValueError: for an unknown corpus name.
        FileNotFoundError: if the corpus or manifest cannot be found or holds no files.
    """
    if corpus.lower().endswith(".csv"):
        path = Path(corpus).expanduser()
        if not path.is_absolute() and not path.exists() and (Path(data_root) / path).exists():
            path = Path(data_root) / path
        return parse_manifest(path)
    name = check_corpus_name(corpus)
    if name == EMOBOX:
        settings = dict(emobox or {})
        settings["audio_root"] = settings.get("audio_root") or data_root
        return load_emobox(**settings)
    return corpus_record(name).scan(find_corpus_root(data_root, name))


def scan_corpora(data_root: str | Path, corpora: Sequence[str], skip_missing: bool = False,
                 emobox: dict | None = None) -> CorpusScan:
    """Scan several corpora and concatenate them.

    Args:
        data_root: Data root holding the corpus directories.
        corpora: Corpus names and/or manifest CSV paths (see :func:`scan_corpus`); a single
            string is taken as a one-item list.
        skip_missing: Leave out (with a warning) named corpora that are not under ``data_root``
            instead of failing; at least one must be present.
        emobox: Settings for an ``emobox`` entry (see :func:`scan_corpus`).

    Returns:
        All utterances (in the order of ``corpora``) and all skipped files.

    Raises:
        ValueError: if ``corpora`` is empty or the same audio file appears twice.
        FileNotFoundError: see :func:`scan_corpus`.
    """
    corpora = [corpora] if isinstance(corpora, str) else list(corpora)
    if not corpora:
        raise ValueError("corpora is empty: give at least one corpus name or .csv manifest path")
    total = CorpusScan()
    seen: dict[str, str] = {}
    missing: list[str] = []
    for corpus in corpora:
        try:
            scan = scan_corpus(data_root, corpus, emobox=emobox)
        except FileNotFoundError as err:
            if not skip_missing or corpus.lower().endswith(".csv") or corpus.lower() == EMOBOX:
                raise
            log.warning("corpus %s left out: %s", corpus, err)
            missing.append(corpus)
            continue
        for u in scan.utterances:
            if u.path in seen:
                raise ValueError(f"audio file {u.path} is listed twice (in {seen[u.path]!r} and {corpus!r})")
            seen[u.path] = corpus
        total.utterances += scan.utterances
        total.skipped += scan.skipped
    if missing and len(missing) == len(corpora):
        raise FileNotFoundError(f"none of the corpora {corpora} was found under {data_root}")
    return total
