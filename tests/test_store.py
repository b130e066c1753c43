"""The store: migrations build exactly the declared schema, old files upgrade, newer ones are refused,
writes are idempotent, and a reader never sees "database is locked" while a writer works."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import Boolean, Float, Integer
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

import evolver.store.schema as schema
from evolver.store import SchemaTooNewError, Store, StoreError, canonical_hash
from evolver.store.migrations import MIGRATIONS


def _declared_tables() -> dict[str, object]:
    return {obj.__tablename__: obj.__table__ for obj in vars(schema).values()
            if isinstance(obj, type) and issubclass(obj, SQLModel) and hasattr(obj, "__table__")}


def _affinity_of_sa(col) -> str:  # noqa: ANN001
    t = col.type
    if isinstance(t, Boolean):
        return "BOOLEAN"
    if isinstance(t, Integer):
        return "INTEGER"
    if isinstance(t, Float):
        return "REAL"
    return "TEXT"


def _columns(db: sqlite3.Connection, table: str) -> dict[str, tuple[str, bool, bool]]:
    """name -> (declared type, not null, primary key) as SQLite sees the table."""
    out = {}
    for _cid, name, decl, notnull, _default, pk in db.execute(f"PRAGMA table_info({table})"):
        out[name] = (decl.upper(), bool(notnull), pk > 0)
    return out


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


# -- schema and migrations ----------------------------------------------------------------------------
def test_blank_database_migrates_to_exactly_the_declared_schema(store: Store) -> None:
    declared = _declared_tables()
    db = _raw(store.path)
    try:
        actual = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")}
        assert actual == set(declared)
        for name, table in declared.items():
            cols = _columns(db, name)
            assert set(cols) == {c.name for c in table.columns}, name
            for c in table.columns:
                decl, notnull, pk = cols[c.name]
                assert decl == _affinity_of_sa(c), (name, c.name, decl)
                assert pk == bool(c.primary_key), (name, c.name)
                if not c.primary_key:
                    assert notnull == (not c.nullable), (name, c.name, "NOT NULL differs")
            fks = {(r[3], r[2], r[4]) for r in db.execute(f"PRAGMA foreign_key_list({name})")}
            declared_fks = {(fk.parent.name, fk.column.table.name, fk.column.name) for fk in table.foreign_keys}
            assert fks == declared_fks, name
        applied = db.execute("SELECT name, applied_at FROM schema_migrations ORDER BY name").fetchall()
    finally:
        db.close()
    assert [n for n, _ in applied] == [n for n, _ in MIGRATIONS]
    assert all(isinstance(t, float) and t > 0 for _, t in applied)
    assert store.schema_version() == [n for n, _ in MIGRATIONS]


def test_migration_names_are_ordered_and_unique() -> None:
    names = [n for n, _ in MIGRATIONS]
    assert names == sorted(names) and len(set(names)) == len(names)
    assert all(n.startswith(f"m{i + 1:03d}_") for i, n in enumerate(names))


def _seed_rows(store: Store) -> dict[str, int]:
    store.create_generation(0, None, "embedded", "h0", "{}", status="promoted")
    store.create_generation(1, 0, "embedded", "h1", '{"seed": 1}')
    ids = store.upsert_questions([{"source": "arith", "external_id": f"q{i}", "split": "train", "text": f"{i} + 1",
                                   "gold": str(i + 1)} for i in range(5)])
    store.insert_attempts([_attempt(1, ids["q0"], trial=1), _attempt(1, ids["q1"], trial=1)])
    att = store.attempts(1, "train")
    store.insert_reflections([_reflection(1, att[0].id, b) for b in range(3)])
    store.record_event("promoted", 0, "policy", "first generation")
    store.set_pointer("current", 0)
    return ids


def _attempt(gen: int, qid: int, trial: int = 1, branch: int = 0, purpose: str = "train", **kw) -> dict:  # noqa: ANN003
    row = dict(generation_id=gen, purpose=purpose, question_id=qid, trial=trial, branch=branch,
               backend="transformers", model_ref=f"gen-{gen:04d}", sampling='{"temperature": 0}', seed=1,
               prompt=f"Question {qid}", output="Finish[2]", answer="2", correct=False, reason="wrong")
    row.update(kw)
    return row


def _reflection(gen: int, attempt_id: int, branch: int, **kw) -> dict:  # noqa: ANN003
    row = dict(generation_id=gen, purpose="train", attempt_id=attempt_id, branch=branch, instruction_id="1-1-1",
               model_ref=f"gen-{gen:04d}", sampling='{"temperature": 0.8}', seed=branch,
               prompt="Reflect on the failed attempt.", text=f"Reflection {branch}: recheck step 2.")
    row.update(kw)
    return row


def test_old_schema_upgrades_and_keeps_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with Store.open(path, migrate_upto=1) as old:
        assert old.schema_version() == ["m001_initial"]
        assert "train_logs" not in {r[0] for r in old._all("SELECT name FROM sqlite_master WHERE type='table'")}
        _seed_rows(old)
        before = old.counts()
        refl_before = [(r.id, r.text, r.attempt_id) for r in old.reflections(1, "train")]
    with Store.open(path) as new:
        assert new.schema_version() == [n for n, _ in MIGRATIONS]
        assert new.counts() == before
        assert [(r.id, r.text, r.attempt_id) for r in new.reflections(1, "train")] == refl_before
        assert new.pointer("current") == 0
        assert new.events()[0].reason == "first generation"
        new.add_train_logs(1, "sft", [{"step": 1, "loss": 2.5, "learning_rate": 1e-3, "grad_norm": 0.7}])
        assert new.train_logs(1, "sft") == [{"step": 1, "loss": 2.5, "learning_rate": 1e-3, "grad_norm": 0.7}]
        indexes = {r[0] for r in new._all("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"ix_events_generation", "ix_eval_generation", "ix_reflections_attempt"} <= indexes
        assert new.integrity_ok()


def test_reopening_a_current_database_applies_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store.open(path) as s:
        stamps = s._all("SELECT name, applied_at FROM schema_migrations")
    with Store.open(path) as s:
        assert s._all("SELECT name, applied_at FROM schema_migrations") == stamps


def _make_future(path: Path) -> bytes:
    Store.open(path).close()
    db = _raw(path)
    db.execute("INSERT INTO schema_migrations (name, applied_at) VALUES ('m999_from_the_future', 1.0)")
    db.close()  # last connection: the WAL is checkpointed into the main file
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    return path.read_bytes()


def test_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    before = _make_future(path)
    with pytest.raises(SchemaTooNewError) as err:
        Store.open(path)
    msg = str(err.value)
    assert str(path) in msg and "m999_from_the_future" in msg and "newer evolver" in msg
    assert "upgrade evolver" in msg and "\n" not in msg
    assert path.read_bytes() == before


def test_cli_refuses_a_newer_schema_with_one_line(tmp_path: Path, cli) -> None:
    (tmp_path / "state").mkdir()
    before = _make_future(tmp_path / "state" / "evolver.db")
    cfg = tmp_path / "evolver.toml"
    cfg.write_text('state_dir = "state"\n')
    result = cli("--config", cfg, "status")
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "newer evolver" in lines[0] and "Traceback" not in result.stderr
    as_json = cli("--config", cfg, "status", "--json")
    assert as_json.exit_code == 1
    import json

    assert json.loads(as_json.stdout)["error"] == "runtime"
    assert (tmp_path / "state" / "evolver.db").read_bytes() == before


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="junk.db: not a usable evolver database"):
        Store.open(path)


# -- connection settings -------------------------------------------------------------------------------
def test_wal_foreign_keys_and_integrity(store: Store) -> None:
    with store.reader() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 1000
    with pytest.raises(IntegrityError, match="FOREIGN KEY"):
        store.insert_attempts([_attempt(gen=42, qid=1)])  # neither generation 42 nor question 1 exist
    assert store.counts()["attempts"] == 0
    _seed_rows(store)
    assert store.integrity_ok()


# -- idempotence ---------------------------------------------------------------------------------------
def test_reinserting_is_idempotent(store: Store) -> None:
    ids = _seed_rows(store)
    first = store.counts()
    again = store.upsert_questions([{"source": "arith", "external_id": f"q{i}", "split": "train",
                                     "text": f"{i} + 1", "gold": str(i + 1)} for i in range(5)])
    assert again == ids
    att = store.attempts(1, "train")
    store.insert_attempts([_attempt(1, ids["q0"], trial=1, output="a different output")])
    assert store.attempt(att[0].id).output == "Finish[2]"  # the first write wins
    store.insert_reflections([_reflection(1, att[0].id, b, text="rewritten") for b in range(3)])
    assert [r.text for r in store.reflections(1, "train")] == [f"Reflection {b}: recheck step 2." for b in range(3)]
    assert store.counts() == first

    payloads = [{"prompt": "p", "completion": "c", "n": i} for i in range(4)]
    ds1 = store.put_dataset(1, "dplus", "gen-0001", payloads)
    ds2 = store.put_dataset(1, "dplus", "gen-0001", payloads)
    assert ds1 == ds2 and ds1[1] == canonical_hash(payloads)
    assert store.dataset_rows(ds1[0]) == payloads and len(store.datasets(1)) == 1
    assert store.put_dataset(None, "seed", "a", payloads) == store.put_dataset(None, "seed", "b", payloads)

    store.put_eval_results(1, "arith", "t2", "cfg", {"acc@t1": (0.5, 10), "acc@t2": (0.6, 10)})
    store.put_eval_results(1, "arith", "t2", "cfg", {"acc@t1": (0.5, 10), "acc@t2": (0.7, 10)})
    results = {r.metric: r.value for r in store.eval_results(1)}
    assert results == {"acc@t1": 0.5, "acc@t2": 0.7}  # same key: one row, latest value

    store.add_train_logs(1, "sft", [{"step": s, "loss": 1.0 / s} for s in range(1, 4)])
    store.add_train_logs(1, "sft", [{"step": s, "loss": 9.0} for s in range(1, 4)])
    assert [r["loss"] for r in store.train_logs(1, "sft")] == [1.0, 0.5, 1.0 / 3]

    assert store.create_generation(1, 0, "other", "h9", "{}").config_hash == "h1"
    assert store.counts()["generations"] == 2
    assert store.integrity_ok()


def test_optional_columns_default_and_required_ones_are_enforced(store: Store) -> None:
    store.create_generation(1, None, "embedded", "h", "{}")
    ids = store.upsert_questions([{"source": "s", "external_id": "a", "text": "t", "gold": "g"}])
    assert store.upsert_questions([{"source": "s", "external_id": "b", "text": "u", "gold": "h"}]).keys() == {"b"}
    row = _attempt(1, ids["a"])
    for optional in ("answer", "feedback"):
        row.pop(optional, None)
    store.insert_attempts([{**row, "created_at": -1.0, "not_a_column": "ignored"}])
    (a,) = store.attempts(1, "train")
    assert (a.answer, a.feedback, a.tokens_in, a.tokens_out) == (None, None, 0, 0)
    assert a.created_at > 0  # the store's clock, not the caller's
    del row["prompt"]
    with pytest.raises(IntegrityError, match="NOT NULL"):
        store.insert_attempts([{**row, "branch": 1}])
    store.insert_reflections([{k: v for k, v in _reflection(1, a.id, 0).items() if k != "tokens_out"}])
    assert store.reflections(1, "train")[0].tokens_out == 0


def test_phase_restart_counts_attempts(store: Store) -> None:
    store.create_generation(1, None, "embedded", "h", "{}")
    assert store.phase_start(1, "generate") == 1
    store.phase_finish(1, "generate", "failed", error="boom")
    assert store.phase_start(1, "generate") == 2
    store.phase_finish(1, "generate", detail={"n": 3})
    ph = store.phase(1, "generate")
    assert (ph.status, ph.attempts, ph.error, ph.detail) == ("done", 2, None, '{"n": 3}')
    with pytest.raises(StoreError, match="bad final status"):
        store.phase_finish(1, "generate", "weird")


def test_canonical_hash_ignores_key_order() -> None:
    assert canonical_hash({"a": 1, "b": [1, "é"]}) == canonical_hash({"b": [1, "é"], "a": 1})
    assert canonical_hash({"a": 1}) != canonical_hash({"a": 2})


# -- a reader and a writer in separate processes -------------------------------------------------------
def _writer(path: str, seconds: float, out: mp.Queue) -> None:
    try:
        store = Store.open(path)
        qid = store.upsert_questions([{"source": "w", "external_id": "q", "text": "1+1", "gold": "2"}])["q"]
        n, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            n += 1
            store.insert_attempts([_attempt(1, qid, trial=1, branch=n)])
            store.record_event("note", 1, "writer", f"row {n}")
        store.close()
        out.put(("writer", n, None))
    except Exception as err:  # noqa: BLE001 - reported to the parent, which fails the test
        out.put(("writer", -1, repr(err)))


def _reader(path: str, seconds: float, out: mp.Queue) -> None:
    try:
        store = Store.open(path)
        seen, reads, deadline = [], 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            c = store.counts()
            seen.append(c["attempts"])
            reads += 1
        store.close()
        monotone = all(a <= b for a, b in zip(seen, seen[1:]))
        out.put(("reader", reads, None if monotone else f"counts went backwards: {seen[:20]}"))
    except Exception as err:  # noqa: BLE001
        out.put(("reader", -1, repr(err)))


def test_reader_and_writer_in_separate_processes(store: Store) -> None:
    store.create_generation(1, None, "embedded", "h", "{}")
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    seconds = 3.0
    procs = [ctx.Process(target=_writer, args=(str(store.path), seconds, out)),
             ctx.Process(target=_reader, args=(str(store.path), seconds + 0.5, out))]
    for p in procs:
        p.start()
    results = {}
    for _ in procs:
        who, n, err = out.get(timeout=120)
        results[who] = (n, err)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert results["writer"][1] is None, results
    assert results["reader"][1] is None, results
    assert results["writer"][0] >= 50, results  # many small transactions, not one
    assert results["reader"][0] >= 50, results
    assert store.counts()["attempts"] == results["writer"][0]
    assert store.integrity_ok()


# -- the benchmark stays runnable ----------------------------------------------------------------------
def _open_at_once(path: str, barrier, out: mp.Queue) -> None:  # noqa: ANN001 - a multiprocessing barrier
    barrier.wait()
    try:
        Store.open(path).close()
        out.put(None)
    except Exception as err:  # noqa: BLE001 - reported to the parent, which fails the test
        out.put(repr(err))


def test_processes_creating_the_same_store_at_once_all_open_it(tmp_path: Path) -> None:
    """A reader (`evolver status`) and the daemon opening a fresh store together: each migration is applied
    once, by whoever takes the write lock first; the other sees it applied ("table already exists" before)."""
    ctx = mp.get_context("fork")
    for trial in range(10):
        path = str(tmp_path / f"fresh-{trial}.db")
        barrier, out = ctx.Barrier(3), ctx.Queue()
        procs = [ctx.Process(target=_open_at_once, args=(path, barrier, out)) for _ in range(3)]
        for p in procs:
            p.start()
        results = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        assert results == [None, None, None], results
        with Store.open(path) as s:
            assert s.schema_version() == sorted(name for name, _ in MIGRATIONS)


def test_store_bench_smoke(tmp_path: Path, repo_root: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_store", repo_root / "bench" / "store.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rec = bench.bench_records(tmp_path, records=400, k=4, chunk_questions=30)
    assert rec["records"] == 400 and rec["attempts"] == 500 and rec["bytes_per_record"] > 1000
    state = tmp_path / "gens" / "state"
    state.mkdir(parents=True)
    bench.build_generations(state, 12)
    from evolver.store.watch import status_summary

    with Store.open(state / "evolver.db") as s:
        info = status_summary(s, state, None)
        assert info["generations"] == 13 and info["latest"]["id"] == 12 and info["latest"]["phase"] == "sft"
        assert info["last_decision"]["kind"] in ("promoted", "rejected")
        assert s.integrity_ok()
