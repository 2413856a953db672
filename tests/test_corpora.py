"""Corpus parsers on generated audio named in each corpus's convention, manifests, and errors."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_lightning.data.corpora import (
    CORPUS_DIR_NAMES,
    PARSERS,
    find_corpus_root,
    parse_cremad,
    parse_manifest,
    parse_ravdess,
    parse_savee,
    parse_tess,
)
from ser_lightning.data.scan import scan_corpora, scan_corpus


def clip(path: Path, sample_rate: int = 16000) -> Path:
    """Write 0.05 s of noise to ``path`` (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x = 0.1 * np.random.default_rng(len(str(path))).standard_normal(int(0.05 * sample_rate))
    sf.write(path, x.astype(np.float32), sample_rate)
    return path


def by_name(scan):
    return {Path(u.path).name: u for u in scan.utterances}


# --------------------------------------------------------------------------- RAVDESS


def test_ravdess_wav_and_flac_fields_gender_and_skips(tmp_path, caplog):
    root = tmp_path / "ravdess"
    clip(root / "Actor_01" / "03-01-05-02-01-01-01.wav")
    clip(root / "Actor_02" / "03-01-08-01-02-02-02.flac")
    clip(root / "Actor_02" / "03-01-02-01-01-01-02.FLAC")
    song = clip(root / "Actor_01" / "03-02-05-01-01-01-01.wav")
    video = clip(root / "Actor_01" / "01-01-05-01-01-01-01.wav")
    junk = clip(root / "Actor_01" / "notes.wav")
    (root / "Actor_01" / "readme.txt").write_text("not audio")
    with caplog.at_level(logging.WARNING, logger="ser_lightning.data.corpora"):
        scan = parse_ravdess(root)
    u = by_name(scan)
    assert len(scan.utterances) == 3
    a = u["03-01-05-02-01-01-01.wav"]
    assert (a.corpus, a.speaker, a.emotion, a.gender) == ("ravdess", "ravdess_01", "angry", "male")
    assert a.fields == {"modality": "03", "vocal_channel": "01", "intensity": "strong",
                        "statement": "kids", "repetition": "01", "actor": "01"}
    b = u["03-01-08-01-02-02-02.flac"]
    assert (b.speaker, b.emotion, b.gender) == ("ravdess_02", "surprise", "female")
    assert b.fields["statement"] == "dogs" and b.fields["intensity"] == "normal"
    assert u["03-01-02-01-01-01-02.FLAC"].emotion == "calm"
    assert Path(a.path).is_absolute()
    assert [x.path for x in scan.utterances] == sorted(x.path for x in scan.utterances)
    reasons = dict(scan.skipped)
    assert reasons[str(song)] == "song, not speech"
    assert "modality" in reasons[str(video)]
    assert str(junk) in reasons and len(scan.skipped) == 3
    assert "skipped 3 audio file(s)" in caplog.text


def test_ravdess_only_songs_is_an_error_naming_root_and_pattern(tmp_path):
    clip(tmp_path / "Actor_01" / "03-02-05-01-01-01-01.wav")
    with pytest.raises(FileNotFoundError, match=r"03-01-EE-II-SS-RR-AA") as e:
        parse_ravdess(tmp_path)
    assert str(tmp_path) in str(e.value)


# --------------------------------------------------------------------------- CREMA-D


def test_cremad_with_demographics(tmp_path):
    root = tmp_path / "CREMA-D"
    clip(root / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    clip(root / "AudioWAV" / "1002_IEO_HAP_HI.wav")
    clip(root / "AudioWAV" / "1003_TIE_FEA_LO.wav")
    bad = clip(root / "AudioWAV" / "1001_DFA_XYZ_XX.wav")
    (root / "VideoDemographics.csv").write_text(
        "ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n"
        "1002,21,Female,Caucasian,Not Hispanic\n"
    )
    scan = parse_cremad(root)
    u = by_name(scan)
    assert len(scan.utterances) == 3
    a = u["1001_DFA_ANG_XX.wav"]
    assert (a.corpus, a.speaker, a.emotion, a.gender) == ("cremad", "cremad_1001", "angry", "male")
    assert a.fields == {"sentence": "DFA", "intensity": "unspecified"}
    assert (u["1002_IEO_HAP_HI.wav"].gender, u["1002_IEO_HAP_HI.wav"].fields["intensity"]) == ("female", "high")
    assert u["1003_TIE_FEA_LO.wav"].gender is None  # not in the table
    assert u["1003_TIE_FEA_LO.wav"].emotion == "fear"
    assert [p for p, _ in scan.skipped] == [str(bad)]


def test_cremad_demographics_in_parent_and_absent(tmp_path):
    clip(tmp_path / "AudioWAV" / "1091_WSI_SAD_MD.wav")
    assert parse_cremad(tmp_path / "AudioWAV").utterances[0].gender is None
    (tmp_path / "VideoDemographics.csv").write_text("ActorID,Age,Sex,Race,Ethnicity\n1091,30,Female,Asian,Not Hispanic\n")
    u = parse_cremad(tmp_path / "AudioWAV").utterances[0]
    assert (u.speaker, u.emotion, u.gender, u.fields["intensity"]) == ("cremad_1091", "sad", "female", "medium")


# --------------------------------------------------------------------------- TESS


def test_tess_ps_is_pleasant_surprise_and_case_tolerant(tmp_path):
    root = tmp_path / "tess"
    clip(root / "OAF_angry" / "OAF_back_angry.wav")
    clip(root / "YAF_pleasant_surprised" / "YAF_bar_ps.wav")
    clip(root / "OAF_Pleasant_surprise" / "OAF_base_pleasant_surprised.wav")
    clip(root / "OAF_Fear" / "OAF_bean_Fear.wav")
    bad = clip(root / "OAF_angry" / "XYZ_back_angry.wav")
    scan = parse_tess(root)
    u = by_name(scan)
    assert len(scan.utterances) == 4
    a = u["OAF_back_angry.wav"]
    assert (a.corpus, a.speaker, a.emotion, a.gender, a.fields) == ("tess", "tess_OAF", "angry", "female", {"word": "back"})
    assert (u["YAF_bar_ps.wav"].speaker, u["YAF_bar_ps.wav"].emotion) == ("tess_YAF", "pleasant_surprise")
    assert u["OAF_base_pleasant_surprised.wav"].emotion == "pleasant_surprise"
    assert u["OAF_bean_Fear.wav"].emotion == "fear"
    assert [p for p, _ in scan.skipped] == [str(bad)]


def test_tess_truncated_prefix_takes_the_speaker_from_its_folder(tmp_path):
    root = tmp_path / "tess"
    clip(root / "OAF_neutral" / "OA_bite_neutral.wav")  # the distributed corpus's one typo
    clip(root / "YAF_neutral" / "OA_bite_neutral.wav")  # prefix and folder disagree: skipped
    scan = parse_tess(root)
    (u,) = scan.utterances
    assert (u.speaker, u.emotion, u.fields) == ("tess_OAF", "neutral", {"word": "bite", "speaker_from": "folder"})
    assert [p for p, _ in scan.skipped] == [str(root / "YAF_neutral" / "OA_bite_neutral.wav")]


# --------------------------------------------------------------------------- SAVEE


@pytest.mark.parametrize("flat", [True, False])
def test_savee_both_layouts(tmp_path, flat):
    names = ["a01", "sa02", "su03", "n30"]
    for spk in ("DC", "KL"):
        for n in names:
            clip(tmp_path / (f"ALL/{spk}_{n}.wav" if flat else f"AudioData/{spk}/{n}.wav"))
    clip(tmp_path / ("ALL/XX_a01.wav" if flat else "AudioData/XX/a01.wav"))
    scan = parse_savee(tmp_path)
    assert len(scan.utterances) == 8 and len(scan.skipped) == 1
    emo = {(u.speaker, u.fields["sentence"]): u.emotion for u in scan.utterances}
    assert emo[("savee_DC", "01")] == "angry"
    assert emo[("savee_DC", "02")] == "sad"
    assert emo[("savee_KL", "03")] == "surprise"
    assert emo[("savee_KL", "30")] == "neutral"
    assert {u.gender for u in scan.utterances} == {"male"} and {u.corpus for u in scan.utterances} == {"savee"}


# --------------------------------------------------------------------------- CSV manifest


def test_manifest_relative_paths_prefix_and_fields(tmp_path):
    clip(tmp_path / "audio" / "x.wav")
    clip(tmp_path / "audio" / "y.flac")
    csv = tmp_path / "mine.csv"
    csv.write_text("path,label,speaker,gender,session\naudio/x.wav,Anger,s1,F,1\naudio/y.flac,ps,s2,,2\n")
    scan = parse_manifest(csv)
    x, y = scan.utterances
    assert x.path == str((tmp_path / "audio" / "x.wav").resolve())
    assert (x.corpus, x.speaker, x.emotion, x.gender, x.fields) == ("mine", "mine_s1", "angry", "female", {"session": "1"})
    assert (y.speaker, y.emotion, y.gender) == ("mine_s2", "pleasant_surprise", None)
    assert scan.skipped == []
    assert {u.speaker for u in parse_manifest(csv, corpus="lab").utterances} == {"lab_s1", "lab_s2"}


def test_manifest_corpus_column(tmp_path):
    clip(tmp_path / "x.wav")
    csv = tmp_path / "m.csv"
    csv.write_text(f"path,label,speaker,corpus\n{tmp_path / 'x.wav'},sad,7,emodb\n")
    u = parse_manifest(csv).utterances[0]
    assert (u.corpus, u.speaker, u.emotion) == ("emodb", "emodb_7", "sad")


def test_manifest_keeps_labels_beyond_the_vocabulary(tmp_path):
    clip(tmp_path / "x.wav")
    clip(tmp_path / "y.wav")
    csv = tmp_path / "emodb.csv"
    csv.write_text("path,label,speaker\nx.wav,boredom,03\ny.wav,Sarcasm,03\n")
    x, y = parse_manifest(csv).utterances
    assert (x.emotion, y.emotion) == ("boredom", "sarcasm")  # the datamodule's unknown_labels decides


def test_manifest_errors(tmp_path):
    clip(tmp_path / "x.wav")
    csv = tmp_path / "m.csv"
    csv.write_text("path,label,speaker\nx.wav,,s1\n")
    with pytest.raises(ValueError, match=r"m\.csv:2: empty label"):
        parse_manifest(csv)
    csv.write_text("path,speaker\nx.wav,s1\n")
    with pytest.raises(ValueError, match=r"m\.csv is missing column 'label'"):
        parse_manifest(csv)
    csv.write_text("path,label,speaker\nx.wav,sad,s1\nmissing.wav,sad,s1\n")
    with pytest.raises(FileNotFoundError, match=r"m\.csv:3: audio file .*missing\.wav"):
        parse_manifest(csv)


def test_scan_corpus_accepts_csv_path(tmp_path):
    clip(tmp_path / "x.wav")
    (tmp_path / "m.csv").write_text("path,label,speaker\nx.wav,happy,a\n")
    assert scan_corpus(tmp_path, str(tmp_path / "m.csv")).utterances[0].speaker == "m_a"
    assert scan_corpus(tmp_path, "m.csv").utterances[0].emotion == "happy"  # relative to data_root


# --------------------------------------------------------------------------- lookup & errors


def test_find_corpus_root_missing_data_root(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as e:
        find_corpus_root(missing, "ravdess")
    msg = str(e.value)
    assert str(missing) in msg and "make data" in msg and "SER_DATA_DIR" in msg
    assert all(n in msg for n in CORPUS_DIR_NAMES["ravdess"])
    with pytest.raises(FileNotFoundError, match="no automatic download") as e:
        find_corpus_root(missing, "tess")
    assert "make data" not in str(e.value)


def test_find_corpus_root_names_and_direct(tmp_path):
    clip(tmp_path / "CREMA-D" / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    assert find_corpus_root(tmp_path, "cremad") == (tmp_path / "CREMA-D").resolve()
    clip(tmp_path / "Actor_01" / "03-01-01-01-01-01-01.wav")  # RAVDESS directly in the root
    assert find_corpus_root(tmp_path, "ravdess") == tmp_path.resolve()
    with pytest.raises(FileNotFoundError, match=r"no savee corpus in .*tried sub-directories"):
        find_corpus_root(tmp_path, "savee")


def test_empty_corpus_root_is_an_error(tmp_path):
    (tmp_path / "tess").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no tess utterances under .*tess.*OAF_back_angry"):
        scan_corpus(tmp_path, "tess")


def test_unknown_corpus_lists_choices(tmp_path):
    with pytest.raises(ValueError, match="unknown corpus 'berlin'") as e:
        scan_corpus(tmp_path, "berlin")
    assert all(n in str(e.value) for n in PARSERS) and ".csv" in str(e.value)


def test_scan_corpora_combines_with_distinct_speakers(tmp_path):
    clip(tmp_path / "ravdess" / "Actor_01" / "03-01-05-01-01-01-01.wav")
    clip(tmp_path / "ravdess" / "Actor_02" / "03-01-04-01-01-01-02.wav")
    clip(tmp_path / "savee" / "DC" / "a01.wav")
    clip(tmp_path / "savee" / "DC" / "a02.wav")
    scan = scan_corpora(tmp_path, ["ravdess", "savee"])
    assert [u.corpus for u in scan.utterances] == ["ravdess"] * 2 + ["savee"] * 2
    assert {u.speaker for u in scan.utterances} == {"ravdess_01", "ravdess_02", "savee_DC"}
    with pytest.raises(ValueError, match="listed twice"):
        scan_corpora(tmp_path, ["ravdess", "RAVDESS"])


def test_scan_corpora_skip_missing_combines_present_ones(tmp_path, caplog):
    clip(tmp_path / "ravdess" / "Actor_01" / "03-01-05-01-01-01-01.wav")
    clip(tmp_path / "savee" / "DC_a01.wav")
    with pytest.raises(FileNotFoundError, match="cremad"):
        scan_corpora(tmp_path, ["ravdess", "cremad", "savee"])
    with caplog.at_level(logging.WARNING):
        scan = scan_corpora(tmp_path, ["ravdess", "cremad", "tess", "savee"], skip_missing=True)
    assert {u.corpus for u in scan.utterances} == {"ravdess", "savee"}
    assert "corpus cremad left out" in caplog.text and "corpus tess left out" in caplog.text
    with pytest.raises(FileNotFoundError, match="none of the corpora"):
        scan_corpora(tmp_path, ["cremad", "tess"], skip_missing=True)
