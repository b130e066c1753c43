"""A read-only handle on the store over `sqlite3` alone, for the commands a person runs while the
daemon works (`status`, `lineage`, `show`, `events`, `watch`).

Why not `Store`: importing sqlmodel and sqlalchemy costs about half a second of every process on a
small machine, more than the whole query. The read side (lineage.py, watch.py, detail.py) runs
plain SQL through `rows()`, which both this class and `Store` offer, so the TUI and the daemon keep
their `Store` and a one-shot command opens this instead. It never writes: a database whose schema
is behind this evolver's is migrated once by `Store.open` first; one from a newer evolver is refused.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from evolver.store.connection import connect
from evolver.store.errors import StoreError, unusable
from evolver.store.migrations import MIGRATIONS, SchemaTooNewError, applied, refuse_newer


class Rows(Protocol):
    """What the read side needs of a store: plain SQL in, tuples out."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]: ...


class ReadStore:
    """One sqlite3 connection in query-only mode; with WAL it never waits for the daemon's writes."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    @classmethod
    def open(cls, path: str | Path) -> ReadStore:
        p = Path(path)
        try:
            conn = _connect(p)
            done = applied(conn)
        except sqlite3.DatabaseError as err:
            raise StoreError(unusable(p, err)) from None
        try:
            refuse_newer(done, p)
        except SchemaTooNewError:
            conn.close()
            raise
        # an older schema (or a blank file): migrate once, as any other command would
        if done != [name for name, _ in MIGRATIONS]:
            conn.close()
            from evolver.store.repo import Store

            Store.open(p).close()
            conn = _connect(p)
        conn.execute("PRAGMA query_only=ON")
        return cls(p, conn)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return [tuple(r) for r in self._conn.execute(sql, tuple(params)).fetchall()]

    def schema_version(self) -> list[str]:
        return [r[0] for r in self.rows("SELECT name FROM schema_migrations ORDER BY name")]

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ReadStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _connect(p: Path) -> sqlite3.Connection:
    return connect(p, check_same_thread=False)


def in_list(ids: Sequence[int]) -> str:
    """`(?,?,?)` for an IN clause of len(ids) parameters."""
    return "(" + ",".join("?" * len(ids)) + ")"
