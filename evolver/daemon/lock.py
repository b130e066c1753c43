"""The single-writer lock on a state dir: `fcntl.flock` on an open descriptor, held for the daemon's life.

One holder by construction: the kernel grants an exclusive flock to one open file at a time and
drops it when the holder's process ends, however it ends (kill -9 included), so there is no
stale lock to recover and no race between creating the file and writing the pid. The pid is
written into the file only to tell people who holds it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from evolver.errors import EvolverError

LOCK_NAME = "daemon.lock"


class AlreadyRunning(EvolverError):
    def __init__(self, pid: int | None, state_dir: Path) -> None:
        who = f"pid {pid}" if pid else "another process"
        super().__init__(f"{state_dir}: a daemon is already running ({who}); one daemon per state folder")
        self.pid = pid


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def holder(state_dir: Path) -> int | None:
    """The pid holding the lock, or None when nobody holds it (whatever the file says)."""
    path = state_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class StateLock:
    """Acquire once, release once; `with StateLock(dir):` holds it for the block."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._fd: int | None = None

    def acquire(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise AlreadyRunning(pid, self.state_dir) from None
        self._fd = fd
        try:  # who holds it, for people (a full disk may refuse even these bytes: then nothing is held)
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError:
            self.release()
            raise

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass  # a read-only or full disk keeps the pid text; nobody holds the lock all the same
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
