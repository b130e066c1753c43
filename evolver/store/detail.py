"""One generation in full, for `evolver show` and the TUI's details pane: its row and its parent's,
the config diff, training logs, events and reflections (statistics, sample pairs, the browser's rows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import json

from evolver.errors import EvolverError
from evolver.states import POOL_PURPOSE, TRAINING_STAGES, gen_name
from evolver.store.lineage import EVENT_SELECT, EventInfo, GenInfo, Lineage, event_info, load_lineage, loads
from evolver.store.reader import Rows, in_list

UNSET = "(unset)"  # a config key one side of a diff does not have


class GenerationNotFound(EvolverError):
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
    versions: dict[str, Any] = field(default_factory=dict)  # the stack that made it ({} before m004)
    parent_versions: dict[str, Any] = field(default_factory=dict)

    @property
    def versions_changed(self) -> dict[str, tuple[Any, Any]]:
        """key -> (parent's, this one's) where both were recorded and differ."""
        if not self.versions or not self.parent_versions:
            return {}
        from evolver.provenance import changed

        return changed(self.parent_versions, self.versions)


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


_REFLECTION_SELECT = ("SELECT r.id, r.instruction_id, q.external_id, r.text, r.success, r.attempt_id FROM reflections r"
                      " JOIN attempts a ON a.id = r.attempt_id JOIN questions q ON q.id = a.question_id"
                      " WHERE r.generation_id = ? AND r.purpose = ?")


def _reflection_rows(store: Rows, gen_id: int, purpose: str, where: str, params: tuple, limit: int) -> list[ReflectionRow]:
    rows = store.rows(f"{_REFLECTION_SELECT}{where} ORDER BY r.id LIMIT ?", (gen_id, purpose, *params, limit))
    return [ReflectionRow(i, iid, q, t, None if ok is None else bool(ok), aid) for i, iid, q, t, ok, aid in rows]


def reflection_stats(store: Rows, gen_id: int, purpose: str = POOL_PURPOSE) -> ReflectionStats:
    rows = store.rows("SELECT instruction_id, COUNT(*), SUM(success), COUNT(success) FROM reflections"
                      " WHERE generation_id = ? AND purpose = ? GROUP BY instruction_id", (gen_id, purpose))
    st = ReflectionStats()
    for iid, n, fixed, linked in rows:
        st.total += n
        st.fixed += int(fixed or 0)
        st.unlinked += n - linked
        st.by_instruction.append((iid, n, int(fixed or 0)))
    st.by_instruction.sort(key=lambda r: (-r[2], -r[1], r[0]))
    return st


def reflection_pairs(store: Rows, gen_id: int, n: int = 3,
                     purpose: str = POOL_PURPOSE) -> list[tuple[ReflectionRow | None, ReflectionRow | None]]:
    """Up to n (fixed, not fixed) reflections, on the same failed answer when one has both, else apart."""
    both = [a for (a,) in store.rows(
        "SELECT attempt_id FROM reflections WHERE generation_id = ? AND purpose = ? AND success IS NOT NULL"
        " GROUP BY attempt_id HAVING MAX(success) = 1 AND MIN(success) = 0 ORDER BY attempt_id LIMIT ?",
        (gen_id, purpose, n))]
    pairs: list[tuple[ReflectionRow | None, ReflectionRow | None]] = []
    if both:
        rows = _reflection_rows(store, gen_id, purpose, f" AND r.attempt_id IN {in_list(both)}", tuple(both), 64 * n)
        for aid in both:
            mine = [r for r in rows if r.attempt_id == aid]
            pairs.append((next(r for r in mine if r.success), next(r for r in mine if r.success is False)))
    if len(pairs) < n:
        used = {r.id for p in pairs for r in p if r is not None}
        more = n - len(pairs)
        good = [r for r in _reflection_rows(store, gen_id, purpose, " AND r.success = 1", (), more + len(used))
                if r.id not in used][:more]
        bad = [r for r in _reflection_rows(store, gen_id, purpose, " AND r.success = 0", (), more + len(used))
               if r.id not in used][:more]
        for i in range(max(len(good), len(bad))):
            pairs.append((good[i] if i < len(good) else None, bad[i] if i < len(bad) else None))
    return pairs


def load_reflections(store: Rows, gen_id: int, success: bool | None = None, limit: int = 200,
                     purpose: str = POOL_PURPOSE) -> list[ReflectionRow]:
    """Reflections of one generation for the browser; `success` filters fixed (True) / not fixed (False)."""
    where, params = ("", ()) if success is None else (" AND r.success = ?", (int(success),))
    return _reflection_rows(store, gen_id, purpose, where, params, limit)


def train_logs(store: Rows, gen_id: int, phase: str) -> list[dict[str, Any]]:
    """A training phase's loss curve, as `Store.train_logs` gives it."""
    return [{"step": s, "loss": lo, "learning_rate": lr, **json.loads(ex or "{}")} for s, lo, lr, ex in store.rows(
        "SELECT step, loss, learning_rate, extra FROM train_logs WHERE generation_id=? AND phase=? ORDER BY step",
        (gen_id, phase))]


def load_detail(store: Rows, gen_id: int, samples: int = 3) -> GenDetail:
    """One generation in full: its row, its parent's, config, logs, events and sample reflections."""
    rows = store.rows("SELECT g.id, g.parent_id, g.config_json, v.versions FROM generations g"
                      " LEFT JOIN generation_versions v ON v.generation_id = g.id WHERE g.id = ?", (gen_id,))
    if not rows:
        ((lo, hi),) = store.rows("SELECT MIN(id), MAX(id) FROM generations")
        have = "the store has no generations" if hi is None else f"the store has {gen_name(lo)}..{gen_name(hi)}"
        raise GenerationNotFound(f"{gen_name(gen_id)} does not exist ({have})")
    _, parent_id, config_json, versions = rows[0]
    ids = [gen_id] + ([parent_id] if parent_id is not None else [])
    lin = load_lineage(store, ids)
    info = lin.generations[gen_id]
    parent_rows = (store.rows("SELECT g.config_json, v.versions FROM generations g"
                              " LEFT JOIN generation_versions v ON v.generation_id = g.id WHERE g.id = ?", (parent_id,))
                   if parent_id is not None else [])
    config = loads(config_json)
    diff = config_diff(loads(parent_rows[0][0]) if parent_rows else None, config)
    logs = {p: train_logs(store, gen_id, p) for p in TRAINING_STAGES}
    evs = store.rows(f"{EVENT_SELECT} WHERE generation_id = ? ORDER BY id", (gen_id,))
    return GenDetail(lin, info, lin.generations.get(parent_id) if parent_id is not None else None, config, diff,
                     {p: rows for p, rows in logs.items() if rows}, [event_info(e) for e in evs],
                     reflection_pairs(store, gen_id, samples), reflection_stats(store, gen_id),
                     loads(versions), loads(parent_rows[0][1]) if parent_rows else {})
