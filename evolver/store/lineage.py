"""The lineage read once into plain dataclasses, so every view is a pure function of them.

A handful of column queries load the whole lineage (1,000 generations in well under a second):
no per-generation round trips and no ORM objects. Nothing here writes to the store, and nothing here
imports sqlalchemy: the queries are plain SQL on any `Rows` (a `Store`, or the `ReadStore` that
one-shot commands open to start fast).

Two ways in: `load_lineage` reads every generation (or the ids given) in full; a view that
draws only a window reads `lineage_skeleton` (every generation's place, one query), decides
which ids it draws, and fills only those with `fill_lineage`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

from evolver.states import DECISIONS, TRAINING_STAGES, EvalProtocol, EventKind, GenStatus, PhaseStatus, PointerName
from evolver.store.reader import Rows, in_list

CHUNK = 900  # ids per IN (...): under SQLite's bound-parameter limit
EVENT_SELECT = "SELECT id, ts, kind, generation_id, actor, reason, metrics FROM events"


class Metric(NamedTuple):
    value: float
    n: int


@dataclass(slots=True)
class PhaseInfo:
    name: str
    status: str
    attempts: int
    started_at: float | None
    finished_at: float | None
    error: str | None
    detail_json: str | None = None

    @property
    def detail(self) -> dict[str, Any]:
        """Parsed when asked: the lineage needs the detail of the rows it shows, not of all 6,000."""
        return loads(self.detail_json)

    @property
    def minutes(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at) / 60


class DatasetInfo(NamedTuple):
    kind: str
    rows: int
    sha256: str
    source: str


@dataclass(frozen=True)
class TestInfo:
    """The paired test of a decision on one benchmark, as the policy recorded it."""

    test: str
    n: int
    p: float | None
    ci: tuple[float, float] | None
    significant: bool | None


@dataclass
class EventInfo:
    id: int
    ts: float
    kind: str
    generation_id: int | None
    actor: str
    reason: str
    metrics_json: str | None = None

    @cached_property
    def metrics(self) -> dict[str, Any]:
        return loads(self.metrics_json)

    @property
    def tests(self) -> dict[str, TestInfo]:
        """The decision's paired tests per benchmark (`tests` in the payload evolver.policy.actions writes)."""
        return _tests(self.metrics)


@dataclass
class GenInfo:
    id: int
    parent_id: int | None
    status: str
    created_at: float
    finished_at: float | None
    note: str | None
    adapter_sha256: str | None
    config_hash: str
    # (unit, protocol, metric): a unit is a suite ("arith") or one level of it ("arith/5d")
    results: dict[tuple[str, str, str], Metric] = field(default_factory=dict)
    datasets: dict[str, DatasetInfo] = field(default_factory=dict)
    phases: dict[str, PhaseInfo] = field(default_factory=dict)
    decision: EventInfo | None = None  # the latest promote / reject / failed / manual promote about it
    rollback: EventInfo | None = None  # the latest rollback away from it
    children: list[int] = field(default_factory=list)

    def value(self, bench: str, metric: str, protocol: str = EvalProtocol.STANDARD) -> float | None:
        m = self.results.get((bench, protocol, metric))
        return None if m is None else m.value

    @property
    def metrics(self) -> dict[str, dict[str, dict[str, Metric]]]:
        """bench -> protocol -> metric, in the order the results were written."""
        out: dict[str, dict[str, dict[str, Metric]]] = {}
        for (bench, proto, metric), m in self.results.items():
            out.setdefault(bench, {}).setdefault(proto, {})[metric] = m
        return out

    @property
    def train_minutes(self) -> float | None:
        mins = [p.minutes for n, p in self.phases.items() if n in TRAINING_STAGES and p.minutes is not None]
        return sum(mins) if mins else None

    @property
    def running_phase(self) -> PhaseInfo | None:
        running = [p for p in self.phases.values() if p.status == PhaseStatus.RUNNING]
        return running[-1] if running else None

    @property
    def reason(self) -> str | None:
        """One line on why it stands where it does: the rollback when rolled back, else the decision."""
        if self.status == GenStatus.ROLLED_BACK and self.rollback is not None:
            return f"rolled back: {self.rollback.reason}"
        if self.decision is not None:
            return self.decision.reason
        if self.status == GenStatus.FAILED and self.note:
            return self.note
        return None


@dataclass
class Lineage:
    generations: dict[int, GenInfo]  # by id, ascending
    current: int | None  # what is served: the pin when set, else the promoted pointer
    promoted: int | None  # the `current` pointer
    pinned: int | None
    loaded_at: float
    benchmarks: list[str] = field(default_factory=list)  # in the order they were first evaluated
    t2_range: dict[str, tuple[float, float]] = field(default_factory=dict)  # standard acc@t2 min/max per benchmark

    @property
    def latest(self) -> int | None:
        return next(reversed(self.generations), None)

    def parent(self, gen_id: int) -> GenInfo | None:
        p = self.generations[gen_id].parent_id
        return self.generations.get(p) if p is not None else None

    def path(self, gen_id: int) -> list[int]:
        """Ids from the root down to `gen_id` (cycles and missing parents end the walk)."""
        out: list[int] = []
        seen: set[int] = set()
        g: int | None = gen_id
        while g is not None and g in self.generations and g not in seen:
            seen.add(g)
            out.append(g)
            g = self.generations[g].parent_id
        return out[::-1]

    def badges(self, gen_id: int) -> list[str]:
        """The states of a generation, most important first: the pointers on it ('current' for the one
        served, 'pinned'), then its status (left out for the promoted generation that is current)."""
        g = self.generations[gen_id]
        out: list[str] = []
        if gen_id == self.current:
            out.append(PointerName.CURRENT)
        if gen_id == self.pinned:
            out.append(PointerName.PINNED)
        if g.status != GenStatus.PROMOTED or gen_id != self.current:
            out.append(g.status)
        return out


# -- loading --------------------------------------------------------------------------------------------

def loads(blob: str | None) -> dict[str, Any]:
    """A stored JSON object (a config, a phase detail, an event payload); {} when empty."""
    if not blob:
        return {}
    try:
        out = json.loads(blob)
    except json.JSONDecodeError:
        return {"raw": blob}
    return out if isinstance(out, dict) else {"value": out}


def _tests(metrics: dict[str, Any]) -> dict[str, TestInfo]:
    out = {}
    for bench, t in (metrics.get("tests") or {}).items():
        if not isinstance(t, dict):
            continue
        ci = t.get("ci")
        out[bench] = TestInfo(test=str(t.get("test", "")), n=int(t.get("n") or 0), p=t.get("p"),
                              ci=(float(ci[0]), float(ci[1])) if isinstance(ci, list | tuple) and len(ci) == 2 else None,
                              significant=t.get("significant"))
    return out


def event_info(row: Iterable[Any]) -> EventInfo:
    """An EventInfo from a row of EVENT_COLUMNS."""
    return EventInfo(*row)


def load_lineage(store: Rows, ids: Iterable[int] | None = None, now: float | None = None) -> Lineage:
    """Every generation (or just `ids`) with metrics, datasets, phases and decisions, in six queries."""
    only = sorted(set(ids)) if ids is not None else None
    lin = _skeleton(store, only, now)
    _fill(store, lin.generations, only)
    lin.benchmarks, lin.t2_range = _summary(lin.generations)
    return lin


def lineage_skeleton(store: Rows, now: float | None = None) -> Lineage:
    """Every generation's place (id, parent, status, children) and the pointers, without metrics: one query."""
    return _skeleton(store, None, now)


def fill_lineage(store: Rows, lin: Lineage, ids: Iterable[int] | None) -> Lineage:
    """Metrics, datasets, phases and decisions for `ids` of a skeleton (None: every generation).

    The work grows with `ids`, not with the lineage; the benchmarks and the acc@t2 ranges still
    cover every generation (two aggregate queries).
    """
    if ids is None:
        _fill(store, lin.generations, None)
        lin.benchmarks, lin.t2_range = _summary(lin.generations)
        return lin
    _fill(store, lin.generations, sorted(set(ids)))
    lin.benchmarks = [b for (b,) in store.rows(
        "SELECT benchmark FROM eval_results GROUP BY benchmark ORDER BY MIN(id)")]
    lin.t2_range = {b: (lo, hi) for b, lo, hi in store.rows(
        "SELECT benchmark, MIN(value), MAX(value) FROM eval_results WHERE protocol = ? AND metric = 'acc@t2'"
        " GROUP BY benchmark", (EvalProtocol.STANDARD,))}
    return lin


def pointers(store: Rows) -> dict[str, int | None]:
    """The store's pointers by name (`current` = promoted, `pinned`)."""
    return dict(store.rows("SELECT name, generation_id FROM pointers"))


def current_pointers(store: Rows) -> tuple[int | None, int | None, int | None]:
    """(served, promoted, pinned): the pin is served when set, else the promoted generation."""
    ptr = pointers(store)
    promoted, pinned = ptr.get(PointerName.CURRENT), ptr.get(PointerName.PINNED)
    return (pinned if pinned is not None else promoted), promoted, pinned


def _summary(gens: dict[int, GenInfo]) -> tuple[list[str], dict[str, tuple[float, float]]]:
    """Benchmarks in the order they first appear, and each one's acc@t2 range (the sparkline's scale)."""
    seen: dict[str, None] = {}
    t2: dict[str, list[float]] = {}
    for g in gens.values():
        for (b, proto, metric), m in g.results.items():
            seen.setdefault(b)
            if proto == EvalProtocol.STANDARD and metric == "acc@t2":
                t2.setdefault(b, []).append(m.value)
    return list(seen), {b: (min(v), max(v)) for b, v in t2.items()}


def _skeleton(store: Rows, only: list[int] | None, now: float | None) -> Lineage:
    """Generation rows (ids, parents, statuses) and the pointers: the shape of the lineage, one query."""
    gens: dict[int, GenInfo] = {}
    sql = ("SELECT id, parent_id, status, created_at, finished_at, note, adapter_sha256, config_hash"
           " FROM generations")
    parts: list[list[int] | None] = [None] if only is None else [only[i:i + CHUNK] for i in range(0, len(only), CHUNK)]
    for part in parts:
        where = "" if part is None else f" WHERE id IN {in_list(part)}"
        for gid, parent, status, created, finished, note, sha, chash in store.rows(
                f"{sql}{where} ORDER BY id", part or ()):
            gens[gid] = GenInfo(gid, parent, status, created, finished, note, sha, chash)
    gens = dict(sorted(gens.items()))
    for g in gens.values():
        if g.parent_id is not None and g.parent_id in gens:
            gens[g.parent_id].children.append(g.id)
    return Lineage(gens, *current_pointers(store), time.time() if now is None else now)


def _fill(store: Rows, gens: dict[int, GenInfo], only: list[int] | None) -> None:
    """Metrics, dataset sizes, phases and the latest decision / rollback of `only` (None: all) generations."""
    chunks: list[list[int] | None] = [None] if only is None else [only[i:i + CHUNK] for i in range(0, len(only), CHUNK)]
    kinds = (*DECISIONS, EventKind.ROLLED_BACK)
    for part in chunks:
        ids = tuple(part or ())

        def where(column: str, first: bool = True, part: list[int] | None = part) -> str:
            return "" if part is None else f" {'WHERE' if first else 'AND'} {column} IN {in_list(part)}"

        for gid, bench, proto, metric, value, n in store.rows(
                "SELECT generation_id, benchmark, protocol, metric, value, n FROM eval_results"
                f"{where('generation_id')} ORDER BY id", ids):
            g = gens.get(gid)
            if g is not None:  # the latest row wins on a re-evaluation
                g.results[(bench, proto, metric)] = Metric(value, n)
        for gid, kind, rows, sha, source in store.rows(
                "SELECT generation_id, kind, n_rows, content_hash, source FROM datasets WHERE generation_id IS NOT NULL"
                f"{where('generation_id', False)} ORDER BY id", ids):
            if gid in gens:
                gens[gid].datasets.setdefault(kind, DatasetInfo(kind, rows, sha, source))
        for gid, name, status, attempts, started, finished, error, detail in store.rows(
                "SELECT generation_id, name, status, attempts, started_at, finished_at, error, detail FROM phases"
                f"{where('generation_id')} ORDER BY id", ids):
            if gid in gens:
                gens[gid].phases[name] = PhaseInfo(name, status, attempts, started, finished, error, detail)
        latest: dict[tuple[int, bool], tuple] = {}
        for row in store.rows(f"{EVENT_SELECT} WHERE kind IN {in_list(kinds)}{where('generation_id', False)}"
                              " ORDER BY id", (*kinds, *ids)):
            if row[3] in gens:
                latest[(row[3], row[2] == EventKind.ROLLED_BACK)] = tuple(row)
        for (gid, is_rollback), row in latest.items():
            if is_rollback:
                gens[gid].rollback = event_info(row)
            else:
                gens[gid].decision = event_info(row)
