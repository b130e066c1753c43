"""The rows the reflection loop writes: questions, attempts and reflections (part of `Store`).

Kept apart from the lineage tables because they are the bulk of the store (hundreds of thousands
of rows per generation at scale) and have their own fast paths: tuples built with one dict merge
and an itemgetter, look-ups bounded in 900-id chunks.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from evolver.store.hashing import canonical_hash
from evolver.store.schema import Attempt, Question, Reflection


class WorkRows:
    """Questions, attempts and reflections; mixed into `Store`, which provides the connection helpers."""

    clock: Callable[[], float]
    tx: Callable[[], AbstractContextManager[Connection]]
    session: Callable[[], AbstractContextManager[Session]]
    _many: Callable[[Connection, str, Sequence[tuple]], None]
    _all: Callable[[str, tuple], list[tuple]]

    # -- questions ---------------------------------------------------------------------------
    def upsert_questions(self, rows: Iterable[dict[str, Any]]) -> dict[str, int]:
        """Insert questions once (by source + external_id); return external_id -> row id for these rows."""
        rows = list(rows)
        if not rows:
            return {}
        tuples = [
            (r["source"], str(r["external_id"]), r.get("split", "test"), r["text"], str(r["gold"]),
             canonical_hash({"text": r["text"], "gold": str(r["gold"])}),
             json.dumps(r.get("meta")) if r.get("meta") is not None else None)
            for r in rows
        ]
        with self.tx() as c:
            self._many(c, "INSERT INTO questions (source, external_id, split, text, gold, content_hash, meta)"
                          " VALUES (?,?,?,?,?,?,?) ON CONFLICT(source, external_id) DO NOTHING", tuples)
        # Look up only the rows given: a pool that grows by a slice per generation stays linear.
        by_source: dict[str, list[str]] = {}
        for t in tuples:
            by_source.setdefault(t[0], []).append(t[1])
        out: dict[str, int] = {}
        for src, exts in by_source.items():
            for i in range(0, len(exts), 900):
                part = exts[i:i + 900]
                out.update(self._all(f"SELECT external_id, id FROM questions WHERE source=? AND external_id IN"
                                     f" ({','.join('?' * len(part))})", (src, *part)))
        return out

    def questions(self, ids: Iterable[int]) -> dict[int, Question]:
        ids = list(ids)
        out: dict[int, Question] = {}
        with self.session() as s:
            for i in range(0, len(ids), 900):
                for q in s.exec(select(Question).where(col(Question.id).in_(ids[i:i + 900]))):
                    out[q.id] = q  # type: ignore[index]
        return out

    # -- attempts and reflections ------------------------------------------------------------
    ATTEMPT_COLS = ("generation_id", "purpose", "question_id", "trial", "branch", "backend", "model_ref", "sampling",
                    "seed", "prompt", "output", "answer", "correct", "reason", "feedback", "tokens_in", "tokens_out",
                    "created_at")
    REFLECTION_COLS = ("generation_id", "purpose", "attempt_id", "branch", "instruction_id", "model_ref", "sampling",
                       "seed", "prompt", "text", "tokens_out", "created_at")

    # A missing key is NULL (tokens: 0); created_at is always the store's clock. Rows become tuples
    # through one dict merge and an itemgetter: at 500k rows per phase, a per-key loop costs seconds.
    _ATTEMPTS = ("attempts", ATTEMPT_COLS, "generation_id, purpose, question_id, trial, branch",
                 {k: 0 if k.startswith("tokens") else None for k in ATTEMPT_COLS}, operator.itemgetter(*ATTEMPT_COLS))
    _REFLECTIONS = ("reflections", REFLECTION_COLS, "generation_id, purpose, attempt_id, branch",
                    {k: 0 if k == "tokens_out" else None for k in REFLECTION_COLS},
                    operator.itemgetter(*REFLECTION_COLS))

    def insert_attempts(self, rows: Sequence[dict[str, Any]], conn: Connection | None = None) -> None:
        self._insert_once(self._ATTEMPTS, rows, conn)

    def insert_reflections(self, rows: Sequence[dict[str, Any]], conn: Connection | None = None) -> None:
        self._insert_once(self._REFLECTIONS, rows, conn)

    def _insert_once(self, table: tuple, rows: Sequence[dict[str, Any]], conn: Connection | None) -> None:
        """Insert rows by their natural key; a row already there is left as it was (idempotent re-runs)."""
        name, cols, key, blank, as_tuple = table
        now = self.clock()
        tuples = [as_tuple({**blank, **r, "created_at": now}) for r in rows]
        sql = (f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
               f" ON CONFLICT({key}) DO NOTHING")
        if conn is not None:
            self._many(conn, sql, tuples)
            return
        with self.tx() as c:
            self._many(c, sql, tuples)

    def copy_work(self, gen_id: int, source: str, target: str, question_ids: Sequence[int]) -> int:
        """Copy one generation's attempts and reflections of some questions from purpose `source` to `target`,
        with each reflection linked to the copies of its attempts; questions `target` already has work for are
        left alone. One transaction per 900 questions, so a question is copied whole or not at all. Returns the
        questions copied."""
        copied, rest = 0, ", ".join(self.ATTEMPT_COLS[2:])  # every column after generation_id and purpose
        with self.tx() as c:
            have = {q for (q,) in c.exec_driver_sql(
                "SELECT DISTINCT question_id FROM attempts WHERE generation_id=? AND purpose=?", (gen_id, target))}
        todo = sorted(set(question_ids) - have)
        for i in range(0, len(todo), 900):
            chunk = todo[i:i + 900]
            marks = ",".join("?" * len(chunk))
            with self.tx() as c:
                c.exec_driver_sql(
                    f"INSERT INTO attempts (generation_id, purpose, {rest}) SELECT generation_id, ?, {rest} FROM attempts"
                    f" WHERE generation_id=? AND purpose=? AND question_id IN ({marks})"
                    " ON CONFLICT(generation_id, purpose, question_id, trial, branch) DO NOTHING",
                    (target, gen_id, source, *chunk))
                c.exec_driver_sql(
                    "INSERT INTO reflections (generation_id, purpose, attempt_id, branch, instruction_id, model_ref,"
                    " sampling, seed, prompt, text, tokens_out, next_attempt_id, success, created_at)"
                    " SELECT r.generation_id, ?, na.id, r.branch, r.instruction_id, r.model_ref, r.sampling, r.seed,"
                    " r.prompt, r.text, r.tokens_out, nn.id, CASE WHEN nn.id IS NULL THEN NULL ELSE r.success END,"
                    " r.created_at FROM reflections r"
                    " JOIN attempts oa ON oa.id = r.attempt_id"
                    " JOIN attempts na ON na.generation_id = oa.generation_id AND na.purpose = ?"
                    "  AND na.question_id = oa.question_id AND na.trial = oa.trial AND na.branch = oa.branch"
                    " LEFT JOIN attempts ona ON ona.id = r.next_attempt_id"
                    " LEFT JOIN attempts nn ON nn.generation_id = ona.generation_id AND nn.purpose = ?"
                    "  AND nn.question_id = ona.question_id AND nn.trial = ona.trial AND nn.branch = ona.branch"
                    f" WHERE r.generation_id = ? AND r.purpose = ? AND oa.question_id IN ({marks})"
                    " ON CONFLICT(generation_id, purpose, attempt_id, branch) DO NOTHING",
                    (target, target, target, gen_id, source, *chunk))
                copied += c.exec_driver_sql(
                    f"SELECT COUNT(DISTINCT question_id) FROM attempts WHERE generation_id=? AND purpose=?"
                    f" AND question_id IN ({marks})", (gen_id, target, *chunk)).scalar_one()
        return copied

    def link_reflections(self, links: Sequence[tuple[int, int, bool]]) -> None:
        """Record, for each reflection id, the trial it led to and whether that trial was correct."""
        with self.tx() as c:
            self._many(c, "UPDATE reflections SET next_attempt_id=?, success=? WHERE id=?",
                       [(nxt, ok, rid) for rid, nxt, ok in links])

    def attempt_keys(self, gen_id: int, purpose: str, trial: int, question_ids: Sequence[int]) -> dict[tuple[int, int, int], Attempt]:
        """Attempts of one trial for some questions, keyed (question, trial, branch): a bounded look-up."""
        out: dict[tuple[int, int, int], Attempt] = {}
        with self.session() as s:
            for i in range(0, len(question_ids), 900):
                for a in s.exec(select(Attempt).where(Attempt.generation_id == gen_id, Attempt.purpose == purpose,
                                                      Attempt.trial == trial,
                                                      col(Attempt.question_id).in_(question_ids[i:i + 900]))):
                    out[(a.question_id, a.trial, a.branch)] = a
        return out

    def attempts(self, gen_id: int, purpose: str) -> list[Attempt]:
        with self.session() as s:
            return list(s.exec(select(Attempt).where(Attempt.generation_id == gen_id, Attempt.purpose == purpose)
                               .order_by(col(Attempt.id))))

    def reflections(self, gen_id: int, purpose: str) -> list[Reflection]:
        with self.session() as s:
            return list(s.exec(select(Reflection).where(Reflection.generation_id == gen_id,
                                                        Reflection.purpose == purpose).order_by(col(Reflection.id))))

    def attempt(self, attempt_id: int) -> Attempt | None:
        with self.session() as s:
            return s.get(Attempt, attempt_id)

    def work_totals(self, gen_id: int, purpose: str) -> tuple[int, int, int, int]:
        """(trial-1 attempts, later attempts, reflections, tokens written) of one generation and purpose."""
        (t1, later, a_tok), = self._all(
            "SELECT COALESCE(SUM(trial = 1), 0), COALESCE(SUM(trial > 1), 0), COALESCE(SUM(tokens_out), 0)"
            " FROM attempts WHERE generation_id = ? AND purpose = ?", (gen_id, purpose))
        (n_refl, r_tok), = self._all("SELECT COUNT(*), COALESCE(SUM(tokens_out), 0) FROM reflections"
                                     " WHERE generation_id = ? AND purpose = ?", (gen_id, purpose))
        return int(t1), int(later), int(n_refl), int(a_tok) + int(r_tok)

    def pool_history(self, source: str, before: int) -> dict[str, tuple[int, bool, int]]:
        """Every question of `source` that a training pool of a generation before `before` answered:
        external id -> (times asked, ever right at trial 1, last generation that asked it).

        Only earlier generations count, so a resumed generation draws exactly the pool it drew first.
        """
        rows = self._all(
            "SELECT q.external_id, COUNT(*), MAX(a.correct), MAX(a.generation_id) FROM attempts a"
            " JOIN questions q ON q.id = a.question_id"
            " WHERE q.source = ? AND a.purpose = 'pool' AND a.trial = 1 AND a.branch = 0 AND a.generation_id < ?"
            " GROUP BY q.external_id", (source, before))
        return {ext: (int(n), bool(ok), int(last)) for ext, n, ok, last in rows}
