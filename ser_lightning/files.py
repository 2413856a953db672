"""File helpers every layer shares: the SHA-256 of a file and an inter-process lock.

Both are portable (Linux, macOS, Windows): the lock is :class:`filelock.FileLock` (``fcntl`` on POSIX,
``msvcrt`` on Windows, chosen by the library), so nothing POSIX-only is imported by the data caches or
the inference path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (``hashlib.file_digest``).

    Args:
        path: The file.

    Returns:
        64 hex digits.

    Raises:
        OSError: the file cannot be read (``FileNotFoundError`` when it does not exist).
    """
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@contextmanager
def file_lock(lock_path: str | Path, timeout_s: float = -1) -> Iterator[None]:
    """Hold an exclusive inter-process lock on ``lock_path`` (created, with its folder, if missing).

    Concurrent processes (DDP ranks, the jobs of a multirun) that lock the same path wait for each other;
    the lock is released when the block ends, and by the operating system when a process dies.

    Args:
        lock_path: The lock file (e.g. ``<cache key>.lock``).
        timeout_s: Seconds to wait; negative: wait forever.

    Raises:
        filelock.Timeout: not acquired within ``timeout_s``.
    """
    from filelock import FileLock

    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_path), timeout=timeout_s):
        yield
