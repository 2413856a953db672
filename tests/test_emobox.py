"""EmoBox metadata and official folds on generated JSONL (EmoBox's format) and generated audio."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ser_lightning.data.datamodule import SERDataModule
from ser_lightning.data.emobox import emobox_classes, load_emobox
from tests.test_corpora import clip

EMODB_MAP = {"anger": "Angry", "boredem": "Boredom", "disgust": "Disgust", "fear": "Fear", "happy": "Happy",
             "Neutral": "Neutral", "sad": "Sad"}
CODES = {"W": "anger", "L": "boredem", "E": "disgust", "A": "fear", "F": "happy", "T": "sad", "N": "Neutral"}
SPEAKERS = ["03", "08", "09", "10", "11", "12"]


def _record(stem: str, emo: str, corpus: str = "emodb") -> dict:
    return {"key": f"{corpus}-{stem}", "dataset": corpus, "wav": f"downloads/{corpus}/wav/{stem}.wav", "type": "raw",
            "sample_rate": 16000, "num_frame": 800.0, "task": "category", "length": 0.05, "emo": emo, "channel": 1}


def make_emobox(root: Path, n_folds: int = 2, label_file: str = "label_map.json") -> tuple[Path, Path]:
    """An EmoBox checkout (``EmoBox/data/emodb``) and an audio root (``audio/downloads/emodb/wav``):
    six speakers × seven emotions; fold k tests speakers of fold k."""
    meta = root / "EmoBox" / "data" / "emodb"
    meta.mkdir(parents=True)
    (meta / label_file).write_text(json.dumps(EMODB_MAP, indent=4))
    audio = root / "audio"
    records = []
    for spk in SPEAKERS:
        for letter, emo in CODES.items():
            stem = f"{spk}a01{letter}a"
            clip(audio / "downloads" / "emodb" / "wav" / f"{stem}.wav")
            records.append(_record(stem, emo))
    (meta / "emodb.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    for k in range(1, n_folds + 1):
        test_spk = set(SPEAKERS[(k - 1) * 2: k * 2])
        d = meta / f"fold_{k}"
        d.mkdir()
        for part, rows in (("train", [r for r in records if r["key"][6:8] not in test_spk]),
                           ("test", [r for r in records if r["key"][6:8] in test_spk])):
            (d / f"emodb_{part}_fold_{k}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "EmoBox", audio


def test_load_emobox_fold_labels_speakers_and_partitions(tmp_path):
    meta, audio = make_emobox(tmp_path)
    scan = load_emobox(meta, "emodb", fold=2, audio_root=audio)
    assert len(scan.utterances) == 42 and not scan.skipped
    u = {Path(x.path).stem: x for x in scan.utterances}
    a = u["09a01La"]
    assert (a.corpus, a.speaker, a.emotion, a.gender) == ("emodb", "emodb_09", "boredom", "female")
    assert a.fields["partition"] == "test" and a.fields["fold"] == "2" and a.fields["key"] == "emodb-09a01La"
    assert a.fields["speaker_known"] == "true" and a.fields["emo"] == "boredem"
    assert u["03a01Na"].emotion == "neutral" and u["03a01Na"].fields["partition"] == "train"
    assert {x.speaker for x in scan.utterances if x.fields["partition"] == "test"} == {"emodb_09", "emodb_10"}
    # the downloads/ folder itself works as audio root; the data/ folder as metadata dir
    assert len(load_emobox(meta / "data", "emodb", fold=1, audio_root=audio / "downloads").utterances) == 42
    whole = load_emobox(meta, "emodb", fold=None, audio_root=audio)
    assert len(whole.utterances) == 42 and all("partition" not in x.fields for x in whole.utterances)


def test_emobox_classes_follow_the_label_map_and_label_dict_spelling(tmp_path):
    meta, _ = make_emobox(tmp_path, label_file="label_dict.json")  # EMOVO's spelling of the file
    assert emobox_classes(meta, "emodb") == ["angry", "boredom", "disgust", "fear", "happy", "neutral", "sad"]


def test_emobox_missing_clips_videos_and_segments_are_listed(tmp_path):
    meta, audio = make_emobox(tmp_path, n_folds=1)
    (audio / "downloads" / "emodb" / "wav" / "03a01Wa.wav").unlink()
    extra = [{**_record("x", "anger"), "key": "emodb-video", "wav": "downloads/emodb/clip.mp4"},
             {**_record("08a01Wa", "anger"), "key": "emodb-seg", "start_time": 0.0, "end_time": 0.02}]
    with (meta / "data" / "emodb" / "fold_1" / "emodb_test_fold_1.jsonl").open("a") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in extra))
    scan = load_emobox(meta, "emodb", fold=1, audio_root=audio)
    reasons = [r for _, r in scan.skipped]
    assert len(scan.utterances) == 41 and len(reasons) == 3
    assert any("not found under" in r for r in reasons) and any(".mp4 is not .wav/.flac" in r for r in reasons)
    assert any("segment" in r for r in reasons)


def test_emobox_errors_name_the_setting(tmp_path):
    meta, audio = make_emobox(tmp_path, n_folds=2)
    with pytest.raises(ValueError, match=r"data.fold=3: EmoBox corpus 'emodb' has folds \[1, 2\]"):
        load_emobox(meta, "emodb", fold=3, audio_root=audio)
    with pytest.raises(FileNotFoundError, match=r"no EmoBox metadata for corpus 'iemocap'.*corpora there: \['emodb'\]"):
        load_emobox(meta, "iemocap", fold=1, audio_root=audio)
    with pytest.raises(ValueError, match="data.emobox.metadata_dir is not set"):
        load_emobox(None, "emodb", fold=1, audio_root=audio)
    with pytest.raises(FileNotFoundError, match="none of the clips"):
        load_emobox(meta, "emodb", fold=1, audio_root=tmp_path / "elsewhere")
    bad = meta / "data" / "emodb" / "fold_1" / "emodb_train_fold_1.jsonl"
    bad.write_text(bad.read_text() + '{"key": "emodb-x", "wav": "downloads/emodb/wav/x.wav"}\n')
    with pytest.raises(ValueError, match=r"emodb_train_fold_1.jsonl:\d+: missing field\(s\) \['emo'\]"):
        load_emobox(meta, "emodb", fold=1, audio_root=audio)


def test_datamodule_on_emobox_fold_validates_on_train_fold_speakers(tmp_path):
    meta, audio = make_emobox(tmp_path, n_folds=2)
    dm = SERDataModule(root=str(tmp_path), corpora=["emobox"], label_set="emobox", split="partition", fold=1,
                       val_speakers=1, emobox={"metadata_dir": str(meta), "corpus": "emodb", "audio_root": str(audio)},
                       duration_s=0.1, cache_dir=str(tmp_path / "cache"), run_dir=str(tmp_path / "run"), progress=False)
    emodb7 = ["angry", "boredom", "disgust", "fear", "happy", "neutral", "sad"]
    assert dm.class_names == emodb7
    assert list(dm.hparams.label_set) == emodb7  # the checkpoint stores the classes themselves
    dm.setup("fit")
    spk = {s: {u.speaker for u, a in zip(dm.utterances, dm.assignment) if a == s} for s in ("train", "val", "test")}
    assert spk["test"] == {"emodb_03", "emodb_08"}  # fold 1's test file
    assert len(spk["val"]) == 1 and not spk["val"] & spk["test"] and not spk["val"] & spk["train"]
    assert len(dm.datasets["test"]) == 14 and len(dm.datasets["train"]) + len(dm.datasets["val"]) == 28
