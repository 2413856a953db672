"""Hostile audio: a generated corpus of broken and unusual files, named by the RAVDESS
convention and mixed with the good tiny corpus, goes through the corpus loader + decode-once cache
(``SERDataModule``) and through ``predict.py``'s per-file prediction. Each file is either handled
(documented behaviour, checked against a clean twin) or rejected with a one-line message; the
good files come out exactly as from a clean corpus of only the good files; ``skipped.csv`` lists
every rejected file with its stage and reason.
"""

from __future__ import annotations

import csv
import io
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ser_lightning.data.audio import SILENCE_DBFS, AudioConfig, load_clip, normalize
from ser_lightning.data.datamodule import SERDataModule

DURATION_S = 1.0
SR = 16000
LONG_S = 600.0  # the 10-minute file (8 kHz mono int16: 9.6 MB)
# The data root itself has spaces and non-ASCII characters, so every path does.
ROOT_NAME = "hostile corpus – äöü 日本"


def _signal_at(t: np.ndarray) -> np.ndarray:
    """Two partials below 4 kHz (so 8 kHz keeps them), defined analytically: any rate gives the same sound."""
    return (0.5 * np.sin(2 * np.pi * 440 * t) + 0.25 * np.sin(2 * np.pi * 1230 * t)).astype(np.float32)


def _signal(sample_rate: int, seconds: float = DURATION_S) -> np.ndarray:
    return _signal_at(np.arange(int(round(sample_rate * seconds))) / sample_rate)


def _long_at(t: np.ndarray) -> np.ndarray:
    """The 10-minute signal: loudest in the middle (envelope 1.0), fading to 0.2 at both ends."""
    return _signal_at(t) * (1.0 - 0.8 * np.abs(t - LONG_S / 2) / (LONG_S / 2)).astype(np.float32)


def _wav_bytes(x: np.ndarray, sample_rate: int, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sample_rate, format=fmt, subtype=subtype)
    return buf.getvalue()


@dataclass
class Case:
    """One hostile file: where it is, and what must happen to it.

    ``twin``: a clean file (outside the corpus) whose decoded clip the kept file must match
    within ``atol``; ``stage``/``reason``: for rejected files, the skipped.csv stage and a
    phrase of the one-line reason.
    """

    name: str
    rel: str
    stage: str | None = None
    reason: str = ""
    twin: str | None = None
    atol: float = 0.0
    edge: int = 0  # samples left out at both ends of the twin comparison (resampling filter transients)

    @property
    def kept(self) -> bool:
        return self.stage is None


def _ravdess(actor: int, emotion: int, repetition: int, ext: str = "wav") -> str:
    # intensity 02: the tiny corpus uses 01, so no name collides with a good file
    return f"Actor_{actor:02d}/03-01-{emotion:02d}-02-01-{repetition:02d}-{actor:02d}.{ext}"


def write_hostile_files(root: Path, twins: Path) -> list[Case]:
    """Write the hostile files under ``root/ravdess`` (and clean twins under ``twins``).

    Returns:
        One :class:`Case` per file.
    """
    base = root / "ravdess"
    twins.mkdir(parents=True, exist_ok=True)
    clean = _signal(SR)
    sf.write(twins / "mono16k.wav", clean, SR)
    good_flac = _wav_bytes(_signal(22050), 22050, "FLAC")
    good_wav = _wav_bytes(_signal(22050), 22050, "WAV", "PCM_16")
    cases: list[tuple[Case, object]] = []

    def add(case: Case, content) -> None:
        cases.append((case, content))

    rep = iter(range(1, 100))
    r = lambda actor, emo, ext="wav": _ravdess(actor, emo, next(rep), ext)  # noqa: E731
    # -- rejected at decode
    add(Case("empty file", r(1, 1), "decode", "cannot decode audio"), b"")
    add(Case("truncated WAV header", r(1, 2), "decode", "cannot decode audio"), good_wav[:20])
    add(Case("truncated FLAC header", r(1, 3, "flac"), "decode", "cannot decode audio"), good_flac[:30])
    add(Case("FLAC cut mid-stream", r(2, 1, "flac"), "decode", "cannot decode audio"), good_flac[: len(good_flac) // 2])
    add(Case("text file named .wav", r(2, 2), "decode", "cannot decode audio"), b"this is a text file, not audio\n" * 4)
    add(Case("0 samples", r(2, 3), "decode", "empty audio (0 samples)"), (np.zeros((0, 1), np.float32), SR, "PCM_16"))
    add(Case("1 sample", r(3, 1), "decode", "too short (1 sample "), (np.full((1, 1), 0.5, np.float32), 22050, "PCM_16"))
    add(Case("all zeros", r(3, 2), "decode", "all-silent audio"), (np.zeros((SR, 1), np.float32), SR, "PCM_16"))
    nan, inf = clean.copy(), clean.copy()
    nan[100] = np.nan
    inf[200] = np.inf
    add(Case("NaN in a float WAV", r(3, 3), "decode", "NaN or infinite"), (nan, SR, "FLOAT"))
    add(Case("inf in a float WAV", r(4, 1), "decode", "NaN or infinite"), (inf, SR, "FLOAT"))
    # -- rejected at parse: the name does not follow the RAVDESS convention
    add(Case("name with spaces and non-ASCII", "Actor_04/03-01-03-01-01-01-04 (copie é).wav", "parse",
             "name does not match"), (clean, SR, "PCM_16"))
    # -- handled: decoded, compared with a clean 16 kHz mono twin
    add(Case("8-bit WAV", r(4, 2), twin="mono16k.wav", atol=0.03), (clean, SR, "PCM_U8"))
    add(Case("24-bit WAV", r(4, 3), twin="mono16k.wav", atol=2e-3), (clean, SR, "PCM_24"))
    add(Case("32-bit float WAV", r(5, 1), twin="mono16k.wav", atol=2e-3), (clean, SR, "FLOAT"))
    noise = 0.1 * np.random.default_rng(0).standard_normal((len(clean), 6)).astype(np.float32)
    noise -= noise.mean(axis=1, keepdims=True)  # channels differ, but their mean is the clean signal
    add(Case("6 channels", r(5, 2), twin="mono16k.wav", atol=2e-3), (clean[:, None] + noise, SR, "FLOAT"))
    add(Case("8 kHz", r(5, 3), twin="mono16k.wav", atol=0.03, edge=80), (_signal(8000), 8000, "PCM_16"))
    add(Case("96 kHz", r(6, 1), twin="mono16k.wav", atol=0.03, edge=80), (_signal(96000), 96000, "PCM_16"))
    add(Case("WAV cut in its data chunk", r(6, 2)), good_wav[: 44 + 2 * 11025])  # first 0.5 s kept
    add(Case("non-ASCII folder with spaces", "Actor_06/Aufnahme 2 – élan 日本/" + Path(r(6, 3)).name,
             twin="mono16k.wav", atol=2e-3), (clean, SR, "PCM_16"))
    # 10 minutes: cropped to the centre DURATION_S in the cache; the twin is that centre, at 16 kHz.
    add(Case("10-minute file", r(7, 1), twin="long_centre16k.wav", atol=0.03),
        (_long_at(np.arange(int(8000 * LONG_S)) / 8000), 8000, "PCM_16"))
    start = (int(SR * LONG_S) - int(SR * DURATION_S)) // 2  # fix_length's centre crop
    sf.write(twins / "long_centre16k.wav", _long_at((start + np.arange(int(SR * DURATION_S))) / SR), SR)
    out = []
    for case, content in cases:
        path = base / case.rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            x, sr, subtype = content
            sf.write(path, x, sr, subtype=subtype)
        out.append(case)
    return out


@pytest.fixture(scope="module")
def corpora(tiny_ravdess, tmp_path_factory):
    """``(clean root, hostile root, cases, twins dir)``: the hostile root is a copy of the tiny corpus plus the hostile files."""
    base = tmp_path_factory.mktemp("hostile")
    hostile = base / ROOT_NAME
    shutil.copytree(tiny_ravdess, hostile)
    cases = write_hostile_files(hostile, base / "twins")
    return tiny_ravdess, hostile, cases, base / "twins"


def _datamodule(root: Path, tmp: Path, name: str) -> SERDataModule:
    dm = SERDataModule(root=str(root), cache_dir=str(tmp / "cache"), val_speakers=2, test_speakers=2,
                       duration_s=DURATION_S, sample_rate=SR, run_dir=str(tmp / name), progress=False)
    dm.setup("fit")
    return dm


def _split_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "split.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _rows_by_path(dm: SERDataModule) -> dict[str, np.ndarray]:
    rows = np.flatnonzero(dm.cache.ok)
    return {u.path: dm.cache.waves[i] for u, i in zip(dm.utterances, rows)}


def test_hostile_corpus_through_loader_and_cache(corpora, tmp_path):
    clean_root, hostile_root, cases, twins = corpora
    t0 = time.perf_counter()
    dm = _datamodule(hostile_root, tmp_path, "run")
    build_s = time.perf_counter() - t0
    clean = _datamodule(clean_root, tmp_path, "clean_run")

    # skipped.csv lists exactly the rejected files, each once, with its stage and a one-line reason
    with open(tmp_path / "run" / "skipped.csv", newline="", encoding="utf-8") as fh:
        skipped = {r["path"]: r for r in csv.DictReader(fh)}
    base = hostile_root / "ravdess"
    rejected = {str(base / c.rel): c for c in cases if not c.kept}
    assert set(skipped) == set(rejected)
    for path, case in rejected.items():
        row = skipped[path]
        assert row["stage"] == case.stage, case.name
        assert case.reason in row["reason"] and "\n" not in row["reason"], (case.name, row["reason"])
        if case.stage == "decode":
            assert row["reason"].startswith(path), case.name  # the message names the file

    # every kept file is in the split and in the cache, finite and within [-1, 1]
    waves = _rows_by_path(dm)
    in_split = {r["path"] for r in _split_rows(tmp_path / "run")}
    for case in (c for c in cases if c.kept):
        path = str(base / case.rel)
        assert path in waves and path in in_split, case.name
        x = waves[path].astype(np.float32)
        assert x.shape == (int(SR * DURATION_S),) and np.isfinite(x).all() and np.abs(x).max() <= 1.0, case.name
        if case.twin:  # documented handling: same clip as the clean 16 kHz mono twin
            want = load_clip(twins / case.twin, AudioConfig(sample_rate=SR, duration_s=DURATION_S))
            err = np.abs(x - want)[case.edge : len(x) - case.edge]
            assert err.max() <= case.atol, (case.name, float(err.max()))
    cut = waves[str(base / next(c.rel for c in cases if c.name == "WAV cut in its data chunk"))].astype(np.float32)
    assert np.abs(cut[: SR // 2 - 50]).max() > 0.5 and not cut[SR // 2 + 50 :].any()  # 0.5 s kept, then zero padding

    # good files are unaffected: bit-identical to a clean corpus of only the good files
    clean_waves = _rows_by_path(clean)
    assert len(clean_waves) == 128
    for path, x in clean_waves.items():
        twin = str(hostile_root / Path(path).relative_to(clean_root))
        assert np.array_equal(waves[twin], x), twin
    # ... and split exactly as there (same speakers, same seed)
    split = {Path(r["path"]).relative_to(clean_root): r["split"] for r in _split_rows(tmp_path / "clean_run")}
    mixed = {Path(r["path"]).relative_to(hostile_root): r["split"] for r in _split_rows(tmp_path / "run")}
    assert all(mixed[rel] == s for rel, s in split.items())
    print(f"hostile corpus ({len(waves)} kept, {len(skipped)} skipped, one 10-minute file) decoded in {build_s:.2f} s")


def test_ten_minute_file_decodes_quickly(corpora):
    _, hostile_root, cases, _ = corpora
    path = hostile_root / "ravdess" / next(c.rel for c in cases if c.name == "10-minute file")
    t0 = time.perf_counter()
    x = load_clip(path, AudioConfig(sample_rate=SR, duration_s=3.0))
    elapsed = time.perf_counter() - t0
    assert x.shape == (3 * SR,)
    # 4.8 M samples read, resampled 8 -> 16 kHz, normalised, cropped: ~0.2-0.5 s on a busy 2-core CPU
    assert elapsed < 10.0, elapsed


def test_silent_clip_normalisation_gives_no_nan():
    for mode in ("peak", "rms", "none"):
        y = normalize(np.zeros(100, np.float32), mode)
        assert np.isfinite(y).all() and not y.any()
    assert SILENCE_DBFS == -60.0


# ------------------------------------------------------------------------------------ predict.py
@pytest.fixture(scope="module")
def tiny_model():
    """An untrained homebrew CNN on 1 s clips at 16 kHz, wrapped as predict.py wraps a checkpoint."""
    from ser_lightning.data.labels import get_label_set
    from ser_lightning.inference.checkpoint import ProbabilityModel
    from ser_lightning.inference.predictor import LoadedModel, _torch_runner
    from ser_lightning.modules.classifier import SERClassifier

    torch.manual_seed(0)
    labels = list(get_label_set("ravdess8").classes)
    clf = SERClassifier({"name": "homebrew_cnn"}, {"name": "logmel", "sample_rate": SR}, labels)
    module = ProbabilityModel.from_classifier(clf)
    cfg = AudioConfig(sample_rate=SR, duration_s=DURATION_S)
    return LoadedModel(_torch_runner(module, torch.device("cpu")), labels, cfg, "homebrew_cnn", "pytorch", "untrained")


def test_hostile_files_through_predict(corpora, tiny_model, tmp_path, one_thread):
    from ser_lightning.inference.predictor import (
        find_audio,
        predict_files,
        window_starts,
        write_outputs,
    )

    clean_root, hostile_root, cases, _ = corpora
    records = predict_files(find_audio(hostile_root), tiny_model, hop_s=DURATION_S, batch_size=64)
    by_path = {r["path"]: r for r in records}
    base = hostile_root / "ravdess"
    for case in cases:
        rec = by_path[str((base / case.rel).resolve())]
        if case.stage == "decode":
            assert rec["status"] == "error" and case.reason in rec["error"], (case.name, rec["error"])
            assert "\n" not in rec["error"] and rec["label"] is None
        else:  # predict.py classifies any readable file, whatever its name
            assert rec["status"] == "ok" and rec["label"] in tiny_model.labels, case.name
            assert np.isfinite(list(rec["probabilities"].values())).all(), case.name
    six = by_path[str((base / next(c.rel for c in cases if c.name == "6 channels")).resolve())]
    hi = by_path[str((base / next(c.rel for c in cases if c.name == "96 kHz")).resolve())]
    assert six["channels"] == 6 and hi["source_sample_rate"] == 96000
    long = by_path[str((base / next(c.rel for c in cases if c.name == "10-minute file")).resolve())]
    assert long["duration_s"] == pytest.approx(LONG_S)
    assert long["n_windows"] == len(window_starts(int(SR * LONG_S), SR, SR)) == LONG_S / DURATION_S  # back to back
    assert long["windows"][-1]["end_s"] == pytest.approx(LONG_S)

    # good files give the same probabilities as a run over the clean corpus alone
    clean = {Path(r["path"]).relative_to(clean_root.resolve()): r for r in predict_files(find_audio(clean_root), tiny_model, hop_s=DURATION_S, batch_size=64)}
    assert len(clean) == 128 and all(r["status"] == "ok" for r in clean.values())
    for rel, r in clean.items():
        mixed = by_path[str((hostile_root / rel).resolve())]
        assert mixed["label"] == r["label"]
        np.testing.assert_allclose(list(mixed["probabilities"].values()), list(r["probabilities"].values()), atol=1e-6)

    # the outputs name every file (spaces, non-ASCII) and the error of each failed one
    paths = write_outputs(records, tmp_path / "out", {"labels": tiny_model.labels})
    with open(paths["csv"], newline="", encoding="utf-8") as fh:
        rows = {r["path"]: r for r in csv.DictReader(fh)}
    assert len(rows) == len(records)
    assert sum(r["status"] == "error" for r in rows.values()) == sum(c.stage == "decode" for c in cases)
    assert any("日本" in p for p in rows)
