"""Is the store whole, and is it still all the history there was? Checked before the daemon writes.

A scribbled page, a file truncated to nothing or a store swapped for an older one are refused with
one line, never written into and never silently re-created: a new empty store would start history
again from generation 0 while the adapters and backups of the old one sit beside it. The floor is
the latest backup (rows are only ever appended, so no table may hold fewer rows than it did) and,
for an empty store, any trace of past generations in the state folder. Restoring is copying a
backup over the store (README, "Restoring the store").
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from evolver.store.connection import connect
from evolver.store.errors import StoreError

BACKUPS = "backups"
COUNTED = ("generations", "questions", "attempts", "reflections", "datasets", "eval_results", "events")
RESTORE = "see README 'Restoring the store'"


class StoreDamaged(StoreError):
    """The store is malformed, emptied or smaller than its history; evolver will not write into it."""


def backups(state_dir: Path) -> list[Path]:
    """The store's backups, oldest first (their names carry the time they were taken)."""
    return sorted((Path(state_dir) / BACKUPS).glob("evolver-*.db"))


def problems(db: Path, full: bool = False, limit: int = 3) -> list[str]:
    """What `PRAGMA quick_check` (or `integrity_check` when `full`) finds wrong; [] when the file is whole.

    Runs on its own connection and only reads, so it is safe on a store nobody should write into.
    """
    pragma = "integrity_check" if full else "quick_check"
    try:
        conn = connect(db)
    except sqlite3.Error as err:
        return [str(err)]
    try:
        rows = [str(r[0]) for r in conn.execute(f"PRAGMA {pragma}({limit})").fetchall()]
    except sqlite3.Error as err:  # "file is not a database", "database disk image is malformed"
        return [str(err)]
    finally:
        conn.close()
    return [] if rows == ["ok"] else rows


def row_counts(db: Path) -> dict[str, int]:
    """Rows per history table ({} when the file holds no evolver tables)."""
    conn = connect(db)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return {t: int(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in COUNTED if t in tables}
    finally:
        conn.close()


def traces(state_dir: Path) -> list[str]:
    """Signs in the state folder that generations were made: backups, adapter and training folders."""
    root = Path(state_dir)
    found = [str(p.relative_to(root)) for p in backups(root)[-1:]]
    for sub in ("adapters", "train"):
        found += [str(p.relative_to(root)) for p in sorted((root / sub).glob("gen-*"))[-1:]]
    return found


def check_store(db: Path, state_dir: Path) -> None:
    """Raise StoreDamaged (one line) unless the store is whole and holds at least its known history.

    A missing or empty store is fine in a fresh state folder (it is created), and refused when the
    folder shows there were generations.
    """
    db = Path(db)
    empty = not db.exists() or db.stat().st_size == 0
    seen = traces(state_dir)
    if empty:
        if seen:
            what = "missing" if not db.exists() else "empty (0 bytes)"
            raise StoreDamaged(f"{db}: the store is {what} but the state folder holds history ({', '.join(seen)});"
                               f" refusing to start afresh: restore a backup ({RESTORE}) or move the folder aside")
        return
    check_pages(db)
    check_floor(db, state_dir)


def check_pages(db: Path, full: bool = False) -> None:
    """Raise StoreDamaged naming the first problem `quick_check` (or `integrity_check`) finds."""
    found = problems(db, full)
    if found:
        raise StoreDamaged(f"{db}: the store is damaged ({found[0]}); refusing to write into it:"
                           f" restore a backup ({RESTORE})")


def check_floor(db: Path, state_dir: Path) -> None:
    """The latest readable backup's row counts are a floor: rows are appended, never deleted."""
    now = row_counts(db)
    if not now.get("generations") and [t for t in traces(state_dir) if not t.startswith(BACKUPS)]:
        raise StoreDamaged(f"{db}: the store holds no generation but the state folder holds history"
                           f" ({', '.join(traces(state_dir))}); refusing to start afresh: restore a backup ({RESTORE})")
    for backup in reversed(backups(state_dir)):
        try:
            then = row_counts(backup)
        except sqlite3.Error:
            continue  # an unreadable backup floors nothing; an older one may
        short = [f"{t} {now.get(t, 0)} < {n}" for t, n in then.items() if now.get(t, 0) < n]
        if short:
            raise StoreDamaged(f"{db}: the store holds fewer rows than its backup {backup.name} ({', '.join(short)});"
                               f" refusing to write into it: restore a backup ({RESTORE})")
        return
