"""Plain sqlite3 connections to the store: one busy timeout for every process and every side.

The writer (`repo.Store`), the read side (`reader.ReadStore`) and the health checks all open the
same file, sometimes at the same moment as a daemon that writes; each waits up to BUSY_TIMEOUT_MS
for a lock instead of failing with "database is locked".
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

BUSY_TIMEOUT_MS = 30_000


def connect(path: str | Path, check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection in autocommit mode (callers issue BEGIN themselves) that waits for locks."""
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=check_same_thread
    )
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn
