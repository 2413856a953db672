"""Every corpus parser's emotion codes checked against the corpus's own documentation.

Each table below is copied from the documentation it cites: the code as the corpus writes it in its file
names (or label files), what the documentation says it means, and, written beside it by hand, the word of
this project's vocabulary (:mod:`ser_lightning.data.labels`) for that emotion. The tests name one generated
clip per code in the corpus's convention and check the parser's answer against the table, never against the
parser's own mapping (``_RAVDESS_...``/``_CREMAD_EMOTIONS``/..., :data:`RAVDESS_EMOTIONS`), so a swapped or
mistyped code in the parser fails here. The real-data tests check named files of RAVDESS and TESS under
``$SER_DATA_DIR``.

A new parser adds its table to :data:`DOCUMENTED` (``test_every_parser_has_a_documented_table`` fails until it
does): a :class:`Documented` with the citation, the code table and a function writing one clip for a code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_lightning.data.corpora import PARSERS, corpus_record, list_corpora, parse_esd
from ser_lightning.data.labels import VOCABULARY


def clip(path: Path) -> Path:
    """0.05 s of quiet noise at 16 kHz at ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.01 * np.random.default_rng(0).standard_normal(800).astype(np.float32), 16000)
    return path


@dataclass(frozen=True)
class Documented:
    """A corpus's emotion codes as its documentation gives them.

    Attributes:
        source: Where the table is copied from (cited in the failure message).
        codes: Code → ``(meaning as documented, vocabulary word)``.
        write: Writes one clip (and any label file the parser needs) for a code under a corpus root;
            returns the clip's path.
    """

    source: str
    codes: dict[str, tuple[str, str]]
    write: Callable[[Path, str], Path]


def _iemocap(root: Path, code: str) -> Path:
    (root / "Session1" / "dialog" / "EmoEvaluation").mkdir(parents=True)
    (root / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt").write_text(
        f"% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
        f"[6.2901 - 8.2357]\tSes01F_impro01_F000\t{code}\t[2.5000, 2.5000, 2.5000]\n")
    return clip(root / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_F000.wav")


def _msppodcast(root: Path, code: str) -> Path:
    (root / "Labels").mkdir(parents=True)
    (root / "Labels" / "labels_consensus.csv").write_text(
        "FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set\n"
        f"MSP-PODCAST_0001_0008.wav,{code},4.2,3.8,4.0,127,Female,Train\n")
    return clip(root / "Audios" / "MSP-PODCAST_0001_0008.wav")


#: Code tables per parser (:data:`ser_lightning.data.corpora.PARSERS`), each copied from its documentation.
DOCUMENTED: dict[str, Documented] = {
    "ravdess": Documented(
        "Livingstone & Russo (2018), PLoS ONE 13(5): e0196391, and the RAVDESS Zenodo record 1188976, 'File naming "
        "convention': Emotion (01 = neutral, 02 = calm, 03 = happy, 04 = sad, 05 = angry, 06 = fearful, 07 = disgust, "
        "08 = surprised)",
        {"01": ("neutral", "neutral"), "02": ("calm", "calm"), "03": ("happy", "happy"), "04": ("sad", "sad"),
         "05": ("angry", "angry"), "06": ("fearful", "fear"), "07": ("disgust", "disgust"),
         "08": ("surprised", "surprise")},
        lambda root, code: clip(root / "Actor_01" / f"03-01-{code}-01-01-01-01.wav")),
    "cremad": Documented(
        "CREMA-D README (github.com/CheyneyComputerScience/CREMA-D), 'Filename labeling conventions': Anger (ANG), "
        "Disgust (DIS), Fear (FEA), Happy/Joy (HAP), Neutral (NEU), Sad (SAD); Cao et al. (2014)",
        {"ANG": ("anger", "angry"), "DIS": ("disgust", "disgust"), "FEA": ("fear", "fear"),
         "HAP": ("happy/joy", "happy"), "NEU": ("neutral", "neutral"), "SAD": ("sad", "sad")},
        lambda root, code: clip(root / "AudioWAV" / f"1001_DFA_{code}_XX.wav")),
    "tess": Documented(
        "TESS, Dupuis & Pichora-Fuller (2010), doi:10.5683/SP2/E8H2MF: seven emotions (anger, disgust, fear, "
        "happiness, pleasant surprise, sadness, neutral), file names 'OAF_<word>_<emotion>' with the distribution's "
        "suffixes angry, disgust, fear, happy, neutral, ps, sad",
        {"angry": ("anger", "angry"), "disgust": ("disgust", "disgust"), "fear": ("fear", "fear"),
         "happy": ("happiness", "happy"), "neutral": ("neutral", "neutral"),
         "ps": ("pleasant surprise", "pleasant_surprise"), "sad": ("sadness", "sad")},
        lambda root, code: clip(root / "OAF_x" / f"OAF_back_{code}.wav")),
    "savee": Documented(
        "SAVEE AudioData/Info.txt (Haq & Jackson, 2009): 'The letters 'a', 'd', 'f', 'h', 'n', 'sa' and 'su' represent "
        "'anger', 'disgust', 'fear', 'happiness', 'neutral', 'sadness' and 'surprise' emotion classes respectively'",
        {"a": ("anger", "angry"), "d": ("disgust", "disgust"), "f": ("fear", "fear"), "h": ("happiness", "happy"),
         "n": ("neutral", "neutral"), "sa": ("sadness", "sad"), "su": ("surprise", "surprise")},
        lambda root, code: clip(root / "DC" / f"{code}03.wav")),
    "emodb": Documented(
        "EmoDB documentation (emodb.bilderbar.info/docu, Burkhardt et al. 2005), position 6 of the name: W Ärger (anger), "
        "L Langeweile (boredom), E Ekel (disgust), A Angst (fear), F Freude (happiness), T Trauer (sadness), N neutral",
        {"W": ("Ärger / anger", "angry"), "L": ("Langeweile / boredom", "boredom"), "E": ("Ekel / disgust", "disgust"),
         "A": ("Angst / fear", "fear"), "F": ("Freude / happiness", "happy"), "T": ("Trauer / sadness", "sad"),
         "N": ("neutral", "neutral")},
        lambda root, code: clip(root / "wav" / f"03a01{code}a.wav")),
    "emovo": Documented(
        "Costantini et al. (2014), 'EMOVO Corpus: an Italian Emotional Speech Database', LREC: disgusto (dis), "
        "gioia (gio), neutrale (neu), paura (pau), rabbia (rab), sorpresa (sor), tristezza (tri)",
        {"dis": ("disgusto / disgust", "disgust"), "gio": ("gioia / joy", "happy"), "neu": ("neutrale", "neutral"),
         "pau": ("paura / fear", "fear"), "rab": ("rabbia / anger", "angry"), "sor": ("sorpresa", "surprise"),
         "tri": ("tristezza / sadness", "sad")},
        lambda root, code: clip(root / "f1" / f"{code}-f1-b1.wav")),
    "iemocap": Documented(
        "IEMOCAP release, dialog/EmoEvaluation/*.txt category codes (Busso et al. 2008): neu neutral, hap happiness, "
        "ang anger, sad sadness, exc excited, fru frustration, sur surprise, fea fear, dis disgust, oth other, "
        "xxx no majority agreement",
        {"neu": ("neutral", "neutral"), "hap": ("happiness", "happy"), "ang": ("anger", "angry"),
         "sad": ("sadness", "sad"), "exc": ("excited", "excited"), "fru": ("frustration", "frustrated"),
         "sur": ("surprise", "surprise"), "fea": ("fear", "fear"), "dis": ("disgust", "disgust"),
         "oth": ("other", "other"), "xxx": ("no agreement", "no_agreement")},
        _iemocap),
    "msppodcast": Documented(
        "MSP-Podcast release, Labels/labels_consensus.csv, EmoClass (Lotfian & Busso 2019): A angry, S sad, H happy, "
        "U surprise, F fear, D disgust, C contempt, N neutral, O other, X no agreement",
        {"A": ("angry", "angry"), "S": ("sad", "sad"), "H": ("happy", "happy"), "U": ("surprise", "surprise"),
         "F": ("fear", "fear"), "D": ("disgust", "disgust"), "C": ("contempt", "contempt"), "N": ("neutral", "neutral"),
         "O": ("other", "other"), "X": ("no agreement", "no_agreement")},
        _msppodcast),
    "esd": Documented(
        "ESD README (github.com/HLTSingapore/Emotional-Speech-Data, Zhou et al. 2021): per speaker, one folder per "
        "emotion, Angry, Happy, Neutral, Sad, Surprise",
        {"Angry": ("angry", "angry"), "Happy": ("happy", "happy"), "Neutral": ("neutral", "neutral"),
         "Sad": ("sad", "sad"), "Surprise": ("surprise", "surprise")},
        lambda root, code: clip(root / "0011" / code / "0011_000351.wav")),
    "cafe": Documented(
        "CaFE Readme.txt (Gournay, Lahaie & Lefebvre 2018, doi:10.5281/zenodo.1478765), second field E: C = Colère "
        "(Anger), D = Dégoût (Disgust), J = Joie (Happiness), N = Neutre (Neutral), P = Peur (Fear), S = Surprise, "
        "T = Tristesse (Sadness)",
        {"C": ("Colère / anger", "angry"), "D": ("Dégoût / disgust", "disgust"), "J": ("Joie / happiness", "happy"),
         "N": ("Neutre / neutral", "neutral"), "P": ("Peur / fear", "fear"), "S": ("Surprise", "surprise"),
         "T": ("Tristesse / sadness", "sad")},
        lambda root, code: clip(root / "CaFE_48k" / "x" / f"01-{code}-1-1.wav")),
    "shemo": Documented(
        "ShEMO README (github.com/pariajm/sharif-emotional-speech-dataset, Mohamad Nezami et al. 2019), 'Description "
        "of Labels': A anger, F fear, H happiness, N neutral, S sadness, W surprise",
        {"A": ("anger", "angry"), "F": ("fear", "fear"), "H": ("happiness", "happy"), "N": ("neutral", "neutral"),
         "S": ("sadness", "sad"), "W": ("surprise", "surprise")},
        lambda root, code: clip(root / "female" / f"F01{code}01.wav")),
    "aesdd": Documented(
        "AESDD (Vryzas et al. 2018, JAES 66(6)): folders anger, disgust, fear, happiness, sadness; file names start "
        "with the emotion's letter a, d, f, h, s",
        {"a": ("anger", "angry"), "d": ("disgust", "disgust"), "f": ("fear", "fear"), "h": ("happiness", "happy"),
         "s": ("sadness", "sad")},
        lambda root, code: clip(root / "x" / f"{code}01 (1).wav")),
    "jlcorpus": Documented(
        "JL-Corpus (James, Tian & Watson 2018): primary emotions angry, sad, neutral, happy, excited; secondary "
        "emotions anxious, apologetic, assertive, concerned, encouraging, written in the file names",
        {w: (w, w) for w in ("angry", "sad", "neutral", "happy", "excited", "anxious", "apologetic", "assertive",
                             "concerned", "encouraging")},
        lambda root, code: clip(root / f"male1_{code}_10a_1.wav")),
    "turev": Documented(
        "TurEV-DB (Canpolat, Ormanoğlu & Zeyrek 2020, repository Xeonen/TurEV-DB, 'Sound Source/<Emotion>/"
        "<speaker>_<code>_<word>'): kz kızgın angry, sk sakin calm, mt mutlu happy, hl hüzünlü sad",
        {"kz": ("kızgın (angry)", "angry"), "sk": ("sakin (calm)", "calm"), "mt": ("mutlu (happy)", "happy"),
         "hl": ("hüzünlü (sad)", "sad")},
        lambda root, code: clip(root / {"kz": "Angry", "sk": "Calm", "mt": "Happy", "hl": "Sad"}[code]
                                / f"1157_{code}_acik.wav")),
}

CASES = [(corpus, code) for corpus, doc in DOCUMENTED.items() for code in doc.codes]


def test_every_parser_has_a_documented_table():
    assert sorted(set(PARSERS) - set(DOCUMENTED)) == [], "add the corpus's documented code table to DOCUMENTED"


@pytest.mark.parametrize("corpus", sorted(DOCUMENTED))
def test_each_registry_record_carries_the_documented_codes(corpus):
    """The corpus's registry record (what it is: codes, source, language, folders) agrees with the documentation:
    every documented code maps to the documented word (case as the parser reads it), nothing else is added but
    spellings of a documented word, and the record says where its codes come from."""
    record = corpus_record(corpus)
    codes = {str(k).lower(): v for k, v in record.codes.items()}
    documented = {code.lower(): word for code, (_, word) in DOCUMENTED[corpus].codes.items()}
    assert {code: codes.get(code) for code in documented} == documented, f"{corpus}: {DOCUMENTED[corpus].source}"
    assert set(codes.values()) == set(documented.values()) and set(codes.values()) <= set(VOCABULARY)
    assert record.codes_source and record.source and len(record.language) == 2 and record.dir_names[0] == corpus
    assert record.scan is PARSERS[corpus] and sorted(DOCUMENTED) == list_corpora()


@pytest.mark.parametrize(("corpus", "code"), CASES, ids=[f"{c}-{k}" for c, k in CASES])
def test_parser_reads_each_documented_code(corpus, code, tmp_path):
    doc = DOCUMENTED[corpus]
    root = tmp_path / corpus
    path = doc.write(root, code)
    meaning, word = doc.codes[code]
    (u,) = [u for u in PARSERS[corpus](root).utterances if Path(u.path) == path.resolve()]
    assert u.emotion == word, f"{corpus} code {code!r} is {meaning!r} ({doc.source}); the parser says {u.emotion!r}"
    assert u.corpus == corpus and u.speaker.startswith(f"{corpus}_")


@pytest.mark.parametrize(("corpus", "inside", "outside"), [
    ("ravdess", "Actor_24/03-01-01-01-01-01-24.wav", "Actor_25/03-01-01-01-01-01-25.wav"),  # actors 01-24
    ("cremad", "AudioWAV/1091_DFA_ANG_XX.wav", "AudioWAV/1092_DFA_ANG_XX.wav"),  # actors 1001-1091
    ("cafe", "x/12-C-1-1.wav", "x/13-C-1-1.wav"),  # actors 01-12
])
def test_speakers_outside_the_documented_range_are_skipped_and_listed(corpus, inside, outside, tmp_path):
    clip(tmp_path / inside)
    clip(tmp_path / outside)
    scan = PARSERS[corpus](tmp_path)
    assert [Path(u.path).name for u in scan.utterances] == [Path(inside).name]
    assert [Path(p).name for p, _ in scan.skipped] == [Path(outside).name]


#: ESD's utterance numbers per emotion, for copies without the emotion folders: 350 per emotion in the order of
#: the release (0011/Neutral/0011_000001-000350.wav, Angry 000351-000700, Happy 000701-001050,
#: Sad 001051-001400, Surprise 001401-001750). Both ends of every range are checked.
ESD_RANGES = {"neutral": (1, 350), "angry": (351, 700), "happy": (701, 1050), "sad": (1051, 1400),
              "surprise": (1401, 1750)}


@pytest.mark.parametrize("emotion", list(ESD_RANGES))
def test_esd_utterance_numbers_without_emotion_folders(emotion, tmp_path):
    first, last = ESD_RANGES[emotion]
    for n in (first, last, 1751):
        clip(tmp_path / "0011" / f"0011_{n:06d}.wav")
    scan = parse_esd(tmp_path)
    assert {Path(u.path).stem: u.emotion for u in scan.utterances} == {
        f"0011_{first:06d}": emotion, f"0011_{last:06d}": emotion}
    assert [(Path(p).stem, "outside" in reason) for p, reason in scan.skipped] == [("0011_001751", True)]


# ------------------------------------------------------------------ the real corpora, named files
RAVDESS_NAME = re.compile(r"^03-01-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")


@pytest.mark.real_data
def test_named_ravdess_files_have_their_documented_emotion(real_data_root):
    """Known files by name (``03-01-03-…`` is happy, ``03-01-04-…`` sad, …), then every speech clip: the emotion
    field of its name, read here with the documentation's table, is the parsed emotion; odd actors are male."""
    scan = PARSERS["ravdess"](real_data_root / "ravdess")
    parsed = {Path(u.path).stem: u for u in scan.utterances}
    named = {"03-01-03-01-01-01-01": "happy", "03-01-04-01-01-01-01": "sad", "03-01-03-02-02-02-12": "happy",
             "03-01-04-02-01-01-12": "sad", "03-01-01-01-01-01-24": "neutral", "03-01-02-02-01-02-07": "calm",
             "03-01-05-01-02-01-01": "angry", "03-01-06-02-01-01-02": "fear", "03-01-07-01-01-02-03": "disgust",
             "03-01-08-02-02-02-24": "surprise"}
    assert {stem: parsed[stem].emotion for stem in named} == named
    table = DOCUMENTED["ravdess"].codes
    for stem, u in parsed.items():
        emotion, _, _, _, actor = RAVDESS_NAME.match(stem).groups()
        assert u.emotion == table[emotion][1], stem
        assert u.gender == ("male" if int(actor) % 2 else "female") and u.speaker == f"ravdess_{actor}", stem
    assert len(parsed) == 1440


@pytest.mark.real_data
def test_named_tess_files_have_their_documented_emotion(real_data_root):
    """Known TESS files by name, then every file: the emotion suffix of its name (the documented table) and the
    folder it sits in agree with the parsed emotion; none is dropped silently (the one upstream typo,
    ``OA_bite_neutral``, is read or listed as skipped)."""
    tess = real_data_root / "tess"
    if not tess.is_dir():
        pytest.skip(f"TESS not found under {real_data_root}")
    scan = PARSERS["tess"](tess)
    parsed = {str(Path(u.path).relative_to(tess)): u for u in scan.utterances}
    named = {"OAF_happy/OAF_back_happy.flac": "happy", "YAF_sad/YAF_back_sad.flac": "sad",
             "OAF_pleasant_surprise/OAF_back_ps.flac": "pleasant_surprise", "YAF_angry/YAF_back_angry.flac": "angry",
             "OAF_fear/OAF_back_fear.flac": "fear", "YAF_disgust/YAF_back_disgust.flac": "disgust",
             "YAF_neutral/YAF_back_neutral.flac": "neutral"}
    assert {name: parsed[name].emotion for name in named} == named
    assert parsed["OAF_happy/OAF_back_happy.flac"].speaker == "tess_OAF"
    table = DOCUMENTED["tess"].codes
    folder_word = {"pleasant_surprise": "pleasant_surprise"} | {w: w for w in ("angry", "disgust", "fear", "happy",
                                                                               "neutral", "sad")}
    for name, u in parsed.items():
        folder, stem = name.split("/")[0], Path(name).stem
        assert u.emotion == table[stem.split("_", 2)[2]][1] == folder_word[folder.split("_", 1)[1].lower()], name
    assert {Path(p).name for p, _ in scan.skipped} <= {"OA_bite_neutral.flac"}
    assert len(parsed) + len(scan.skipped) == 2798
