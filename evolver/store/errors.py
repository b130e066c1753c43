"""Errors opening or using the store, shared by the writer (repo.py) and the sqlite3-only reader (reader.py)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from evolver.errors import EvolverError


class StoreError(EvolverError):
    """A store operation that cannot proceed; the message names the row or file."""


def unusable(p: Path, err: sqlite3.DatabaseError) -> str:
    """Why the file cannot be opened, truthfully: SQLite says "unable to open database file" when the
    folder is read-only, because WAL writes its index beside the store even to read it."""
    folder = p.parent
    if os.statvfs(folder).f_flag & os.ST_RDONLY:
        return f"{p}: cannot open the store: {folder} is on a read-only file system (SQLite's WAL writes beside it)"
    if not os.access(folder, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        return f"{p}: cannot open the store: {folder} or the store is not writable by this user"
    return f"{p}: not a usable evolver database ({err})"
