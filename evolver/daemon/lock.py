"""The single-writer lock on a state dir: a pid file taken with O_EXCL, stale ones recovered."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

LOCK_NAME = "daemon.lock"


class AlreadyRunning(Exception):
    def __init__(self, pid: int) -> None:
        super().__init__(f"already running (pid {pid})")
        self.pid = pid


def _alive(pid: int) -> bool:
    try:
        p = psutil.Process(pid)
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def holder(state_dir: Path) -> int | None:
    """The pid holding the lock if that process is alive, else None."""
    try:
        pid = int((state_dir / LOCK_NAME).read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid and _alive(pid) else None


def acquire(state_dir: Path) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / LOCK_NAME
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid = holder(state_dir)
            if pid is not None and pid != os.getpid():
                raise AlreadyRunning(pid) from None
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return path
    raise AlreadyRunning(holder(state_dir) or -1)


def release(state_dir: Path) -> None:
    path = state_dir / LOCK_NAME
    if holder(state_dir) == os.getpid():
        path.unlink(missing_ok=True)
