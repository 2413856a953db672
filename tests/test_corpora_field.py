"""Parsers of EmoDB, EMOVO, IEMOCAP, MSP-Podcast, ESD, CaFE, ShEMO, AESDD and JL-Corpus on generated
files named in each corpus's convention (both layouts where a corpus has two)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ser_lightning.data.corpora import (
    PARSERS,
    find_corpus_root,
    parse_emodb,
    parse_emovo,
    parse_esd,
    parse_jlcorpus,
    parse_msppodcast,
    parse_shemo,
    parse_turev,
)
from ser_lightning.data.scan import scan_corpus
from tests.test_corpora import by_name, clip


@pytest.mark.parametrize(("layout", "ext"), [("wav/", ".wav"), ("", ".flac")])
def test_emodb_nested_and_flat(tmp_path, layout, ext):
    root = tmp_path / "emodb"
    names = ["03a01Wa", "08a02Lb", "09b01Ec", "10b03Ad", "11a04Fa", "13a05Ta", "16b10Na"]
    for n in names:
        clip(root / f"{layout}{n}{ext}")
    bad = clip(root / f"{layout}05a01Wa{ext}")  # speaker 05 is not in EmoDB
    clip(root / f"{layout}03a01Xa{ext}")  # no emotion X
    scan = parse_emodb(root)
    u = by_name(scan)
    assert len(scan.utterances) == 7 and len(scan.skipped) == 2
    a = u[f"03a01Wa{ext}"]
    assert (a.corpus, a.speaker, a.emotion, a.gender) == ("emodb", "emodb_03", "angry", "male")
    assert a.fields == {"sentence": "a01", "version": "a", "language": "de"}
    assert [u[f"{n}{ext}"].emotion for n in names] == ["angry", "boredom", "disgust", "fear", "happy", "sad", "neutral"]
    assert u[f"08a02Lb{ext}"].gender == "female" and u[f"16b10Na{ext}"].speaker == "emodb_16"
    assert "speaker 05" in dict(scan.skipped)[str(bad)]


@pytest.mark.parametrize("nested", [True, False])
def test_emovo_per_speaker_folders_and_flat(tmp_path, nested):
    root = tmp_path / "EMOVO"
    for name in ["dis-f1-b1", "gio-m2-l3", "pau-f3-n5", "rab-m1-d1", "sor-f2-b2", "tri-m3-n1", "neu-f1-l1"]:
        clip(root / (f"{name.split('-')[1]}/{name}.wav" if nested else f"{name}.wav"))
    clip(root / "xyz-f1-b1.wav")
    scan = parse_emovo(root)
    u = by_name(scan)
    assert len(scan.utterances) == 7 and len(scan.skipped) == 1
    a = u["dis-f1-b1.wav"]
    assert (a.speaker, a.emotion, a.gender, a.fields) == ("emovo_f1", "disgust", "female",
                                                          {"sentence": "b1", "language": "it"})
    assert (u["gio-m2-l3.wav"].emotion, u["gio-m2-l3.wav"].gender) == ("happy", "male")
    assert {x.emotion for x in scan.utterances} == {"disgust", "happy", "fear", "angry", "surprise", "sad", "neutral"}
    assert find_corpus_root(tmp_path, "emovo") == root.resolve()


def _iemocap(root: Path, ext: str = ".wav") -> Path:
    """Two sessions: an improvised and a scripted dialog each, labels in EmoEvaluation."""
    base = root / "IEMOCAP_full_release"
    lines = {
        1: [("Ses01F_impro01", "Ses01F_impro01_F000", "neu"), ("Ses01F_impro01", "Ses01F_impro01_M001", "exc"),
            ("Ses01M_script01_1", "Ses01M_script01_1_F002", "fru"), ("Ses01M_script01_1", "Ses01M_script01_1_M003", "xxx")],
        2: [("Ses02F_impro02", "Ses02F_impro02_F000", "ang"), ("Ses02F_impro02", "Ses02F_impro02_M001", "hap"),
            ("Ses02M_script02_2", "Ses02M_script02_2_F000", "sad")],
    }
    for session, rows in lines.items():
        evald = base / f"Session{session}" / "dialog" / "EmoEvaluation"
        evald.mkdir(parents=True, exist_ok=True)
        (evald / "Categorical").mkdir(exist_ok=True)
        (evald / "Categorical" / "ignored.txt").write_text("[1.0 - 2.0]\tSes09F_impro01_F000\tang\t[1, 1, 1]\n")
        for dialog in sorted({d for d, _, _ in rows}):
            text = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
            for i, (_d, utt, code) in enumerate(r for r in rows if r[0] == dialog):
                text += f"[{6.2 + i:.4f} - {8.2 + i:.4f}]\t{utt}\t{code}\t[2.5000, 3.0000, 3.5000]\nC-E2:\tNeutral;\t()\n\n"
            (evald / f"{dialog}.txt").write_text(text)
        for dialog, utt, _ in rows:
            if utt != "Ses02M_script02_2_F000":  # labelled, but its audio is missing
                clip(base / f"Session{session}" / "sentences" / "wav" / dialog / f"{utt}{ext}")
        clip(base / f"Session{session}" / "dialog" / "wav" / f"{rows[0][0]}.wav")  # a dialog-level recording
    clip(base / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_F009.wav")  # no label line
    return base


@pytest.mark.parametrize("ext", [".wav", ".flac"])
def test_iemocap_labels_sessions_speakers_and_skips(tmp_path, ext):
    _iemocap(tmp_path, ext)
    scan = scan_corpus(tmp_path, "iemocap")
    u = {Path(x.path).stem: x for x in scan.utterances}
    assert len(u) == 6
    a = u["Ses01F_impro01_F000"]
    assert (a.corpus, a.speaker, a.emotion, a.gender) == ("iemocap", "iemocap_Ses01F", "neutral", "female")
    assert a.fields["session"] == "1" and a.fields["type"] == "improvised" and a.fields["dialog"] == "Ses01F_impro01"
    assert (a.fields["valence"], a.fields["activation"], a.fields["dominance"]) == ("2.5000", "3.0000", "3.5000")
    m = u["Ses01F_impro01_M001"]  # the male actor of session 1 speaking in the female-led dialog
    assert (m.speaker, m.gender, m.emotion) == ("iemocap_Ses01M", "male", "excited")
    s = u["Ses01M_script01_1_F002"]
    assert (s.speaker, s.emotion, s.fields["type"]) == ("iemocap_Ses01F", "frustrated", "scripted")
    assert u["Ses01M_script01_1_M003"].emotion == "no_agreement"
    assert u["Ses02F_impro02_M001"].fields["session"] == "2"
    reasons = [r for _, r in scan.skipped]
    assert reasons.count("labelled, but no audio file") == 1
    assert any("EmoEvaluation" in r for r in reasons)  # F009: no label line
    assert sum("not a sentence" in r for r in reasons) == 2  # dialog-level recordings


def _msp(root: Path, audio_dir: str, label_name: str) -> Path:
    base = root / "MSP-Podcast"
    (base / "Labels").mkdir(parents=True)
    (base / "Labels" / label_name).write_text(
        "FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set\n"
        "MSP-PODCAST_0001_0008.wav,N,4.2,4.0,4.4,127,Female,Train\n"
        "MSP-PODCAST_0001_0009.wav,C,3.0,2.0,4.0,127,Female,Development\n"
        "MSP-PODCAST_0002_0001.wav,X,3.0,3.0,3.0,Unknown,Unknown,Test1\n"
        "MSP-PODCAST_0003_0001.wav,O,3.0,3.0,3.0,88,Male,Test2\n"
    )
    for n in ("0001_0008", "0001_0009", "0002_0001", "0003_0001", "0004_0001"):
        clip(base / audio_dir / f"MSP-PODCAST_{n}.wav")
    return base


@pytest.mark.parametrize(("audio_dir", "label_name"), [("Audios", "labels_consensus.csv"), ("Audio", "labels_concensus.csv")])
def test_msppodcast_partitions_labels_and_unknown_speakers(tmp_path, audio_dir, label_name):
    _msp(tmp_path, audio_dir, label_name)
    scan = parse_msppodcast(find_corpus_root(tmp_path, "msppodcast"))
    u = {Path(x.path).stem: x for x in scan.utterances}
    a = u["MSP-PODCAST_0001_0008"]
    assert (a.speaker, a.emotion, a.gender) == ("msppodcast_127", "neutral", "female")
    assert a.fields["partition"] == "train" and a.fields["arousal"] == "4.2" and a.fields["language"] == "en"
    assert (u["MSP-PODCAST_0001_0009"].emotion, u["MSP-PODCAST_0001_0009"].fields["partition"]) == ("contempt", "val")
    x = u["MSP-PODCAST_0002_0001"]
    assert (x.emotion, x.speaker, x.gender, x.fields["partition"]) == ("no_agreement", "msppodcast_podcast0002", None, "test")
    assert (u["MSP-PODCAST_0003_0001"].emotion, u["MSP-PODCAST_0003_0001"].fields["partition"]) == ("other", "test2")
    assert [Path(p).stem for p, _ in scan.skipped] == ["MSP-PODCAST_0004_0001"]


def test_msppodcast_without_label_table_is_a_clear_error(tmp_path):
    clip(tmp_path / "msppodcast" / "Audios" / "MSP-PODCAST_0001_0008.wav")
    with pytest.raises(FileNotFoundError, match="labels_consensus.csv"):
        scan_corpus(tmp_path, "msppodcast")


@pytest.mark.parametrize("with_partitions", [True, False])
def test_esd_english_speakers_folders_and_partitions(tmp_path, with_partitions):
    root = tmp_path / "Emotion Speech Dataset"
    sub = "train/" if with_partitions else ""
    clip(root / "0011" / "Angry" / f"{sub}0011_000351.wav")
    clip(root / "0015" / "Surprise" / f"{'evaluation/' if with_partitions else ''}0015_001401.wav")
    clip(root / "0020" / "Sad" / f"{'test/' if with_partitions else ''}0020_001051.wav")
    clip(root / "0005" / "Happy" / f"{sub}0005_000701.wav")  # Mandarin
    scan = scan_corpus(tmp_path, "esd")
    u = by_name(scan)
    assert set(u) == {"0011_000351.wav", "0015_001401.wav", "0020_001051.wav"}
    a = u["0011_000351.wav"]
    assert (a.speaker, a.emotion, a.gender, a.fields["language"]) == ("esd_0011", "angry", "male", "en")
    assert (u["0015_001401.wav"].emotion, u["0015_001401.wav"].gender) == ("surprise", "female")
    assert [r for _, r in scan.skipped] == ["Mandarin speaker (the English speakers are 0011-0020)"]
    if with_partitions:
        assert [u[n].fields["partition"] for n in sorted(u)] == ["train", "val", "test"]
    else:
        assert all("partition" not in x.fields for x in scan.utterances)
    assert len(parse_esd(root, mandarin=True).utterances) == 4


def test_esd_emotion_from_index_without_emotion_folders(tmp_path):
    for n in ("000001", "000700", "000701", "001400", "001750"):
        clip(tmp_path / "esd" / "0012" / f"0012_{n}.wav")
    emo = {Path(x.path).stem[-6:]: x.emotion for x in scan_corpus(tmp_path, "esd").utterances}
    assert emo == {"000001": "neutral", "000700": "angry", "000701": "happy", "001400": "sad", "001750": "surprise"}


@pytest.mark.parametrize("nested", [True, False])
def test_cafe_nested_and_flat(tmp_path, nested):
    root = tmp_path / "CaFE_48k"
    files = {"Colère/Faible/01-C-1-1": "angry", "Dégoût/Fort/02-D-2-6": "disgust", "Joie/Fort/03-J-2-3": "happy",
             "Neutre/12-N-1-4": "neutral", "Peur/Faible/05-P-1-2": "fear", "Surprise/Fort/06-S-2-5": "surprise",
             "Tristesse/Faible/07-T-1-1": "sad"}
    for rel in files:
        clip(root / ((rel if nested else Path(rel).name) + ".wav"))
    clip(root / "13-C-1-1.wav")  # no actor 13
    scan = scan_corpus(tmp_path, "cafe")
    u = by_name(scan)
    assert {n: x.emotion for n, x in u.items()} == {Path(r).name + ".wav": e for r, e in files.items()}
    a = u["01-C-1-1.wav"]
    assert (a.speaker, a.gender, a.fields) == ("cafe_01", "male", {"intensity": "low", "sentence": "1", "language": "fr"})
    assert (u["02-D-2-6.wav"].gender, u["02-D-2-6.wav"].fields["intensity"]) == ("female", "high")
    assert len(scan.skipped) == 1


@pytest.mark.parametrize("nested", [True, False])
def test_shemo_gender_folders_and_flat(tmp_path, nested):
    root = tmp_path / "shemo"
    names = {"F01A01": "angry", "F12F03": "fear", "M36H02": "happy", "M02N10": "neutral", "F20S04": "sad",
             "M31W01": "surprise"}
    for n in names:
        clip(root / ((("female/" if n[0] == "F" else "male/") if nested else "") + n + ".wav"))
    clip(root / "X01A01.wav")
    scan = parse_shemo(root)
    u = by_name(scan)
    assert {n[:-4]: x.emotion for n, x in u.items()} == names
    a = u["F01A01.wav"]
    assert (a.speaker, a.gender, a.fields) == ("shemo_F01", "female", {"utterance": "01", "language": "fa"})
    assert u["M36H02.wav"].speaker == "shemo_M36" and u["M36H02.wav"].gender == "male"
    assert len(scan.skipped) == 1


@pytest.mark.parametrize("nested", [True, False])
def test_aesdd_emotion_folders_and_flat(tmp_path, nested):
    root = tmp_path / "Acted Emotional Speech Dynamic Database"
    files = {"anger/a01 (1)": "angry", "disgust/d12 (2)": "disgust", "fear/f20 (3)": "fear",
             "happiness/h05 (4)": "happy", "sadness/s06 (5)b": "sad"}
    for rel in files:
        clip(root / ((rel if nested else Path(rel).name) + ".wav"))
    clip(root / "x01 (1).wav")
    scan = scan_corpus(tmp_path, "aesdd")
    u = by_name(scan)
    assert {n[:-4]: x.emotion for n, x in u.items()} == {Path(r).name: e for r, e in files.items()}
    a = u["a01 (1).wav"]
    assert (a.speaker, a.gender, a.fields) == ("aesdd_1", None, {"utterance": "01", "language": "el"})
    assert (u["s06 (5)b.wav"].speaker, u["s06 (5)b.wav"].fields["take"]) == ("aesdd_5", "b")
    assert len(scan.skipped) == 1


@pytest.mark.parametrize("nested", [True, False])
def test_jlcorpus_primary_and_secondary_emotions(tmp_path, nested):
    sub = "Raw JL corpus (unchecked and unannotated)/JL(wav+txt)/" if nested else ""
    root = tmp_path / "jlcorpus"
    for n in ("male1_angry_10a_1", "female2_excited_6b_2", "male2_concerned_6b_1", "female1_apologetic_3a_1"):
        clip(root / f"{sub}{n}.wav")
        (root / f"{sub}{n}.txt").write_text("transcript")
    clip(root / f"{sub}male1_bored_1a_1.wav")
    scan = parse_jlcorpus(root)
    u = by_name(scan)
    a = u["male1_angry_10a_1.wav"]
    assert (a.speaker, a.emotion, a.gender) == ("jlcorpus_male1", "angry", "male")
    assert a.fields == {"sentence": "10a", "take": "1", "language": "en", "emotion_type": "primary"}
    assert (u["female2_excited_6b_2.wav"].gender, u["female2_excited_6b_2.wav"].emotion) == ("female", "excited")
    assert u["male2_concerned_6b_1.wav"].fields["emotion_type"] == "secondary"
    assert [r for _, r in scan.skipped] == ["unknown emotion 'bored'"]


@pytest.mark.parametrize("ext", [".wav", ".flac"])
def test_turev_codes_folders_and_disagreement(tmp_path, ext):
    # TurEV-DB's codes as its authors document them (Canpolat et al. 2020; repository Xeonen/TurEV-DB,
    # "Sound Source/<Emotion>/<speaker>_<code>_<word>"): kz kızgın angry, sk sakin calm, mt mutlu happy, hl hüzünlü sad.
    documented = {"kz": "angry", "sk": "calm", "mt": "happy", "hl": "sad"}
    folder = {"kz": "Angry", "sk": "Calm", "mt": "Happy", "hl": "Sad"}
    root = tmp_path / "TurEV-DB" / "Sound Source"
    for code in documented:
        clip(root / folder[code] / f"1157_{code}_acik{ext}")
    clip(root / "Angry" / f"1234_sk_bugu{ext}")  # a calm code in the angry folder
    clip(root / "Sad" / f"1234_xx_bugu{ext}")
    scan = scan_corpus(tmp_path, "turev")
    u = by_name(scan)
    assert {n.split("_")[1]: x.emotion for n, x in u.items()} == documented
    a = u[f"1157_kz_acik{ext}"]
    assert (a.corpus, a.speaker, a.gender, a.fields) == ("turev", "turev_1157", None, {"word": "acik", "code": "kz"})
    assert sorted(r.split(" (")[0] for _, r in scan.skipped) == ["emotion code 'sk'", "unknown emotion code 'xx'"]
    assert parse_turev(root).utterances == scan.utterances


def test_every_parser_is_registered_and_finds_its_folder(tmp_path):
    assert {"emodb", "emovo", "iemocap", "msppodcast", "esd", "cafe", "shemo", "aesdd", "jlcorpus", "turev"} <= set(PARSERS)
    clip(tmp_path / "EmoDB" / "wav" / "03a01Wa.wav")
    assert scan_corpus(tmp_path, "emodb").utterances[0].speaker == "emodb_03"
    clip(tmp_path / "direct" / "F01A01.wav")  # a corpus directly in the data root
    assert find_corpus_root(tmp_path / "direct", "shemo") == (tmp_path / "direct").resolve()
    _iemocap(tmp_path / "direct2")
    assert find_corpus_root(tmp_path / "direct2" / "IEMOCAP_full_release", "iemocap").name == "IEMOCAP_full_release"
