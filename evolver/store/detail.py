"""One generation in full, for `evolver show` and the TUI's details pane: its row and its parent's,
the config diff, training logs, events and reflections (statistics, sample pairs, the browser's rows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from evolver.states import POOL_PURPOSE, TRAINING_STAGES, gen_name
from evolver.store.lineage import EVENT_COLUMNS, EventInfo, GenInfo, Lineage, event_info, load_lineage, loads
from evolver.store.repo import Store, StoreError
from evolver.store.schema import Attempt, Event, Generation, Question, Reflection

UNSET = "(unset)"  # a config key one side of a diff does not have


class GenerationNotFound(StoreError):
    """`evolver show N` for an N the store does not hold; the message names it and the range there is."""


@dataclass(frozen=True)
class ReflectionRow:
    id: int
    instruction_id: str
    question: str  # the question's external id
    text: str
    success: bool | None
    attempt_id: int


@dataclass
class ReflectionStats:
    total: int = 0
    fixed: int = 0
    unlinked: int = 0  # no retry recorded yet
    by_instruction: list[tuple[str, int, int]] = field(default_factory=list)  # (instruction, n, fixed), most fixes first


@dataclass
class GenDetail:
    lineage: Lineage  # the generation and its parent only
    gen: GenInfo
    parent: GenInfo | None
    config: dict[str, Any]
    config_diff: list[tuple[str, Any, Any]]  # (dotted key, parent's value, this one's)
    train_logs: dict[str, list[dict[str, Any]]]
    events: list[EventInfo]  # oldest first
    pairs: list[tuple[ReflectionRow | None, ReflectionRow | None]]  # (fixed, not fixed), same question when possible
    reflections: ReflectionStats


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values."""
    if not isinstance(obj, dict):
        return {prefix: obj}
    out: dict[str, Any] = {}
    for k, v in obj.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(flatten(v, key) if isinstance(v, dict) and v else {key: v})
    return out


def config_diff(parent: dict[str, Any] | None, child: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    if parent is None:
        return []
    a, b = flatten(parent), flatten(child)
    return [(k, a.get(k, UNSET), b.get(k, UNSET)) for k in sorted(set(a) | set(b))
            if k not in a or k not in b or a[k] != b[k]]


def _reflection_rows(store: Store, where: list[Any], limit: int) -> list[ReflectionRow]:
    with store.reader() as s:
        q = (select(Reflection.id, Reflection.instruction_id, Question.external_id, Reflection.text, Reflection.success,
                    Reflection.attempt_id)
             .join(Attempt, col(Attempt.id) == col(Reflection.attempt_id))
             .join(Question, col(Question.id) == col(Attempt.question_id))
             .where(*where).order_by(col(Reflection.id)).limit(limit))
        return [ReflectionRow(*r) for r in s.execute(q)]


def reflection_stats(store: Store, gen_id: int, purpose: str = POOL_PURPOSE) -> ReflectionStats:
    with store.reader() as s:
        rows = s.execute(select(Reflection.instruction_id, func.count(), func.sum(col(Reflection.success)),
                                func.count(col(Reflection.success)))
                         .where(Reflection.generation_id == gen_id, Reflection.purpose == purpose)
                         .group_by(col(Reflection.instruction_id))).all()
    st = ReflectionStats()
    for iid, n, fixed, linked in rows:
        st.total += n
        st.fixed += int(fixed or 0)
        st.unlinked += n - linked
        st.by_instruction.append((iid, n, int(fixed or 0)))
    st.by_instruction.sort(key=lambda r: (-r[2], -r[1], r[0]))
    return st


def reflection_pairs(store: Store, gen_id: int, n: int = 3,
                     purpose: str = POOL_PURPOSE) -> list[tuple[ReflectionRow | None, ReflectionRow | None]]:
    """Up to n (fixed, not fixed) reflections, on the same failed answer when one has both, else apart."""
    base = [Reflection.generation_id == gen_id, Reflection.purpose == purpose]
    with store.reader() as s:
        both = s.execute(select(Reflection.attempt_id).where(*base, col(Reflection.success).is_not(None))
                         .group_by(col(Reflection.attempt_id))
                         .having(func.max(col(Reflection.success)) == 1, func.min(col(Reflection.success)) == 0)
                         .order_by(col(Reflection.attempt_id)).limit(n)).scalars().all()
    pairs: list[tuple[ReflectionRow | None, ReflectionRow | None]] = []
    if both:
        rows = _reflection_rows(store, [*base, col(Reflection.attempt_id).in_(list(both))], 64 * n)
        for aid in both:
            mine = [r for r in rows if r.attempt_id == aid]
            pairs.append((next(r for r in mine if r.success), next(r for r in mine if r.success is False)))
    if len(pairs) < n:
        used = {r.id for p in pairs for r in p if r is not None}
        more = n - len(pairs)
        good = [r for r in _reflection_rows(store, [*base, Reflection.success == True], more + len(used))  # noqa: E712
                if r.id not in used][:more]
        bad = [r for r in _reflection_rows(store, [*base, Reflection.success == False], more + len(used))  # noqa: E712
               if r.id not in used][:more]
        for i in range(max(len(good), len(bad))):
            pairs.append((good[i] if i < len(good) else None, bad[i] if i < len(bad) else None))
    return pairs


def load_reflections(store: Store, gen_id: int, success: bool | None = None, limit: int = 200,
                     purpose: str = POOL_PURPOSE) -> list[ReflectionRow]:
    """Reflections of one generation for the browser; `success` filters fixed (True) / not fixed (False)."""
    where = [Reflection.generation_id == gen_id, Reflection.purpose == purpose]
    if success is not None:
        where.append(Reflection.success == success)
    return _reflection_rows(store, where, limit)


def load_detail(store: Store, gen_id: int, samples: int = 3) -> GenDetail:
    """One generation in full: its row, its parent's, config, logs, events and sample reflections."""
    g = store.generation(gen_id)
    if g is None:
        with store.reader() as s:
            lo, hi = s.execute(select(func.min(col(Generation.id)), func.max(col(Generation.id)))).one()
        have = "the store has no generations" if hi is None else f"the store has {gen_name(lo)}..{gen_name(hi)}"
        raise GenerationNotFound(f"{gen_name(gen_id)} does not exist ({have})")
    ids = [gen_id] + ([g.parent_id] if g.parent_id is not None else [])
    lin = load_lineage(store, ids)
    info = lin.generations[gen_id]
    parent_row = store.generation(g.parent_id) if g.parent_id is not None else None
    config = loads(g.config_json)
    diff = config_diff(loads(parent_row.config_json) if parent_row else None, config)
    logs = {p: store.train_logs(gen_id, p) for p in TRAINING_STAGES}
    with store.reader() as s:
        evs = s.execute(select(*EVENT_COLUMNS).where(Event.generation_id == gen_id).order_by(col(Event.id))).all()
    return GenDetail(lin, info, lin.generations.get(g.parent_id) if g.parent_id is not None else None, config, diff,
                     {p: rows for p, rows in logs.items() if rows}, [event_info(e) for e in evs],
                     reflection_pairs(store, gen_id, samples), reflection_stats(store, gen_id))
