"""Multi-process runs that end: a collective timeout for the process group and a SIGTERM watchdog.

A DDP run (``trainer=ddp``, ``trainer=ddp_sim``, ``torchrun``, SLURM) is several processes that meet
in collective calls (gradient all-reduce, broadcasts, barriers). Two things keep such a run from
hanging for ever:

* **Collective timeout** (``trainer.collective_timeout_s``, :func:`set_collective_timeout`): the
  process group's timeout, instead of torch's 30-minute default. A process that waits longer than
  this in one collective (a peer that is stuck, or that took another path) raises an error instead
  of waiting on.
* **SIGTERM watchdog** (:func:`install_sigterm_watchdog`). Python runs a signal handler only when the
  main thread is back in the interpreter; a process blocked inside a collective (C++) never gets
  there, so neither Lightning's SIGTERM handling (``_SignalConnector``) nor Python's default
  ``KeyboardInterrupt`` can end it, and a process that is signalled alone (``kill <pid>`` of rank 0)
  leaves the others waiting. The watchdog is a thread woken through ``signal.set_wakeup_fd`` (the
  C-level part of Python's signal handling writes the signal number to a pipe even while the main
  thread is blocked). On SIGTERM or SIGINT it forwards the signal to this process's child processes
  (the other ranks that Lightning's launcher started, data-loader workers), lets the main thread end
  by itself for ``grace_s`` seconds (the Python handler raises ``SystemExit``, so ``finally`` blocks
  and Lightning's ``on_exception`` hooks run: an unfinished cache build releases its lock), and then
  ends the process with ``os._exit(128 + signal)``. A ``SIGALRM`` a few seconds later still ends the
  process should even that thread not get to run (a main thread blocked while the interpreter shuts down).

Installed by ``train.py`` in every process of a multi-process run (rank 0 and each re-launched rank).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: ``trainer.collective_timeout_s`` when the config gives none: long enough for a rank to start (imports,
#: model build) while the others wait, and for rank 0's own work between collectives (merging the
#: extraction's shards, saving a checkpoint); far shorter than torch's 30-minute default.
DEFAULT_COLLECTIVE_TIMEOUT_S = 300.0
#: Seconds a signalled process gets to end by itself before the watchdog ends it.
DEFAULT_GRACE_S = 3.0
#: The signals the watchdog acts on.
WATCHED_SIGNALS = (signal.SIGTERM, signal.SIGINT)

_watchdog: _Watchdog | None = None


def collective_timeout_setting(value: Any) -> float:
    """``trainer.collective_timeout_s`` as a number of seconds (``None``: :data:`DEFAULT_COLLECTIVE_TIMEOUT_S`).

    Raises:
        ValueError: not a positive finite number.
    """
    if value is None:
        return DEFAULT_COLLECTIVE_TIMEOUT_S
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if isinstance(value, bool) or not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"trainer.collective_timeout_s={value!r} must be a positive number of seconds (the longest "
                         "a process of a multi-process run waits in one collective call before it fails)")
    return seconds


def set_collective_timeout(trainer, seconds: float) -> bool:
    """Give the process group that ``trainer``'s strategy will start a timeout of ``seconds``.

    Lightning's DDP strategies keep the timeout they pass to ``torch.distributed.init_process_group`` in
    ``_timeout`` (torch's 30-minute default unless given to the constructor); it is set here on the built
    strategy, whatever chose it (``ddp``, ``auto`` with several devices, ``ddp_spawn``, torchrun, SLURM).
    The distributed frozen-feature extraction builds its strategy with the same timeout
    (:mod:`ser_lightning.modules.frozen_features`).

    Args:
        trainer: A built ``lightning.pytorch.Trainer`` whose processes have not met yet.
        seconds: The timeout.

    Returns:
        Whether the strategy takes a timeout (``False`` on one device).
    """
    strategy = trainer.strategy
    if trainer.world_size <= 1 or not hasattr(strategy, "_timeout"):
        return False
    strategy._timeout = _dt.timedelta(seconds=float(seconds))
    return True


def child_pids(pid: int | None = None) -> list[int]:
    """The child processes of ``pid`` (default: this process), from ``/proc/<pid>/task/*/children``.

    Returns:
        Their process ids; empty where ``/proc`` does not list children (not Linux).
    """
    pid = os.getpid() if pid is None else pid
    out: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out += [int(p) for p in children.read_text().split()]
        except OSError:  # the thread ended meanwhile
            continue
    return sorted(set(out))


def _signal_children(signum: int) -> list[int]:
    """Send ``signum`` to every child process; returns their ids."""
    pids = child_pids()
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    return pids


class _Watchdog:
    """The thread behind :func:`install_sigterm_watchdog` (one per process)."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = float(grace_s)
        self.pid = os.getpid()
        self.received: int | None = None
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        previous = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        if previous != -1:  # someone else (an event loop) reads the wake-up fd: leave it to them
            signal.set_wakeup_fd(previous)
            os.close(self._read), os.close(self._write)
            raise RuntimeError("signal.set_wakeup_fd is already in use in this process")
        for signum in WATCHED_SIGNALS:
            if signal.getsignal(signum) in (signal.SIG_DFL, None):
                # The wake-up fd only hears signals with a Python handler; SIGINT has Python's own.
                signal.signal(signum, _exit_handler)
        os.register_at_fork(after_in_child=self._forget)
        threading.Thread(target=self._watch, name="ser-sigterm-watchdog", daemon=True).start()

    def _forget(self) -> None:
        """In a forked child (a data-loader worker): its signals are its own, not this watchdog's."""
        if os.getpid() != self.pid and threading.current_thread() is threading.main_thread():
            try:
                if signal.set_wakeup_fd(-1) != self._write:
                    signal.set_wakeup_fd(-1)
            except ValueError:
                pass

    def _watch(self) -> None:
        while True:
            try:
                data = os.read(self._read, 64)
            except InterruptedError:
                continue
            except OSError:
                return
            watched = [s for s in data if s in WATCHED_SIGNALS]
            if watched and os.getpid() == self.pid:
                self._terminate(watched[0])
                return

    def _terminate(self, signum: int) -> None:
        self.received = signum
        name = signal.Signals(signum).name
        pids = _signal_children(signum)
        log.warning("%s received by process %d: forwarded to %d child process(es); ending within %.0f s", name,
                    self.pid, len(pids), self.grace_s)
        if signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None):
            signal.alarm(int(self.grace_s) + 5)  # ends the process even if this thread cannot run again
        deadline = time.monotonic() + self.grace_s
        while time.monotonic() < deadline:
            time.sleep(0.1)
        _signal_children(signal.SIGKILL)
        log.error("process %d did not end within %.0f s of %s: exiting now", self.pid, self.grace_s, name)
        for handler in logging.getLogger().handlers:
            try:
                handler.flush()
            except Exception:  # noqa: BLE001 - exiting anyway
                pass
        os._exit(128 + signum)


def _exit_handler(signum: int, frame) -> None:
    """Python-level handler of a watched signal: end the main thread with ``SystemExit(128 + signal)``."""
    raise SystemExit(128 + signum)


def install_sigterm_watchdog(grace_s: float = DEFAULT_GRACE_S) -> bool:
    """Make this process end within about ``grace_s`` seconds of a SIGTERM or SIGINT, its children too.

    See the module docstring. Idempotent; must be called from the main thread.

    Args:
        grace_s: Seconds the process gets to end by itself before ``os._exit``.

    Returns:
        ``True`` when the watchdog runs (now or from an earlier call); ``False`` when it cannot be
        installed (not the main thread, or the wake-up fd is taken), which is logged.
    """
    global _watchdog
    if _watchdog is not None and _watchdog.pid == os.getpid():
        return True
    if threading.current_thread() is not threading.main_thread():
        log.warning("SIGTERM watchdog not installed: not on the main thread")
        return False
    try:
        _watchdog = _Watchdog(grace_s)
    except RuntimeError as err:
        log.warning("SIGTERM watchdog not installed: %s", err)
        return False
    return True
