"""Download and verify the RAVDESS speech corpus.

Source: RAVDESS, audio-only speech, 24 actors x 60 clips = 1440 WAV files, Zenodo record
1188976 (https://zenodo.org/records/1188976). Livingstone SR, Russo FA (2018) *The Ryerson
Audio-Visual Database of Emotional Speech and Song (RAVDESS)*, PLoS ONE 13(5): e0196391.
Licence: CC BY-NC-SA 4.0 (non-commercial use only).

Layout after a successful run::

    ROOT/
      downloads/Audio_Speech_Actors_01-24.zip
      ravdess/Actor_01/03-01-01-01-01-01-01.wav
      ...
      ravdess/Actor_24/03-01-08-02-02-02-24.wav

Command line (what ``make data`` runs)::

    python -m ser_lightning.data.download --root DIR [--url URL] [--force]
"""

from __future__ import annotations

import argparse
import http.client
import logging
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

log = logging.getLogger(__name__)

RAVDESS_URL = "https://zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip?download=1"
"""Zenodo record 1188976: RAVDESS audio-only speech, all 24 actors (about 200 MB)."""

RAVDESS_KNOWN_HASH = "md5:bc696df654c87fed845eb13823edef8a"
"""The archive's checksum as Zenodo publishes it for the file (MD5) in record 1188976: every download of
:data:`RAVDESS_URL` is checked against it by ``pooch`` before it is unpacked."""

ZIP_NAME = "Audio_Speech_Actors_01-24.zip"
EXPECTED_CLIPS = 1440
EXPECTED_ACTORS = 24
_SPEECH_PATTERNS = ("Actor_*/03-01-*.wav", "Actor_*/03-01-*.flac")
_CHUNK = 1 << 20
_TIMEOUT_S = 60


def verify_ravdess(
    dir: str | Path,
    expected_clips: int = EXPECTED_CLIPS,
    expected_actors: int = EXPECTED_ACTORS,
) -> tuple[int, int]:
    """Count RAVDESS speech clips and actors in a directory and check them.

    A speech clip is a file matching ``Actor_*/03-01-*.wav`` (or ``.flac``): modality 03
    (audio-only), vocal channel 01 (speech).

    Args:
        dir: The corpus directory holding the ``Actor_XX`` folders (``ROOT/ravdess``).
        expected_clips: Number of speech clips a complete corpus has (1440).
        expected_actors: Number of distinct actors a complete corpus has (24).

    Returns:
        ``(clips, actors)``: the counts found (equal to the expected ones).

    Raises:
        RuntimeError: One-line message naming the directory, the counts found and expected,
            and suggesting ``--force`` to re-download, when either count differs.

    Source:
        RAVDESS speech, Zenodo record 1188976 (Livingstone & Russo 2018, CC BY-NC-SA 4.0).
    """
    clips, actors = _count(Path(dir))
    if clips != expected_clips or actors != expected_actors:
        raise RuntimeError(
            f"RAVDESS at {Path(dir)} is incomplete: found {clips} speech clips from {actors} actors, "
            f"expected {expected_clips} from {expected_actors}; re-download with "
            f"`python -m ser_lightning.data.download --root {Path(dir).parent} --force`"
        )
    return clips, actors


_DEFAULT = "default"


def download_ravdess(
    root: str | Path,
    url: str = RAVDESS_URL,
    expected_clips: int = EXPECTED_CLIPS,
    expected_actors: int = EXPECTED_ACTORS,
    force: bool = False,
    known_hash: str | None = _DEFAULT,
) -> Path:
    """Download, unpack and verify RAVDESS speech into ``root/ravdess``.

    Steps, each skipped when its result is already there (unless ``force``):

    1. ``root/ravdess`` already verifies → return it, nothing is downloaded.
    2. Download ``url`` to ``root/downloads/Audio_Speech_Actors_01-24.zip`` with ``pooch``
       (:func:`pooch.retrieve`: into a temporary file renamed atomically once complete and checked against
       ``known_hash``, so an interrupted or altered download never looks complete); a zip already there is
       reused when it matches ``known_hash`` (or, without one, when it is a valid zip).
    3. Unpack into a temporary folder next to the target (rejecting members with absolute
       paths or ``..``), then move the ``Actor_XX`` folders into ``root/ravdess``. The
       archive may hold ``Actor_XX/`` at its top level or nested under one folder.
    4. Verify the clip and actor counts.

    Args:
        root: Data root (``$SER_DATA_DIR``); the corpus lands in ``root/ravdess``.
        url: Archive URL; anything ``urllib`` opens (``https://``, ``file://``).
        expected_clips: Speech clips a complete corpus has (1440).
        expected_actors: Actors a complete corpus has (24).
        force: Delete any existing zip and ``root/ravdess`` and download again.
        known_hash: The archive's checksum as ``pooch`` takes it (``"md5:..."``, ``"sha256:..."``; ``None``:
            not checked); default: :data:`RAVDESS_KNOWN_HASH` for :data:`RAVDESS_URL`, ``None`` for another URL
            (a mirror or a copy of your own: pass its checksum).

    Returns:
        The corpus directory ``root/ravdess``.

    Raises:
        RuntimeError: The download failed (names the URL and where to place a zip downloaded
            by hand), its checksum differs from ``known_hash``, the archive is not a valid zip, a member would escape the target
            folder, or the unpacked corpus has the wrong counts.

    Source:
        RAVDESS speech, Zenodo record 1188976 (Livingstone & Russo 2018, CC BY-NC-SA 4.0).
    """
    root = Path(root).expanduser().resolve()
    target = root / "ravdess"
    zip_path = root / "downloads" / ZIP_NAME

    if force:
        for p in (zip_path, zip_path.with_name(zip_path.name + ".part")):
            p.unlink(missing_ok=True)
        if target.exists():
            log.info("--force: removing %s", target)
            shutil.rmtree(target)
    elif target.is_dir():
        try:
            clips, actors = verify_ravdess(target, expected_clips, expected_actors)
        except RuntimeError:
            pass
        else:
            log.info("RAVDESS already present at %s (%d clips, %d actors)", target, clips, actors)
            return target

    if known_hash == _DEFAULT:
        known_hash = RAVDESS_KNOWN_HASH if url == RAVDESS_URL else None
    if zip_path.exists() and not zipfile.is_zipfile(zip_path):
        log.warning("Removing invalid archive %s", zip_path)
        zip_path.unlink()
    _retrieve(url, zip_path, known_hash)

    _extract(zip_path, target)
    verify_ravdess(target, expected_clips, expected_actors)
    return target


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: ``python -m ser_lightning.data.download``.

    Args:
        argv: Arguments (``--root``, ``--url``, ``--force``); ``None`` reads ``sys.argv``.

    Returns:
        Exit code: 0 on success, 1 on failure (a one-line error on stderr, no traceback).

    Source:
        RAVDESS speech, Zenodo record 1188976 (Livingstone & Russo 2018, CC BY-NC-SA 4.0).
    """
    parser = argparse.ArgumentParser(
        prog="python -m ser_lightning.data.download",
        description="Download RAVDESS speech (Zenodo record 1188976, CC BY-NC-SA 4.0) into ROOT/ravdess.",
    )
    parser.add_argument(
        "--root",
        default=os.environ.get("SER_DATA_DIR") or "./data",
        help="data root (default: $SER_DATA_DIR, else ./data)",
    )
    parser.add_argument("--url", default=RAVDESS_URL, help="archive URL (default: Zenodo)")
    parser.add_argument("--force", action="store_true", help="delete and download again")
    args = parser.parse_args(argv)

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    root = Path(args.root).expanduser().resolve()
    try:
        target = download_ravdess(root, url=args.url, force=args.force)
        clips, actors = _count(target)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"RAVDESS speech: {clips} clips from {actors} actors in {target}")
    print(f"Point the project at it with:  export SER_DATA_DIR={root}")
    return 0


# --------------------------------------------------------------------------- helpers


def _count(directory: Path) -> tuple[int, int]:
    """Speech clips and distinct actor folders holding at least one clip."""
    if not directory.is_dir():
        return 0, 0
    files = {p for pattern in _SPEECH_PATTERNS for p in directory.glob(pattern) if p.is_file()}
    return len(files), len({p.parent.name for p in files})


def _manual_hint(url: str, zip_path: Path) -> str:
    return (
        f"could not download RAVDESS from {url}: download it by hand and place it at {zip_path}, "
        f"then rerun `python -m ser_lightning.data.download --root {zip_path.parent.parent}`"
    )


def _retrieve(url: str, zip_path: Path, known_hash: str | None) -> None:
    """``zip_path`` from ``url`` through :func:`pooch.retrieve` (reused when present and matching ``known_hash``),
    downloaded by :func:`_stream` (``urllib``: ``https://`` and ``file://``, a rich progress bar).

    Raises:
        RuntimeError: one line: the download failed, the checksum differs, or the file is not a zip.
    """
    import pooch

    zip_path.parent.mkdir(parents=True, exist_ok=True)
    if zip_path.is_file() and known_hash is None:
        log.info("Reusing downloaded archive %s", zip_path)
        return
    pooch.get_logger().setLevel(logging.WARNING)  # its own "Downloading ..." line: ours says it
    try:
        pooch.retrieve(url, known_hash, fname=zip_path.name, path=zip_path.parent, progressbar=False,
                       downloader=lambda u, output_file, _pooch: _stream(u, output_file, zip_path))
    except ValueError as exc:  # pooch: the checksum of the download differs from known_hash
        if "hash" not in str(exc).lower():
            raise RuntimeError(f"{_manual_hint(url, zip_path)} ({exc})") from None
        raise RuntimeError(f"{url}: the downloaded archive does not match its known checksum {known_hash} "
                           f"({' '.join(str(exc).split())[:300]}); not unpacked, nothing kept") from None
    if not zipfile.is_zipfile(zip_path):
        zip_path.unlink(missing_ok=True)
        raise RuntimeError(f"{_manual_hint(url, zip_path)} (the server did not return a zip file)")


def _stream(url: str, output_file: str, zip_path: Path) -> None:
    """Download ``url`` into ``output_file`` with a progress bar (``pooch``'s downloader: it gives a temporary
    file and moves it to ``zip_path`` once the checksum matches).

    Raises:
        RuntimeError: the download failed or was cut short (names the URL and where to place a zip downloaded
            by hand).
    """
    log.info("Downloading %s -> %s", url, zip_path)
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "ser_lightning"})
        with urllib.request.urlopen(req, timeout=_TIMEOUT_S) as resp, open(output_file, "wb") as fh:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            with Progress(
                TextColumn("[bold]RAVDESS"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                transient=True,
            ) as progress:
                task = progress.add_task("download", total=total)
                while chunk := resp.read(_CHUNK):
                    fh.write(chunk)
                    done += len(chunk)
                    progress.update(task, advance=len(chunk))
        if total is not None and done != total:
            raise OSError(f"incomplete download ({done} of {total} bytes)")
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        Path(output_file).unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise RuntimeError(f"{_manual_hint(url, zip_path)} ({reason})") from None


def _check_member(name: str) -> None:
    """Reject archive members that would land outside the extraction folder."""
    norm = name.replace("\\", "/")
    parts = PurePosixPath(norm).parts
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":") or ".." in parts:
        raise RuntimeError(f"refusing to unpack unsafe archive member {name!r} (absolute path or '..')")


def _find_actor_dirs(base: Path) -> list[Path]:
    """``Actor_XX`` folders at ``base`` or one level below a single wrapping folder."""
    actors = sorted(p for p in base.glob("Actor_*") if p.is_dir())
    if actors:
        return actors
    subdirs = [p for p in base.iterdir() if p.is_dir() and p.name != "__MACOSX"]
    if len(subdirs) == 1:
        return sorted(p for p in subdirs[0].glob("Actor_*") if p.is_dir())
    return []


def _extract(zip_path: Path, target: Path) -> None:
    """Unpack ``zip_path`` safely and move its ``Actor_XX`` folders into ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("Unpacking %s -> %s", zip_path, target)
    tmp = Path(tempfile.mkdtemp(prefix=".ravdess-unpack-", dir=target.parent))
    try:
        try:
            with zipfile.ZipFile(zip_path) as zf:
                for name in zf.namelist():
                    _check_member(name)
                zf.extractall(tmp)
        except zipfile.BadZipFile as exc:
            raise RuntimeError(
                f"{zip_path} is not a valid zip ({exc}); delete it or rerun with --force"
            ) from None
        actors = _find_actor_dirs(tmp)
        if not actors:
            raise RuntimeError(f"{zip_path} holds no Actor_XX folders; is it the RAVDESS speech archive?")
        target.mkdir(parents=True, exist_ok=True)
        for src in actors:
            dest = target / src.name
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(src, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
