"""data.unknown_labels (error / drop / unscorable) with counts, and eval.py scoring an EmoDB manifest."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ser_lightning.data.datamodule import SERDataModule
from tests.conftest import run_script, tone
from tests.test_corpora import clip

EMODB_LETTERS = "WLEAFTN"  # angry, boredom, disgust, fear, happy, sad, neutral
EMODB_SPEAKERS = ("03", "08", "09", "10", "11", "12", "13", "14", "15", "16")


def make_emodb(root: Path, speakers=EMODB_SPEAKERS, sample_rate: int = 16000, duration_s: float = 0.5) -> Path:
    """Write EmoDB-named clips ``root/emodb/wav/SSa01Ea.wav`` (one per speaker and emotion)."""
    import soundfile as sf

    for s in speakers:
        for j, e in enumerate(EMODB_LETTERS):
            path = root / "emodb" / "wav" / f"{s}a01{e}a.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone(180 + 50 * j, duration_s, sample_rate, seed=int(s) * 10 + j), sample_rate)
    return root


def _dm(root, tmp_path, **kw):
    args = dict(root=str(root), corpora=["emodb"], label_set="ekman7", val_speakers=2, test_speakers=2,
                duration_s=0.2, cache_dir=str(tmp_path / "cache"), run_dir=str(tmp_path / "run"), progress=False)
    return SERDataModule(**{**args, **kw})


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_drop_is_default_warns_and_counts_per_label(tmp_path, caplog):
    make_emodb(tmp_path, speakers=EMODB_SPEAKERS[:6])
    dm = _dm(tmp_path, tmp_path)
    with caplog.at_level("WARNING"):
        dm.setup("fit")
    assert "6 clip(s) left out of label set ekman7" in caplog.text and "boredom" in caplog.text
    assert {u.emotion for u in dm.utterances} == {"angry", "disgust", "fear", "happy", "sad", "neutral"}
    assert [u.emotion for u in dm.dropped] == ["boredom"] * 6
    rows = _rows(tmp_path / "run" / "unknown_labels.csv")
    assert rows == [{"emotion": "boredom", "reason": "outside label set ekman7", "clips": "6", "policy": "drop"}]
    assert dm.unscorable_rows == {}  # drop: never decoded


def test_error_names_the_file_and_the_setting(tmp_path):
    make_emodb(tmp_path, speakers=EMODB_SPEAKERS[:6])
    with pytest.raises(ValueError, match=r"03a01La\.wav: emotion 'boredom' is outside label set ekman7.*unknown_labels"):
        _dm(tmp_path, tmp_path, unknown_labels="error").setup("fit")
    _dm(tmp_path, tmp_path, unknown_labels="error", label_set="emodb7").setup("fit")  # all in the set: fine


def test_calm_drop_is_counted_but_never_an_error(tiny_ravdess, tmp_path):
    dm = _dm(tiny_ravdess, tmp_path, corpora=["ravdess"], calm="drop", unknown_labels="error")
    dm.setup("fit")
    assert {u.emotion for u in dm.dropped} == {"calm"}
    assert _rows(tmp_path / "run" / "unknown_labels.csv")[0]["reason"] == "data.calm=drop"


def test_label_outside_the_vocabulary_in_a_manifest(tmp_path):
    for i in range(8):
        clip(tmp_path / f"a{i}.wav")
    lines = [f"a{i}.wav,{'sarcasm' if i == 0 else ['angry', 'sad'][i % 2]},s{i % 4}" for i in range(8)]
    (tmp_path / "m.csv").write_text("path,label,speaker\n" + "\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"a0\.wav: emotion 'sarcasm' is not in the vocabulary"):
        _dm(tmp_path, tmp_path, corpora=[str(tmp_path / "m.csv")], unknown_labels="error", val_speakers=1,
            test_speakers=1).setup("fit")
    dm = _dm(tmp_path, tmp_path, corpora=[str(tmp_path / "m.csv")], unknown_labels="unscorable", val_speakers=1,
             test_speakers=1)
    dm.setup("fit")
    assert [u.emotion for u in dm.dropped] == ["sarcasm"]
    assert list(dm.unscorable_rows) == [str((tmp_path / "a0.wav").resolve())]  # decoded for eval.py
    assert _rows(tmp_path / "run" / "unknown_labels.csv")[0]["reason"] == "not in the vocabulary"


def test_bad_policy_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"data.unknown_labels='ignore' is not one of \['error', 'drop', 'unscorable'\]"):
        _dm(tmp_path, tmp_path, unknown_labels="ignore")


def test_eval_scores_an_emodb_manifest_with_boredom_as_unscorable(trained_members, tmp_path):
    """The manifest that used to stop eval.py at its first 'boredom' row is scored; boredom is unscorable."""
    make_emodb(tmp_path, speakers=EMODB_SPEAKERS[:3], duration_s=1.0)
    names = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness", "N": "neutral"}
    rows = [f"{p},{names[p.stem[5]]},{p.stem[:2]}" for p in sorted((tmp_path / "emodb" / "wav").glob("*.wav"))]
    (tmp_path / "emodb.csv").write_text("path,label,speaker\n" + "\n".join(rows) + "\n")
    for policy in ("drop", "unscorable"):
        out = tmp_path / f"eval_{policy}"
        r = run_script("eval.py", f"ckpt_path={trained_members[0]}", "data=manifest", f"data.corpora=[{tmp_path / 'emodb.csv'}]",
                       "split=all", f"data.unknown_labels={policy}", f"data.cache_dir={tmp_path / 'cache'}", cwd=out)
        assert r.returncode == 0, r.stderr[-3000:]
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["n"] == 18  # 3 speakers × 6 emotions a ravdess8 model can output
        assert metrics["unscorable"]["per_emotion"] == {"boredom": 3}
        unscorable = _rows(out / "unscorable.csv")
        assert [u["emotion"] for u in unscorable] == ["boredom"] * 3
        if policy == "unscorable":
            assert all(u["predicted"] in metrics["labels"] for u in unscorable)
            assert sum(metrics["unscorable"]["predicted"]["boredom"].values()) == 3
        else:
            assert all(u["predicted"] == "" for u in unscorable) and "predicted" not in metrics["unscorable"]
