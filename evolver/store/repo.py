"""The store: the only shared state. This repository opens the database; the read side
(evolver.store.lineage, .detail, .watch) queries it through `Store.reader()`, and nothing outside
the store package touches the engine.

Writes are idempotent (natural unique keys + ON CONFLICT DO NOTHING), so a phase
that is re-run after a crash never duplicates rows. Every write transaction starts
with BEGIN IMMEDIATE: with WAL, readers never wait, and a writer waits for another
writer (busy_timeout) instead of failing half-way with "database is locked".
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from evolver.states import EventKind, PhaseStatus, PointerName
from evolver.store.connection import BUSY_TIMEOUT_MS, connect
from evolver.store.errors import StoreError, unusable
from evolver.store.hashing import canonical_hash
from evolver.store.migrations import migrate
from evolver.store.schema import Dataset, EvalResult, Evaluation, Event, Generation, Phase, Pointer
from evolver.store.work import WorkRows

_PUT_EVAL_SQL = ("INSERT INTO eval_results (generation_id, benchmark, protocol, metric, value, n, config_hash, created_at)"
                 " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(generation_id, benchmark, protocol, metric, config_hash)"
                 " DO UPDATE SET value=excluded.value, n=excluded.n, created_at=excluded.created_at")


def _pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA cache_size=-65536")  # 64 MiB (default 2): keeps index pages hot during bulk inserts
    cur.close()


class Store(WorkRows):
    """A repository over one SQLite file. Open with `Store.open(path)`."""

    def __init__(self, path: Path, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.engine = engine
        self.clock = clock

    # -- lifecycle ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, clock: Callable[[], float] = time.time, migrate_upto: int | None = None) -> Store:
        """Open (creating if needed) and migrate forward; refuse a database from a newer evolver."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            raw = connect(p)
            try:
                _pragmas(raw, None)
                migrate(raw, str(p), upto=migrate_upto)
                break
            except sqlite3.OperationalError as err:
                # Processes creating one store at once: switching a fresh file to WAL needs an exclusive lock,
                # and SQLite answers "locked" at once instead of waiting when waiting could deadlock. Try again.
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise StoreError(unusable(p, err)) from None
            except sqlite3.DatabaseError as err:
                raise StoreError(unusable(p, err)) from None
            finally:
                raw.close()
            time.sleep(0.05)
        engine = create_engine(f"sqlite:///{p}", connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _pragmas)
        return cls(p, engine, clock)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT).

        On failure it rolls back only a transaction that is still open: SQLite ends one itself on a
        full disk or an I/O error, and a ROLLBACK then ("no transaction is active") would replace
        the error that says what happened.
        """
        with self.engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.exec_driver_sql("COMMIT")
            except BaseException:
                if conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
                    conn.exec_driver_sql("ROLLBACK")
                raise

    @contextmanager
    def reader(self) -> Iterator[Connection]:
        """A plain read connection (no transaction, no ORM): what the read side's column queries run on.

        Column queries on a connection skip the ORM's per-row work (4x faster at 10k rows); with WAL a
        reader never waits for the daemon's writes.
        """
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine) as s:
            yield s

    def _many(self, conn: Connection, sql: str, rows: Sequence[tuple]) -> None:
        if rows:
            conn.exec_driver_sql(sql, list(rows))

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Plain SQL for the read side (evolver.store.lineage, .watch, .detail), as `ReadStore.rows`."""
        return self._all(sql, tuple(params))

    def _all(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self.reader() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(sql, params).fetchall()]

    # -- generations -------------------------------------------------------------------------
    def create_generation(
        self, gen_id: int, parent_id: int | None, base_model: str, config_hash: str, config_json: str,
        status: str = "running", adapter_path: str | None = None, adapter_sha256: str | None = None,
    ) -> Generation:
        with self.tx() as c:
            c.exec_driver_sql(
                "INSERT INTO generations (id, parent_id, base_model, adapter_path, adapter_sha256, status,"
                " config_hash, config_json, created_at) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO NOTHING",
                (gen_id, parent_id, base_model, adapter_path, adapter_sha256, status, config_hash, config_json, self.clock()),
            )
        gen = self.generation(gen_id)
        assert gen is not None
        return gen

    def generation(self, gen_id: int) -> Generation | None:
        with self.session() as s:
            return s.get(Generation, gen_id)

    def generations(self) -> list[Generation]:
        with self.session() as s:
            return list(s.exec(select(Generation).order_by(col(Generation.id))))

    def latest_generation(self) -> Generation | None:
        with self.session() as s:
            return s.exec(select(Generation).order_by(col(Generation.id).desc()).limit(1)).first()

    def record_versions(self, gen_id: int, versions: dict[str, Any]) -> None:
        """The versions of the stack that made a generation (evolver.provenance); the first record stays."""
        with self.tx() as c:
            c.exec_driver_sql("INSERT INTO generation_versions (generation_id, versions, recorded_at) VALUES (?,?,?)"
                              " ON CONFLICT(generation_id) DO NOTHING",
                              (gen_id, json.dumps(versions, sort_keys=True), self.clock()))

    def update_generation(self, gen_id: int, conn: Connection | None = None, **fields: Any) -> None:
        allowed = {"status", "adapter_path", "adapter_sha256", "finished_at", "note", "parent_id"}
        bad = set(fields) - allowed
        if bad:
            raise StoreError(f"generation {gen_id}: cannot update {sorted(bad)}")
        if not fields:
            return
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.tx() if conn is None else nullcontext(conn) as c:
            cur = c.exec_driver_sql(f"UPDATE generations SET {sets} WHERE id = ?", (*fields.values(), gen_id))
            if cur.rowcount == 0:
                raise StoreError(f"generation {gen_id} does not exist")

    # -- phases ------------------------------------------------------------------------------
    def phase_start(self, gen_id: int, name: str) -> int:
        """Mark a phase running and count the attempt; returns the attempt number (1-based)."""
        now = self.clock()
        with self.tx() as c:
            c.exec_driver_sql(
                "INSERT INTO phases (generation_id, name, status, attempts, started_at) VALUES (?,?,'running',1,?)"
                " ON CONFLICT(generation_id, name) DO UPDATE SET status='running', attempts=attempts+1,"
                " started_at=excluded.started_at, finished_at=NULL, error=NULL",
                (gen_id, name, now),
            )
            return int(c.exec_driver_sql(
                "SELECT attempts FROM phases WHERE generation_id=? AND name=?", (gen_id, name)).scalar_one())

    def phase_finish(self, gen_id: int, name: str, status: str = PhaseStatus.DONE, detail: dict | None = None,
                     error: str | None = None) -> None:
        if status not in (PhaseStatus.DONE, PhaseStatus.FAILED, PhaseStatus.SKIPPED):
            raise StoreError(f"phase {name}: bad final status {status!r}")
        with self.tx() as c:
            c.exec_driver_sql(
                "INSERT INTO phases (generation_id, name, status, attempts, finished_at, error, detail)"
                " VALUES (?,?,?,0,?,?,?) ON CONFLICT(generation_id, name) DO UPDATE SET status=excluded.status,"
                " finished_at=excluded.finished_at, error=excluded.error, detail=excluded.detail",
                (gen_id, name, status, self.clock(), error, json.dumps(detail) if detail is not None else None),
            )

    def phases(self, gen_id: int) -> list[Phase]:
        with self.session() as s:
            return list(s.exec(select(Phase).where(Phase.generation_id == gen_id).order_by(col(Phase.id))))

    def phase(self, gen_id: int, name: str) -> Phase | None:
        with self.session() as s:
            return s.exec(select(Phase).where(Phase.generation_id == gen_id, Phase.name == name)).first()

    # -- dataset snapshots -------------------------------------------------------------------
    def put_dataset(self, gen_id: int | None, kind: str, source: str, payloads: Sequence[dict[str, Any]]) -> tuple[int, str]:
        """Store a snapshot once; a second call with the same (generation, kind, source) returns the first."""
        h = canonical_hash(list(payloads))
        with self.tx() as c:
            if gen_id is None:
                found = c.exec_driver_sql(
                    "SELECT id, content_hash FROM datasets WHERE generation_id IS NULL AND kind=? AND content_hash=?",
                    (kind, h)).first()
            else:
                found = c.exec_driver_sql(
                    "SELECT id, content_hash FROM datasets WHERE generation_id=? AND kind=? AND source=?",
                    (gen_id, kind, source)).first()
            if found:
                return int(found[0]), str(found[1])
            ds_id = c.exec_driver_sql(
                "INSERT INTO datasets (generation_id, kind, source, content_hash, n_rows, created_at)"
                " VALUES (?,?,?,?,?,?) RETURNING id", (gen_id, kind, source, h, len(payloads), self.clock())).scalar_one()
            self._many(c, "INSERT INTO dataset_rows (dataset_id, idx, payload) VALUES (?,?,?)",
                       [(ds_id, i, json.dumps(p, ensure_ascii=False)) for i, p in enumerate(payloads)])
        return int(ds_id), h

    def datasets(self, gen_id: int | None = None) -> list[Dataset]:
        with self.session() as s:
            q = select(Dataset).order_by(col(Dataset.id))
            if gen_id is not None:
                q = q.where(Dataset.generation_id == gen_id)
            return list(s.exec(q))

    def dataset_rows(self, dataset_id: int) -> list[dict[str, Any]]:
        return [json.loads(p) for (p,) in self._all(
            "SELECT payload FROM dataset_rows WHERE dataset_id=? ORDER BY idx", (dataset_id,))]

    def find_dataset(self, gen_id: int, kind: str) -> Dataset | None:
        with self.session() as s:
            return s.exec(select(Dataset).where(Dataset.generation_id == gen_id, Dataset.kind == kind)
                          .order_by(col(Dataset.id))).first()

    # -- evaluation --------------------------------------------------------------------------
    def put_eval_results(self, gen_id: int, benchmark: str, protocol: str, config_hash: str,
                         metrics: dict[str, tuple[float, int]]) -> None:
        now = self.clock()
        with self.tx() as c:
            self._many(c, _PUT_EVAL_SQL,
                       [(gen_id, benchmark, protocol, m, float(v), int(n), config_hash, now) for m, (v, n) in metrics.items()])

    def eval_results(self, gen_id: int | None = None, benchmark: str | None = None,
                     key: str | None = None) -> list[EvalResult]:
        with self.session() as s:
            q = select(EvalResult).order_by(col(EvalResult.id))
            if gen_id is not None:
                q = q.where(EvalResult.generation_id == gen_id)
            if benchmark is not None:
                q = q.where(EvalResult.benchmark == benchmark)
            if key is not None:
                q = q.where(EvalResult.config_hash == key)
            return list(s.exec(q))

    def start_evaluation(self, gen_id: int, suite: str, key: str, identity: dict[str, Any],
                         fixed_key: str | None = None) -> None:
        """Record an evaluation before its first attempt (once per key; a resumed one keeps its row)."""
        with self.tx() as c:
            c.exec_driver_sql(
                "INSERT INTO evaluations (generation_id, suite, key, identity, fixed_key, created_at) VALUES (?,?,?,?,?,?)"
                " ON CONFLICT(generation_id, suite, key) DO NOTHING",
                (gen_id, suite, key, json.dumps(identity, sort_keys=True), fixed_key, self.clock()))

    def finish_evaluation(self, gen_id: int, suite: str, key: str, results: Sequence[tuple[str, str, str, float, int]]) -> None:
        """Results ((unit, protocol, metric, value, n) rows) and the finished mark, in one transaction."""
        now = self.clock()
        with self.tx() as c:
            self._many(c, _PUT_EVAL_SQL,
                       [(gen_id, unit, proto, m, float(v), int(n), key, now) for unit, proto, m, v, n in results])
            c.exec_driver_sql("UPDATE evaluations SET finished_at=? WHERE generation_id=? AND suite=? AND key=?",
                              (now, gen_id, suite, key))

    def evaluation(self, gen_id: int, suite: str, key: str | None = None) -> Evaluation | None:
        """The evaluation with `key`, or (key None) the latest finished one of that generation and suite."""
        with self.session() as s:
            q = select(Evaluation).where(Evaluation.generation_id == gen_id, Evaluation.suite == suite)
            if key is not None:
                return s.exec(q.where(Evaluation.key == key)).first()
            return s.exec(q.where(col(Evaluation.finished_at).is_not(None))
                          .order_by(col(Evaluation.finished_at).desc(), col(Evaluation.id).desc())).first()

    def finished_evaluations(self, gen_id: int, suite: str) -> list[Evaluation]:
        """Every finished evaluation of one generation on one suite, oldest first."""
        with self.session() as s:
            return list(s.exec(select(Evaluation).where(Evaluation.generation_id == gen_id, Evaluation.suite == suite,
                                                        col(Evaluation.finished_at).is_not(None))
                               .order_by(col(Evaluation.id))))

    # -- events and pointers -----------------------------------------------------------------
    def record_event(self, kind: str, gen_id: int | None, actor: str, reason: str,
                     metrics: dict[str, Any] | None = None, conn: Connection | None = None) -> None:
        if kind not in EventKind.__members__.values():
            raise StoreError(f"unknown event kind {kind!r}")
        args = (self.clock(), kind, gen_id, actor, reason, json.dumps(metrics) if metrics is not None else None)
        sql = "INSERT INTO events (ts, kind, generation_id, actor, reason, metrics) VALUES (?,?,?,?,?,?)"
        if conn is not None:
            conn.exec_driver_sql(sql, args)
            return
        with self.tx() as c:
            c.exec_driver_sql(sql, args)

    def events(self, gen_id: int | None = None, limit: int | None = None) -> list[Event]:
        with self.session() as s:
            q = select(Event).order_by(col(Event.id).desc())
            if gen_id is not None:
                q = q.where(Event.generation_id == gen_id)
            if limit is not None:
                q = q.limit(limit)
            return list(s.exec(q))

    def set_pointer(self, name: str, gen_id: int | None, conn: Connection | None = None) -> None:
        sql = ("INSERT INTO pointers (name, generation_id, updated_at) VALUES (?,?,?) ON CONFLICT(name) DO UPDATE SET"
               " generation_id=excluded.generation_id, updated_at=excluded.updated_at")
        if conn is not None:
            conn.exec_driver_sql(sql, (name, gen_id, self.clock()))
            return
        with self.tx() as c:
            c.exec_driver_sql(sql, (name, gen_id, self.clock()))

    def pointer(self, name: str) -> int | None:
        with self.session() as s:
            p = s.get(Pointer, name)
            return p.generation_id if p else None

    def current_generation(self) -> int | None:
        """The generation in use: the pin when set, else the promoted pointer."""
        pinned = self.pointer(PointerName.PINNED)
        return pinned if pinned is not None else self.pointer(PointerName.CURRENT)

    # -- training logs -----------------------------------------------------------------------
    def add_train_logs(self, gen_id: int, phase: str, rows: Sequence[dict[str, Any]]) -> None:
        with self.tx() as c:
            self._many(c, "INSERT INTO train_logs (generation_id, phase, step, loss, learning_rate, extra)"
                          " VALUES (?,?,?,?,?,?) ON CONFLICT(generation_id, phase, step) DO NOTHING",
                       [(gen_id, phase, int(r["step"]), r.get("loss"), r.get("learning_rate"),
                         json.dumps({k: v for k, v in r.items() if k not in ("step", "loss", "learning_rate")}))
                        for r in rows])

    def train_logs(self, gen_id: int, phase: str) -> list[dict[str, Any]]:
        return [{"step": s, "loss": lo, "learning_rate": lr, **json.loads(ex or "{}")} for s, lo, lr, ex in self._all(
            "SELECT step, loss, learning_rate, extra FROM train_logs WHERE generation_id=? AND phase=? ORDER BY step",
            (gen_id, phase))]

    # -- summaries ---------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        tables = ("generations", "questions", "attempts", "reflections", "datasets", "eval_results", "events")
        with self.reader() as conn:
            return {t: int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM {t}").scalar_one()) for t in tables}

    def integrity_ok(self) -> bool:
        with self.reader() as conn:
            return conn.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"

    def schema_version(self) -> list[str]:
        return [r[0] for r in self._all("SELECT name FROM schema_migrations ORDER BY name")]

    def backup(self, dest: Path) -> Path:
        """A consistent copy through SQLite's backup API, safe while the daemon writes."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".tmp")
        src = sqlite3.connect(self.path)
        try:
            with sqlite3.connect(tmp) as out:
                src.backup(out)
            out.close()
        finally:
            src.close()
        shutil.move(tmp, dest)
        return dest
