"""Named, forward-only migrations. Never edit one that has shipped: add the next.

Each migration and the record of it run in one transaction, so a crash leaves
the database either before or after it, never half-way.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from evolver.errors import EvolverError

Migration = Callable[[sqlite3.Connection], None]


def m001_initial(db: sqlite3.Connection) -> None:
    db.executescript(
        """
        CREATE TABLE generations (
            id INTEGER PRIMARY KEY,
            parent_id INTEGER REFERENCES generations(id),
            base_model TEXT NOT NULL,
            adapter_path TEXT,
            adapter_sha256 TEXT,
            status TEXT NOT NULL,
            config_hash TEXT NOT NULL,
            config_json TEXT NOT NULL,
            created_at REAL NOT NULL,
            finished_at REAL,
            note TEXT
        );
        CREATE TABLE phases (
            id INTEGER PRIMARY KEY,
            generation_id INTEGER NOT NULL REFERENCES generations(id),
            name TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            started_at REAL,
            finished_at REAL,
            error TEXT,
            detail TEXT,
            UNIQUE (generation_id, name)
        );
        CREATE TABLE questions (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL,
            external_id TEXT NOT NULL,
            split TEXT NOT NULL,
            text TEXT NOT NULL,
            gold TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            meta TEXT,
            UNIQUE (source, external_id)
        );
        CREATE INDEX ix_questions_hash ON questions (content_hash);
        CREATE TABLE attempts (
            id INTEGER PRIMARY KEY,
            generation_id INTEGER NOT NULL REFERENCES generations(id),
            purpose TEXT NOT NULL,
            question_id INTEGER NOT NULL REFERENCES questions(id),
            trial INTEGER NOT NULL,
            branch INTEGER NOT NULL,
            backend TEXT NOT NULL,
            model_ref TEXT NOT NULL,
            sampling TEXT NOT NULL,
            seed INTEGER NOT NULL,
            prompt TEXT NOT NULL,
            output TEXT NOT NULL,
            answer TEXT,
            correct BOOLEAN NOT NULL,
            reason TEXT NOT NULL,
            feedback TEXT,
            tokens_in INTEGER NOT NULL DEFAULT 0,
            tokens_out INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            UNIQUE (generation_id, purpose, question_id, trial, branch)
        );
        CREATE TABLE reflections (
            id INTEGER PRIMARY KEY,
            generation_id INTEGER NOT NULL REFERENCES generations(id),
            purpose TEXT NOT NULL,
            attempt_id INTEGER NOT NULL REFERENCES attempts(id),
            branch INTEGER NOT NULL,
            instruction_id TEXT NOT NULL,
            model_ref TEXT NOT NULL,
            sampling TEXT NOT NULL,
            seed INTEGER NOT NULL,
            prompt TEXT NOT NULL,
            text TEXT NOT NULL,
            tokens_out INTEGER NOT NULL DEFAULT 0,
            next_attempt_id INTEGER REFERENCES attempts(id),
            success BOOLEAN,
            created_at REAL NOT NULL,
            UNIQUE (generation_id, purpose, attempt_id, branch)
        );
        CREATE TABLE datasets (
            id INTEGER PRIMARY KEY,
            generation_id INTEGER REFERENCES generations(id),
            kind TEXT NOT NULL,
            source TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            n_rows INTEGER NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (generation_id, kind, source)
        );
        CREATE TABLE dataset_rows (
            dataset_id INTEGER NOT NULL REFERENCES datasets(id),
            idx INTEGER NOT NULL,
            payload TEXT NOT NULL,
            PRIMARY KEY (dataset_id, idx)
        );
        CREATE TABLE eval_results (
            id INTEGER PRIMARY KEY,
            generation_id INTEGER NOT NULL REFERENCES generations(id),
            benchmark TEXT NOT NULL,
            protocol TEXT NOT NULL,
            metric TEXT NOT NULL,
            value REAL NOT NULL,
            n INTEGER NOT NULL,
            config_hash TEXT NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (generation_id, benchmark, protocol, metric, config_hash)
        );
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            kind TEXT NOT NULL,
            generation_id INTEGER REFERENCES generations(id),
            actor TEXT NOT NULL,
            reason TEXT NOT NULL,
            metrics TEXT
        );
        CREATE TABLE pointers (
            name TEXT PRIMARY KEY,
            generation_id INTEGER REFERENCES generations(id),
            updated_at REAL NOT NULL
        );
        """
    )


def m002_train_logs(db: sqlite3.Connection) -> None:
    """Per-step training metrics, and the indexes lineage views need at 1,000+ generations."""
    db.executescript(
        """
        CREATE TABLE train_logs (
            generation_id INTEGER NOT NULL REFERENCES generations(id),
            phase TEXT NOT NULL,
            step INTEGER NOT NULL,
            loss REAL,
            learning_rate REAL,
            extra TEXT,
            PRIMARY KEY (generation_id, phase, step)
        );
        CREATE INDEX ix_events_generation ON events (generation_id);
        CREATE INDEX ix_eval_generation ON eval_results (generation_id);
        CREATE INDEX ix_reflections_attempt ON reflections (attempt_id);
        """
    )


def m003_evaluations(db: sqlite3.Connection) -> None:
    """One row per evaluation of a generation on a suite, keyed by everything that can change an answer.

    `identity` is the JSON the key hashes (base weights, adapter, backend, decoding, suite content...),
    so `show` can say what an evaluation was; `fixed_key` names generation 0's evaluation whose trial 1
    the paper protocol reused. Results (`eval_results.config_hash`) and attempts (in their purpose)
    carry the key.
    """
    db.executescript(
        """
        CREATE TABLE evaluations (
            id INTEGER PRIMARY KEY,
            generation_id INTEGER NOT NULL REFERENCES generations(id),
            suite TEXT NOT NULL,
            key TEXT NOT NULL,
            identity TEXT NOT NULL,
            fixed_key TEXT,
            created_at REAL NOT NULL,
            finished_at REAL,
            UNIQUE (generation_id, suite, key)
        );
        """
    )


def m004_generation_versions(db: sqlite3.Connection) -> None:
    """Provenance: the versions of python, torch, transformers, trl, peft, ... that made each generation."""
    db.executescript(
        """
        CREATE TABLE generation_versions (
            generation_id INTEGER PRIMARY KEY REFERENCES generations(id),
            versions TEXT NOT NULL,
            recorded_at REAL NOT NULL
        );
        """
    )


MIGRATIONS: list[tuple[str, Migration]] = [
    ("m001_initial", m001_initial),
    ("m002_train_logs", m002_train_logs),
    ("m003_evaluations", m003_evaluations),
    ("m004_generation_versions", m004_generation_versions),
]


class SchemaTooNewError(EvolverError):
    """The database was written by a newer evolver; we must not touch it."""


def applied(db: sqlite3.Connection) -> list[str]:
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
    ).fetchone()
    if not exists:
        return []
    return [r[0] for r in db.execute("SELECT name FROM schema_migrations ORDER BY name")]


def refuse_newer(done: list[str], path: object) -> None:
    """Refuse a store that a newer evolver migrated: this one cannot know what its tables mean."""
    known = [name for name, _ in MIGRATIONS]
    unknown = [n for n in done if n not in known]
    if unknown:
        raise SchemaTooNewError(
            f"{path}: written by a newer evolver (schema {unknown[-1]}; this one knows up to {known[-1]}); "
            "upgrade evolver, the database was not modified"
        )


def migrate(db: sqlite3.Connection, path: str, upto: int | None = None) -> list[str]:
    """Apply pending migrations (the first `upto` only, for tests); return the names applied."""
    done = applied(db)
    refuse_newer(done, path)
    ran: list[str] = []
    for name, fn in MIGRATIONS[: upto if upto is not None else len(MIGRATIONS)]:
        if name in done:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            if name in applied(db):  # another process applied it between our look and our lock
                db.execute("COMMIT")
                continue
            if name == "m001_initial":
                db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
            # executescript would commit the open transaction; run statements one by one instead.
            _run_in_tx(db, fn)
            db.execute("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)", (name, time.time()))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite may have ended it (a full disk): keep the error that says so
                db.execute("ROLLBACK")
            raise
        ran.append(name)
    return ran


class _TxConnection:
    """Passes `executescript` through as single statements, keeping the caller's transaction open."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def executescript(self, script: str) -> None:
        for stmt in _split_sql(script):
            self._db.execute(stmt)

    def execute(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        return self._db.execute(*args, **kwargs)


def _split_sql(script: str) -> list[str]:
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


def _run_in_tx(db: sqlite3.Connection, fn: Migration) -> None:
    fn(_TxConnection(db))  # type: ignore[arg-type]
