"""IEMOCAP: Interactive Emotional Dyadic Motion Capture database: the parser and the registry record (``data.corpora=[iemocap]``).

Source: Busso et al. (2008), Language Resources and Evaluation 42(4): 335-359.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

from ser_lightning.data.corpora.base import CorpusScan, ParseResult, log, scan_directory
from ser_lightning.data.corpora.registry import Corpus, register_corpus
from ser_lightning.data.manifest import Utterance

IEMOCAP_PATTERN = ("SessionN/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav, labelled in "
                   "SessionN/dialog/EmoEvaluation/Ses01F_impro01.txt")
_IEMOCAP_UTT_RE = re.compile(r"^Ses0?(\d)[FM]_(impro|script)\w*_([FM])\d{3}$")
_IEMOCAP_LINE_RE = re.compile(
    r"^\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(Ses\w+)\s+(\w+)\s+\[\s*([\d.]+),\s*([\d.]+),\s*([\d.]+)\s*\]"
)
#: IEMOCAP's categorical codes (EmoEvaluation files) → vocabulary words.
IEMOCAP_EMOTIONS = {"neu": "neutral", "hap": "happy", "ang": "angry", "sad": "sad", "exc": "excited",
                    "fru": "frustrated", "sur": "surprise", "fea": "fear", "dis": "disgust",
                    "oth": "other", "xxx": "no_agreement"}


def iemocap_labels(root: str | Path) -> dict[str, dict[str, str]]:
    """Utterance id → label record from every ``SessionN/dialog/EmoEvaluation/*.txt`` under ``root``.

    Each summary line ``[START - END]\\tUTTERANCE\\tCODE\\t[V, A, D]`` gives the consensus
    category and the mean valence, activation and dominance (1–5).

    Returns:
        ``{"Ses01F_impro01_F000": {"code": "neu", "start_s": ..., "end_s": ..., "valence": ...,
        "activation": ..., "dominance": ..., "label_file": ...}, ...}``.
    """
    labels: dict[str, dict[str, str]] = {}
    for txt in sorted(Path(root).rglob("EmoEvaluation/*.txt")):
        if txt.name.startswith("._") or not txt.is_file():
            continue
        for line in txt.read_text(errors="replace").splitlines():
            m = _IEMOCAP_LINE_RE.match(line.strip())
            if m:
                start, end, utt, code, val, act, dom = m.groups()
                labels[utt] = {"code": code.lower(), "start_s": start, "end_s": end, "valence": val,
                               "activation": act, "dominance": dom, "label_file": str(txt)}
    return labels


def _parse_iemocap_file(path: Path, labels: dict[str, dict[str, str]]) -> ParseResult:
    m = _IEMOCAP_UTT_RE.match(path.stem)
    if not m:
        return "not a sentence of IEMOCAP (SesNNX_{impro,script}..._XNNN)"
    session, kind, who = m.groups()
    rec = labels.get(path.stem)
    if rec is None:
        return "no entry in the session's dialog/EmoEvaluation/*.txt"
    code = rec["code"]
    return Utterance(
        path=str(path), corpus="iemocap", speaker=f"iemocap_Ses0{session}{who}",
        emotion=IEMOCAP_EMOTIONS.get(code, code), gender="female" if who == "F" else "male",
        fields={"session": session, "type": "improvised" if kind == "impro" else "scripted",
                "dialog": path.stem.rsplit("_", 1)[0], "code": code, "valence": rec["valence"],
                "activation": rec["activation"], "dominance": rec["dominance"], "language": "en"},
    )


def parse_iemocap(root: str | Path) -> CorpusScan:
    """Scan IEMOCAP: five sessions of improvised and scripted dialogs, labels from EmoEvaluation.

    Layout of the release (``IEMOCAP_full_release/``): ``SessionN/sentences/wav/<dialog>/<utt>.wav``
    (``.flac`` also read) and ``SessionN/dialog/EmoEvaluation/<dialog>.txt``. The utterance id,
    e.g. ``Ses01F_impro01_F000`` or ``Ses01F_script01_1_M012``, names the session (1–5), the
    dialog type (``impro``/``script`` → ``fields["type"]`` ``improvised``/``scripted``) and, in
    its last part, the speaking actor's sex: speaker id ``iemocap_Ses01F`` (ten speakers, two per
    session; the ``F``/``M`` after the session number only tells who wore the markers).
    Categories: neu, hap, ang, sad, exc → ``excited`` (``data.label_set=iemocap4`` merges it into
    happy), fru → ``frustrated``, sur, fea, dis, oth → ``other``, xxx (no majority) →
    ``no_agreement``. ``fields`` hold ``session``, ``type``, ``dialog``, the raw ``code``, the
    mean ``valence``/``activation``/``dominance`` and ``language`` (``en``). Sentences without a
    label line, dialog-level recordings, and label lines without an audio file are in
    ``skipped``. ``data.split=session data.fold=N`` holds out session N (leave-one-session-out).

    Source: Busso et al. (2008), "IEMOCAP: interactive emotional dyadic motion capture
    database", Language Resources and Evaluation 42(4): 335–359.

    Args:
        root: Directory holding the ``SessionN`` folders (searched recursively).

    Returns:
        The scan.

    Raises:
        FileNotFoundError: if ``root`` is not a directory or holds no labelled IEMOCAP sentence.
    """
    root = Path(root).expanduser().resolve()
    labels = iemocap_labels(root) if root.is_dir() else {}
    scan = scan_directory(root, "iemocap", partial(_parse_iemocap_file, labels=labels), IEMOCAP_PATTERN)
    found = {Path(u.path).stem for u in scan.utterances}
    missing = sorted(set(labels) - found)
    if missing:
        log.warning("iemocap: %d labelled utterance(s) have no audio file, e.g. %s", len(missing), missing[:3])
        scan.skipped += [(labels[m]["label_file"] + f"#{m}", "labelled, but no audio file") for m in missing]
    return scan


CORPUS = register_corpus(Corpus(
    name='iemocap',
    title='IEMOCAP: Interactive Emotional Dyadic Motion Capture database',
    scan=parse_iemocap,
    parse_file=None,
    pattern=IEMOCAP_PATTERN,
    dir_names=('iemocap', 'IEMOCAP', 'IEMOCAP_full_release'),
    language='en',
    speakers='10',
    codes=IEMOCAP_EMOTIONS,
    codes_source=('IEMOCAP release, dialog/EmoEvaluation/*.txt category codes (Busso et al. 2008): neu neutral, hap '
                  'happiness, ang anger, sad sadness, exc excited, fru frustration, sur surprise, fea fear, dis '
                  'disgust, oth other, xxx no majority agreement'),
    source='Busso et al. (2008), Language Resources and Evaluation 42(4): 335-359',
    holds=lambda directory: any(directory.glob("Session*/dialog/EmoEvaluation")),
))
