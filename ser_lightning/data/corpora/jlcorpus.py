"""JL-Corpus (New Zealand English): the parser and the registry record (``data.corpora=[jlcorpus]``).

Source: James, Tian & Watson (2018), Proc. Interspeech 2018, 2768-2772.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser_lightning.data.corpora.base import CorpusScan, ParseResult, scan_directory
from ser_lightning.data.corpora.registry import Corpus, register_corpus
from ser_lightning.data.manifest import Utterance

JLCORPUS_PATTERN = "male1_angry_10a_1.wav (speaker_emotion_sentence_take)"
_JLCORPUS_RE = re.compile(r"^((?:fe)?male\d)_([a-z]+)_(\d+[a-z]?)_(\d+)$", re.IGNORECASE)
#: JL-Corpus's five primary and five secondary emotions.
JLCORPUS_EMOTIONS = ("angry", "sad", "neutral", "happy", "excited",
                     "anxious", "apologetic", "assertive", "concerned", "encouraging")


def _parse_jlcorpus_file(path: Path) -> ParseResult:
    m = _JLCORPUS_RE.match(path.stem)
    if not m:
        return "name does not match speaker_emotion_sentence_take (e.g. male1_angry_10a_1)"
    spk, emo, sentence, take = (g.lower() for g in m.groups())
    if emo not in JLCORPUS_EMOTIONS:
        return f"unknown emotion {emo!r}"
    return Utterance(
        path=str(path), corpus="jlcorpus", speaker=f"jlcorpus_{spk}", emotion=emo,
        gender="female" if spk.startswith("female") else "male",
        fields={"sentence": sentence, "take": take, "language": "en",
                "emotion_type": "primary" if emo in JLCORPUS_EMOTIONS[:5] else "secondary"},
    )


def parse_jlcorpus(root: str | Path) -> CorpusScan:
    """Scan JL-Corpus (New Zealand English, four actors).

    Naming convention ``speaker_emotion_sentence_take.wav``, e.g. ``male1_angry_10a_1.wav`` (in
    ``Raw JL corpus (unchecked and unannotated)/JL(wav+txt)/`` beside ``.txt`` transcripts, or
    any other folder): speakers male1, male2, female1, female2 (speaker id ``jlcorpus_male1``);
    the five primary emotions angry, sad, neutral, happy, excited and the five secondary ones
    anxious, apologetic, assertive, concerned, encouraging (``fields["emotion_type"]``); sentence
    code (``fields["sentence"]``) and take. ``fields["language"]`` is ``en``.

    Source: James, Tian & Watson (2018), "An open source emotional speech corpus for human robot
    interaction applications", Proc. Interspeech 2018, 2768–2772.

    Args:
        root: Directory holding the corpus (searched recursively).

    Returns:
        The scan; non-matching names are in ``skipped``.

    Raises:
        FileNotFoundError: if ``root`` is not a directory or holds no JL-Corpus files.
    """
    return scan_directory(root, "jlcorpus", _parse_jlcorpus_file, JLCORPUS_PATTERN)


CORPUS = register_corpus(Corpus(
    name='jlcorpus',
    title='JL-Corpus (New Zealand English)',
    scan=parse_jlcorpus,
    parse_file=_parse_jlcorpus_file,
    pattern=JLCORPUS_PATTERN,
    dir_names=('jlcorpus', 'JL-Corpus', 'JL corpus', 'jl-corpus'),
    language='en',
    speakers='4',
    codes={w: w for w in JLCORPUS_EMOTIONS},
    codes_source=('JL-Corpus (James, Tian & Watson 2018): primary emotions angry, sad, neutral, happy, excited; '
                  'secondary emotions anxious, apologetic, assertive, concerned, encouraging, written in the file names'),
    source='James, Tian & Watson (2018), Proc. Interspeech 2018, 2768-2772',
))
