"""RAVDESS download/unpack/verify against a local fake archive served via ``file://``."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_lightning.data import download as dl


def _wav_bytes() -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(10, dtype=np.float32), 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _stems(actor: int) -> list[str]:
    """The 60 RAVDESS speech stems of one actor: 03-01-EE-II-SS-RR-AA."""
    stems = []
    for emotion in range(1, 9):
        for intensity in (1,) if emotion == 1 else (1, 2):
            for statement in (1, 2):
                for rep in (1, 2):
                    stems.append(f"03-01-{emotion:02d}-{intensity:02d}-{statement:02d}-{rep:02d}-{actor:02d}")
    return stems


def _make_zip(path: Path, actors: int = 24, drop: int = 0, prefix: str = "", extra: dict | None = None) -> Path:
    wav = _wav_bytes()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for a in range(1, actors + 1):
            stems = _stems(a)
            if a == 1 and drop:
                stems = stems[drop:]
            for stem in stems:
                zf.writestr(f"{prefix}Actor_{a:02d}/{stem}.wav", wav)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


@pytest.fixture(scope="module")
def full_zip(tmp_path_factory) -> Path:
    return _make_zip(tmp_path_factory.mktemp("src") / "ravdess.zip")


def test_stems_match_ravdess_layout():
    stems = _stems(7)
    assert len(stems) == len(set(stems)) == 60
    assert sum(s.startswith("03-01-01-") for s in stems) == 4
    assert all(s.endswith("-07") for s in stems)


def test_download_unpacks_and_verifies(tmp_path, full_zip):
    root = tmp_path / "data"
    out = dl.download_ravdess(root, url=full_zip.as_uri())
    assert out == (root / "ravdess").resolve()
    assert dl.verify_ravdess(out) == (1440, 24)
    assert (root / "downloads" / dl.ZIP_NAME).is_file()
    assert not (root / "downloads" / (dl.ZIP_NAME + ".part")).exists()
    assert not list(root.glob(".ravdess-unpack-*"))  # temporary folder cleaned up


def test_second_call_does_not_redownload(tmp_path):
    src = _make_zip(tmp_path / "src.zip")
    root = tmp_path / "data"
    dl.download_ravdess(root, url=src.as_uri())
    src.unlink()
    (root / "downloads" / dl.ZIP_NAME).unlink()
    out = dl.download_ravdess(root, url=src.as_uri())  # would fail if it tried to fetch
    assert dl.verify_ravdess(out) == (1440, 24)


def test_reuses_complete_zip_in_downloads(tmp_path, full_zip):
    root = tmp_path / "data"
    (root / "downloads").mkdir(parents=True)
    (root / "downloads" / dl.ZIP_NAME).write_bytes(full_zip.read_bytes())
    out = dl.download_ravdess(root, url=(tmp_path / "missing.zip").as_uri())
    assert dl.verify_ravdess(out) == (1440, 24)


def test_nested_archive_accepted(tmp_path):
    src = _make_zip(tmp_path / "nested.zip", prefix="Audio_Speech_Actors_01-24/")
    out = dl.download_ravdess(tmp_path / "data", url=src.as_uri())
    assert dl.verify_ravdess(out) == (1440, 24)
    assert (out / "Actor_01").is_dir()


def test_missing_clips_raises_with_counts(tmp_path):
    src = _make_zip(tmp_path / "short.zip", drop=5)
    with pytest.raises(RuntimeError) as info:
        dl.download_ravdess(tmp_path / "data", url=src.as_uri())
    msg = str(info.value)
    assert "1435" in msg and "1440" in msg and "24" in msg and "--force" in msg
    assert str((tmp_path / "data" / "ravdess").resolve()) in msg
    assert "\n" not in msg


def test_force_redownloads(tmp_path, full_zip):
    root = tmp_path / "data"
    short = _make_zip(tmp_path / "short.zip", drop=5)
    with pytest.raises(RuntimeError):
        dl.download_ravdess(root, url=short.as_uri())
    out = dl.download_ravdess(root, url=full_zip.as_uri(), force=True)
    assert dl.verify_ravdess(out) == (1440, 24)


def test_path_traversal_rejected(tmp_path):
    src = _make_zip(tmp_path / "evil.zip", actors=1, extra={"../evil": b"x"})
    root = tmp_path / "data"
    with pytest.raises(RuntimeError, match="unsafe"):
        dl.download_ravdess(root, url=src.as_uri())
    assert not (tmp_path / "evil").exists()
    assert not list(root.glob(".ravdess-unpack-*"))


def test_absolute_member_rejected(tmp_path):
    src = _make_zip(tmp_path / "abs.zip", actors=1, extra={"/etc/evil": b"x"})
    with pytest.raises(RuntimeError, match="unsafe"):
        dl.download_ravdess(tmp_path / "data", url=src.as_uri())


def test_network_error_names_url_and_manual_path(tmp_path):
    url = (tmp_path / "nope.zip").as_uri()
    root = tmp_path / "data"
    with pytest.raises(RuntimeError) as info:
        dl.download_ravdess(root, url=url)
    msg = str(info.value)
    assert url in msg
    assert str((root / "downloads" / dl.ZIP_NAME).resolve()) in msg
    assert not (root / "downloads" / (dl.ZIP_NAME + ".part")).exists()


def test_main_success(tmp_path, full_zip, capsys):
    root = tmp_path / "data"
    assert dl.main(["--root", str(root), "--url", full_zip.as_uri()]) == 0
    out = capsys.readouterr().out
    assert "1440" in out and f"export SER_DATA_DIR={root.resolve()}" in out


def test_main_bad_url_one_line_error(tmp_path, capsys):
    code = dl.main(["--root", str(tmp_path / "data"), "--url", (tmp_path / "nope.zip").as_uri()])
    assert code != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    assert "Traceback" not in err


# ----------------------------------------------------------------------------- pooch and the known checksum
def test_known_hash_is_checked_before_unpacking(tmp_path, full_zip):
    from ser_lightning.files import sha256_file

    good = f"sha256:{sha256_file(full_zip)}"
    out = dl.download_ravdess(tmp_path / "ok", url=full_zip.as_uri(), known_hash=good)
    assert dl.verify_ravdess(out) == (1440, 24)
    root = tmp_path / "bad"
    with pytest.raises(RuntimeError) as info:
        dl.download_ravdess(root, url=full_zip.as_uri(), known_hash="sha256:" + "0" * 64)
    msg = str(info.value)
    assert "does not match its known checksum" in msg and "\n" not in msg and full_zip.as_uri() in msg
    assert not (root / "ravdess").exists() and list((root / "downloads").iterdir()) == []  # nothing unpacked or kept
    # a zip already in downloads/ with another checksum is downloaded again, then checked
    (root / "downloads" / dl.ZIP_NAME).write_bytes(_make_zip(tmp_path / "short.zip", actors=2).read_bytes())
    out = dl.download_ravdess(root, url=full_zip.as_uri(), known_hash=good)
    assert dl.verify_ravdess(out) == (1440, 24)


def test_the_zenodo_url_gets_its_published_checksum(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(dl, "_retrieve", lambda url, path, known_hash: seen.update(url=url, known_hash=known_hash))
    monkeypatch.setattr(dl, "_extract", lambda *a: None)
    monkeypatch.setattr(dl, "verify_ravdess", lambda *a: (1440, 24))
    dl.download_ravdess(tmp_path, force=True)
    assert seen == {"url": dl.RAVDESS_URL, "known_hash": dl.RAVDESS_KNOWN_HASH}
    dl.download_ravdess(tmp_path, url="https://mirror.example/ravdess.zip", force=True)
    assert seen["known_hash"] is None  # another URL: the caller's checksum (none given)
