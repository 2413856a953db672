"""Corpus parsers and their registry: a directory of audio files (or a CSV manifest) → :class:`Utterance` rows.

Every corpus is one small module here that parses the corpus's documented naming convention (speaker, emotion,
gender from the file name, or from its label files) and registers a :class:`~ser_lightning.data.corpora.registry.Corpus`
record: name, parser, folder names, language, speakers, file pattern, label codes with their source. Audio files
that do not follow the convention are never dropped silently: they are listed in
:attr:`~ser_lightning.data.corpora.base.CorpusScan.skipped` with a reason and logged as a warning.

Supported corpora (each module documents its naming convention and source paper):

* ``ravdess`` – :func:`parse_ravdess` (Livingstone & Russo, 2018)
* ``cremad`` – :func:`parse_cremad` (Cao et al., 2014)
* ``tess`` – :func:`parse_tess` (Dupuis & Pichora-Fuller, 2010)
* ``savee`` – :func:`parse_savee` (Haq & Jackson, 2009)
* ``emodb`` – :func:`parse_emodb` (Burkhardt et al., 2005)
* ``emovo`` – :func:`parse_emovo` (Costantini et al., 2014)
* ``iemocap`` – :func:`parse_iemocap` (Busso et al., 2008)
* ``msppodcast`` – :func:`parse_msppodcast` (Lotfian & Busso, 2019)
* ``esd`` – :func:`parse_esd` (Zhou et al., 2021)
* ``cafe`` – :func:`parse_cafe` (Gournay et al., 2018)
* ``shemo`` – :func:`parse_shemo` (Mohamad Nezami et al., 2019)
* ``aesdd`` – :func:`parse_aesdd` (Vryzas et al., 2018)
* ``jlcorpus`` – :func:`parse_jlcorpus` (James et al., 2018)
* ``turev`` – :func:`parse_turev` (Canpolat, Ormanoğlu & Zeyrek, 2020)
* any ``.csv`` manifest – :func:`parse_manifest` (:mod:`~ser_lightning.data.corpora.csv_manifest`)
* ``emobox`` – EmoBox's metadata and official folds (:mod:`ser_lightning.data.emobox`)

The tables below (:data:`PARSERS`, :data:`FILE_PARSERS`, :data:`CORPUS_DIR_NAMES`, :data:`CORPUS_INFO`) are views
of the registry, kept for the callers that read them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

# Importing a corpus module registers it.
from ser_lightning.data.corpora import (  # noqa: F401
    aesdd,
    cafe,
    cremad,
    emodb,
    emovo,
    esd,
    iemocap,
    jlcorpus,
    msppodcast,
    ravdess,
    savee,
    shemo,
    tess,
    turev,
)
from ser_lightning.data.corpora.aesdd import AESDD_PATTERN, parse_aesdd
from ser_lightning.data.corpora.base import CORPUS_FILE_SUFFIXES, CorpusScan, ParseResult
from ser_lightning.data.corpora.cafe import CAFE_PATTERN, parse_cafe
from ser_lightning.data.corpora.cremad import CREMAD_DEMOGRAPHICS, CREMAD_PATTERN, parse_cremad
from ser_lightning.data.corpora.csv_manifest import MANIFEST_REQUIRED, parse_manifest
from ser_lightning.data.corpora.emodb import EMODB_PATTERN, EMODB_SPEAKERS, parse_emodb
from ser_lightning.data.corpora.emovo import EMOVO_PATTERN, parse_emovo
from ser_lightning.data.corpora.esd import (
    ESD_ENGLISH_SPEAKERS,
    ESD_MANDARIN_SPEAKERS,
    ESD_PATTERN,
    parse_esd,
)
from ser_lightning.data.corpora.iemocap import (
    _IEMOCAP_UTT_RE,
    IEMOCAP_EMOTIONS,
    IEMOCAP_PATTERN,
    iemocap_labels,
    parse_iemocap,
)
from ser_lightning.data.corpora.jlcorpus import JLCORPUS_EMOTIONS, JLCORPUS_PATTERN, parse_jlcorpus
from ser_lightning.data.corpora.msppodcast import (
    MSPPODCAST_EMOTIONS,
    MSPPODCAST_LABEL_FILES,
    MSPPODCAST_PATTERN,
    msppodcast_labels,
    parse_msppodcast,
)
from ser_lightning.data.corpora.ravdess import RAVDESS_PATTERN, parse_ravdess
from ser_lightning.data.corpora.registry import (
    EMOBOX,
    Corpus,
    check_corpus_name,
    corpus_record,
    find_corpus_root,
    list_corpora,
    register_corpus,
)
from ser_lightning.data.corpora.savee import SAVEE_PATTERN, SAVEE_SPEAKERS, parse_savee
from ser_lightning.data.corpora.shemo import SHEMO_PATTERN, parse_shemo
from ser_lightning.data.corpora.tess import TESS_PATTERN, parse_tess
from ser_lightning.data.corpora.turev import TUREV_CODES, TUREV_PATTERN, parse_turev
from ser_lightning.deprecation import renamed

#: Corpus name → directory parser (a view of the registry).
PARSERS: dict[str, Callable[[str | Path], CorpusScan]] = {n: corpus_record(n).scan for n in list_corpora()}

#: Per-file parse functions (name alone), used to recognise a corpus directly inside a data root
#: and to give EmoBox's clips their speakers. IEMOCAP and MSP-Podcast need their label files.
FILE_PARSERS: dict[str, Callable[[Path], ParseResult]] = {
    n: corpus_record(n).parse_file for n in list_corpora() if corpus_record(n).parse_file is not None}

#: Directory names searched (in order) under a data root for each corpus.
CORPUS_DIR_NAMES: dict[str, tuple[str, ...]] = {n: corpus_record(n).dir_names for n in list_corpora()}

#: What each corpus is, for tables and reports: language (ISO 639-1) and speakers.
CORPUS_INFO: dict[str, dict[str, str]] = {
    n: {"language": corpus_record(n).language, "speakers": corpus_record(n).speakers} for n in list_corpora()}

#: ``AUDIO_EXTENSIONS``, the former name of :data:`~ser_lightning.data.corpora.base.CORPUS_FILE_SUFFIXES` (the suffixes
#: a corpus walk takes), still answers with a warning: it was easy to confuse with
#: :data:`ser_lightning.data.audio.AUDIO_EXTENSIONS` (every format prediction decodes).
__getattr__ = renamed(__name__, {"AUDIO_EXTENSIONS": "CORPUS_FILE_SUFFIXES"}, globals())

__all__ = [
    "AESDD_PATTERN", "CAFE_PATTERN", "CORPUS_DIR_NAMES", "CORPUS_FILE_SUFFIXES", "CORPUS_INFO",
    "CREMAD_DEMOGRAPHICS", "CREMAD_PATTERN", "EMOBOX", "EMODB_PATTERN", "EMODB_SPEAKERS", "EMOVO_PATTERN",
    "ESD_ENGLISH_SPEAKERS", "ESD_MANDARIN_SPEAKERS", "ESD_PATTERN", "FILE_PARSERS", "IEMOCAP_EMOTIONS",
    "IEMOCAP_PATTERN", "JLCORPUS_EMOTIONS", "JLCORPUS_PATTERN", "MANIFEST_REQUIRED", "MSPPODCAST_EMOTIONS",
    "MSPPODCAST_LABEL_FILES", "MSPPODCAST_PATTERN", "PARSERS", "RAVDESS_PATTERN", "SAVEE_PATTERN", "SAVEE_SPEAKERS",
    "SHEMO_PATTERN", "TESS_PATTERN", "TUREV_CODES", "TUREV_PATTERN", "Corpus", "CorpusScan", "ParseResult",
    "_IEMOCAP_UTT_RE", "check_corpus_name", "corpus_record", "find_corpus_root", "iemocap_labels", "list_corpora",
    "msppodcast_labels", "parse_aesdd", "parse_cafe", "parse_cremad", "parse_emodb", "parse_emovo", "parse_esd",
    "parse_iemocap", "parse_jlcorpus", "parse_manifest", "parse_msppodcast", "parse_ravdess", "parse_savee",
    "parse_shemo", "parse_tess", "parse_turev", "register_corpus",
]
