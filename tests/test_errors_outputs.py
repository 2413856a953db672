"""Errors and outputs (issue 24 item 5): one line naming the file and what is wrong, once; folders in the API;
the Hugging Face pipeline shape; predict.py's table at 80 columns and with segment=vad; no run directory left
behind by a run that writes elsewhere or fails."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import ser_lightning as ser
from ser_lightning.data.audio import AudioDecodeError, read_audio
from tests.conftest import REPO, run_script


def _tone(sr: int, seconds: float, freq: float = 330.0) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    return (0.4 * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t))).astype(np.float32)


@pytest.fixture(scope="module")
def model(trained_members):
    return ser.load_model(trained_members[0], vad=False)  # generated tones: no speech for the detector


@pytest.fixture()
def bad_files(tmp_path) -> dict[str, Path]:
    """A text file named .mp3 (and .wav, .m4a), an empty file, random bytes named .wav."""
    files = {"text.mp3": b"hello, not audio\n" * 3, "text.wav": b"just some notes\n", "text.m4a": b"notes\n",
             "empty.wav": b"", "noise.wav": bytes(np.random.default_rng(0).integers(1, 255, 3000, dtype=np.uint8))}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return {name: tmp_path / name for name in files}


def test_unreadable_files_say_what_they_are(bad_files, capfd):
    expected = {"text.mp3": "a text file, not audio", "text.wav": "a text file, not audio",
                "text.m4a": "a text file, not audio", "empty.wav": "empty file, 0 bytes",
                "noise.wav": "Format not recognised"}
    for name, reason in expected.items():
        with pytest.raises(AudioDecodeError) as err:
            read_audio(bad_files[name])
        msg = str(err.value)
        assert msg == f"{bad_files[name]}: cannot decode audio ({reason})", msg
        assert "does not exist" not in msg and "\n" not in msg and msg.count(str(bad_files[name])) == 1
    assert "Note:" not in capfd.readouterr().err  # libmpg123 was not handed the text file named .mp3


def test_a_corrupt_file_is_reported_once_in_the_api(model, bad_files, caplog):
    with caplog.at_level(logging.INFO):
        with pytest.raises(ValueError) as err:
            model.predict(bad_files["text.mp3"])
    assert str(err.value) == f"{bad_files['text.mp3']}: cannot decode audio (a text file, not audio)"
    assert not [r for r in caplog.records if r.levelno >= logging.INFO], caplog.text  # not also a logged warning
    with caplog.at_level(logging.INFO):
        out = model.predict([bad_files["text.wav"], _tone(16000, 1.0)], sample_rate=16000)
    assert [p.status for p in out] == ["error", "ok"] and out[0].error == "cannot decode audio (a text file, not audio)"
    assert not [r for r in caplog.records if r.levelno >= logging.INFO], caplog.text


def test_the_api_takes_a_folder(model, tmp_path):
    (tmp_path / "sub").mkdir()
    sf.write(tmp_path / "b.wav", _tone(16000, 1.2, 250), 16000)
    sf.write(tmp_path / "sub" / "a.flac", _tone(22050, 1.0, 400), 22050)
    (tmp_path / "notes.txt").write_text("not audio")
    out = model.predict(tmp_path)
    assert [p.source for p in out] == [str(tmp_path / "b.wav"), str(tmp_path / "sub" / "a.flac")]
    single = [model.predict(tmp_path / "b.wav"), model.predict(tmp_path / "sub" / "a.flac")]
    for a, b in zip(out, single):  # batched together vs one by one: the same answer to float rounding
        assert a.label == b.label and np.allclose(list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-6)
    mixed = model.predict([str(tmp_path / "sub"), _tone(16000, 1.0)], sample_rate=16000)  # a folder inside a list
    assert [p.source for p in mixed] == [str(tmp_path / "sub" / "a.flac"), "<array 1>"]
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        model.predict(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no audio files"):
        model.predict(tmp_path / "empty")


def test_hugging_face_pipeline_shape(model, tmp_path):
    x = _tone(16000, 1.3)
    sf.write(tmp_path / "clip.wav", x, 16000)
    p = model.predict(tmp_path / "clip.wav")
    ranked = sorted(p.probabilities.items(), key=lambda kv: -kv[1])
    top = model(str(tmp_path / "clip.wav"))  # Hugging Face's default top_k=5
    assert [d["label"] for d in top] == [c for c, _ in ranked[:5]] and set(top[0]) == {"label", "score"}
    assert [d["score"] for d in top] == pytest.approx([v for _, v in ranked[:5]])
    assert model(x, top_k=None, sampling_rate=16000) == model({"array": x, "sampling_rate": 16000}, top_k=None)
    assert len(model({"raw": x, "sampling_rate": 16000}, top_k=None)) == len(model.labels)
    assert [d["label"] for d in model(x, top_k=2, sampling_rate=16000)] == [c for c, _ in ranked[:2]]
    assert p.top(1) == [{"label": p.label, "score": pytest.approx(p.confidence)}]
    many = model([str(tmp_path / "clip.wav"), {"array": x, "sampling_rate": 16000}], top_k=3)
    assert len(many) == 2 and all(len(r) == 3 for r in many) and many[0][0]["label"] == p.label
    assert model(str(tmp_path), top_k=1) == [[{"label": p.label, "score": pytest.approx(p.confidence)}]]  # a folder
    silent = ser.load_model(model._model.source, vad=True)({"array": np.zeros(16000, np.float32) + 1e-4 *
                                                           np.random.default_rng(0).standard_normal(16000).astype(np.float32),
                                                           "sampling_rate": 16000})
    assert silent == []  # no speech: nothing to rank
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="top_k"):
            model(x, top_k=bad, sampling_rate=16000)
    (tmp_path / "t.wav").write_text("text")
    with pytest.raises(ValueError, match=r"t\.wav: cannot decode audio \(a text file"):
        model([str(tmp_path / "clip.wav"), str(tmp_path / "t.wav")])


def test_predict_table_at_80_columns_and_vad_heading(trained_members, bad_files, tmp_path):
    from rich.console import Console

    from ser_lightning.cli.predict import print_table

    sf.write(bad_files["text.wav"].parent / "good.wav", _tone(16000, 1.0), 16000)
    rec = {"file": "good.wav", "status": "ok", "label": "happy", "confidence": 0.9, "speech_fraction": 1.0,
           "n_windows": 2, "duration_s": 1.0, "error": ""}
    err = {**rec, "file": "some/long/folder/name/text.mp3", "status": "error", "label": None, "confidence": None,
           "speech_fraction": None, "n_windows": 0, "duration_s": None,
           "error": "cannot decode audio (a text file, not audio)"}
    for segment, heading in (("window", "windows"), ("vad", "segments")):
        console = Console(width=80, record=True, file=open(os.devnull, "w"))
        print_table([rec, err], console=console, segment=segment)
        text = console.export_text()
        assert heading in text and ("windows" not in text or segment == "window"), text
        lines = text.splitlines()
        assert f"error: {err['file']}: {err['error']}" in text  # whole, on one line
        table = [ln for ln in lines if not ln.startswith("error:")]
        assert all(len(ln) <= 80 for ln in table) and not any(w in ln for ln in table for w in ("(a", "audio)"))


def test_no_run_directory_left_behind(trained_members, tmp_path):
    clip = tmp_path / "clip.wav"
    sf.write(clip, _tone(16000, 1.0), 16000)
    cwd = tmp_path / "work"
    cwd.mkdir()
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(REPO)}

    def predict(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO / "predict.py"), f"ckpt_path={trained_members[0]}", *args],
                              cwd=cwd, env=env, capture_output=True, text=True, timeout=300)

    out = tmp_path / "elsewhere"
    r = predict(f"input={clip}", f"output={out}", "vad.enabled=false")
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["predictions.csv", "predictions.json", "windows.csv"]
    assert list(cwd.iterdir()) == []  # no outputs/predict/<timestamp>/
    r = predict(f"input={tmp_path / 'missing.wav'}")  # fails: one line, exit 1, nothing left
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [f"error: input={tmp_path / 'missing.wav'}: no such file or directory"]
    assert list(cwd.iterdir()) == []
    r = predict(f"input={tmp_path / 'missing.wav'}", f"output={tmp_path / 'new'}")
    assert r.returncode == 1 and not (tmp_path / "new").exists()
    r = predict(f"input={clip}", "vad.enabled=false")  # no output=: the run directory is the output
    (run_dir,) = (cwd / "outputs" / "predict").iterdir()
    assert r.returncode == 0 and sorted(p.name for p in run_dir.iterdir()) == ["predictions.csv", "predictions.json", "windows.csv"]


def test_in_process_runs_keep_their_hydra_run_dir(trained_members, tmp_path):
    """The tests' hydra.run.dir= override still decides where a run writes (run_script passes it)."""
    clip = tmp_path / "clip.wav"
    sf.write(clip, _tone(16000, 1.0), 16000)
    r = run_script("predict.py", f"ckpt_path={trained_members[0]}", f"input={clip}", "vad.enabled=false",
                   cwd=tmp_path / "run")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "run" / "predictions.json").is_file()
