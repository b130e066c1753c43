"""Read the store once into plain dataclasses, so every view is a pure function of them.

A handful of column queries load the whole lineage (1,000 generations in well under a second):
no per-generation round trips and no ORM objects. Nothing here writes to the store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

from sqlalchemy import func
from sqlalchemy.engine import Connection
from sqlmodel import col, select

from evolver.store import Store
from evolver.store.schema import Attempt, Dataset, EvalResult, Event, Generation, Phase, Question, Reflection

STANDARD, PAPER = "standard", "paper"
DECISION_KINDS = ("promoted", "rejected", "failed", "manual_promote")
TRAIN_PHASES = ("sft", "dpo")
POOL = "pool"
SPARK_WINDOW = 12  # ancestors a row's sparkline reaches back to
UNSET = "(unset)"  # a config key one side of a diff does not have


class GenerationNotFound(LookupError):
    """`evolver show N` for an N the store does not hold; the message names it and the range there is."""


def _reader(store: Store) -> Connection:
    """A plain connection: column queries without the ORM's per-row work (4x faster at 10k rows)."""
    return store.engine.connect()


def gen_name(gen_id: int | None) -> str:
    return "none" if gen_id is None else f"gen-{gen_id:04d}"


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
        return _loads(self.detail_json)

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
        return _loads(self.metrics_json)

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
    results: dict[tuple[str, str, str], Metric] = field(default_factory=dict)  # (bench, protocol, metric)
    datasets: dict[str, DatasetInfo] = field(default_factory=dict)
    phases: dict[str, PhaseInfo] = field(default_factory=dict)
    decision: EventInfo | None = None  # the latest promote / reject / failed / manual promote about it
    rollback: EventInfo | None = None  # the latest rollback away from it
    children: list[int] = field(default_factory=list)

    def value(self, bench: str, metric: str, protocol: str = STANDARD) -> float | None:
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
        mins = [p.minutes for n, p in self.phases.items() if n in TRAIN_PHASES and p.minutes is not None]
        return sum(mins) if mins else None

    @property
    def running_phase(self) -> PhaseInfo | None:
        running = [p for p in self.phases.values() if p.status == "running"]
        return running[-1] if running else None

    @property
    def reason(self) -> str | None:
        """One line on why it stands where it does: the rollback when rolled back, else the decision."""
        if self.status == "rolled_back" and self.rollback is not None:
            return f"rolled back: {self.rollback.reason}"
        if self.decision is not None:
            return self.decision.reason
        if self.status == "failed" and self.note:
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
        """Words for the state of a generation, most important first."""
        g = self.generations[gen_id]
        out = []
        if gen_id == self.current:
            out.append("current")
        if gen_id == self.pinned:
            out.append("pinned")
        if g.status == "rolled_back":
            out.append("rolled back")
        elif g.status != "promoted" or gen_id != self.current:
            out.append(g.status)
        return out


# -- loading --------------------------------------------------------------------------------------------

def _loads(blob: str | None) -> dict[str, Any]:
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


def _event(row: tuple) -> EventInfo:
    return EventInfo(*row)


def load_lineage(store: Store, ids: Iterable[int] | None = None, now: float | None = None) -> Lineage:
    """Every generation (or just `ids`) with metrics, datasets, phases and decisions, in six queries."""
    only = sorted(set(ids)) if ids is not None else None
    lin = _skeleton(store, only, now)
    _fill(store, lin.generations, only)
    lin.benchmarks, lin.t2_range = _summary(lin.generations)
    return lin


def load_window(store: Store, last: int | None, now: float | None = None) -> Lineage:
    """The lineage as the tree shows it: every generation's place, but metrics, datasets, phases and decisions
    only for the rows the newest-`last` window draws (with their parents and the sparkline's ancestors).

    The work then grows with the window, not with the lineage; the benchmarks and the sparkline's
    scale still cover every generation (two aggregate queries).
    """
    lin = _skeleton(store, None, now)
    keep = default_keep(lin, last)
    if keep is None:
        _fill(store, lin.generations, None)
        lin.benchmarks, lin.t2_range = _summary(lin.generations)
        return lin
    need: set[int] = set()
    for gid in _shown(window(display_tree(lin), keep)):
        need.update(lin.path(gid)[-(SPARK_WINDOW + 1):])
    only = sorted(need)
    _fill(store, lin.generations, only)
    with _reader(store) as s:
        lin.benchmarks = list(s.execute(select(EvalResult.benchmark).group_by(col(EvalResult.benchmark))
                                        .order_by(func.min(col(EvalResult.id)))).scalars().all())
        lin.t2_range = {b: (lo, hi) for b, lo, hi in s.execute(
            select(EvalResult.benchmark, func.min(col(EvalResult.value)), func.max(col(EvalResult.value)))
            .where(EvalResult.protocol == STANDARD, EvalResult.metric == "acc@t2")
            .group_by(col(EvalResult.benchmark))).all()}
    return lin


def _shown(rows: list[Node | Gap]) -> list[int]:
    out: list[int] = []
    stack = list(rows)
    while stack:
        r = stack.pop()
        if isinstance(r, Node):
            out.append(r.gen)
            stack.extend(r.nested)
    return out


def _summary(gens: dict[int, GenInfo]) -> tuple[list[str], dict[str, tuple[float, float]]]:
    """Benchmarks in the order they first appear, and each one's acc@t2 range (the sparkline's scale)."""
    seen: dict[str, None] = {}
    t2: dict[str, list[float]] = {}
    for g in gens.values():
        for (b, proto, metric), m in g.results.items():
            seen.setdefault(b)
            if proto == STANDARD and metric == "acc@t2":
                t2.setdefault(b, []).append(m.value)
    return list(seen), {b: (min(v), max(v)) for b, v in t2.items()}


def _skeleton(store: Store, only: list[int] | None, now: float | None) -> Lineage:
    """Generation rows (ids, parents, statuses) and the pointers: the shape of the lineage, one query."""
    gens: dict[int, GenInfo] = {}
    with _reader(store) as s:
        q = select(Generation.id, Generation.parent_id, Generation.status, Generation.created_at, Generation.finished_at,
                   Generation.note, Generation.adapter_sha256, Generation.config_hash).order_by(col(Generation.id))
        if only is not None:
            q = q.where(col(Generation.id).in_(only))
        for gid, parent, status, created, finished, note, sha, chash in s.execute(q).all():
            gens[gid] = GenInfo(gid, parent, status, created, finished, note, sha, chash)
    for g in gens.values():
        if g.parent_id is not None and g.parent_id in gens:
            gens[g.parent_id].children.append(g.id)
    promoted, pinned = store.pointer("current"), store.pointer("pinned")
    return Lineage(gens, pinned if pinned is not None else promoted, promoted, pinned, time.time() if now is None else now)


def _fill(store: Store, gens: dict[int, GenInfo], only: list[int] | None) -> None:
    """Metrics, dataset sizes, phases and the latest decision / rollback of `only` (None: all) generations."""
    chunks: list[list[int] | None] = [None] if only is None else [only[i:i + 900] for i in range(0, len(only), 900)]
    with _reader(store) as s:
        for part in chunks:
            def where(q: Any, column: Any, part: list[int] | None = part) -> Any:
                return q if part is None else q.where(col(column).in_(part))

            q = select(EvalResult.generation_id, EvalResult.benchmark, EvalResult.protocol, EvalResult.metric,
                       EvalResult.value, EvalResult.n).order_by(col(EvalResult.id))
            for gid, bench, proto, metric, value, n in s.execute(where(q, EvalResult.generation_id)).all():
                g = gens.get(gid)
                if g is not None:  # the latest row wins on a re-evaluation
                    g.results[(bench, proto, metric)] = Metric(value, n)
            q = select(Dataset.generation_id, Dataset.kind, Dataset.n_rows, Dataset.content_hash, Dataset.source).where(
                col(Dataset.generation_id).is_not(None)).order_by(col(Dataset.id))
            for gid, kind, rows, sha, source in s.execute(where(q, Dataset.generation_id)).all():
                if gid in gens:
                    gens[gid].datasets.setdefault(kind, DatasetInfo(kind, rows, sha, source))
            q = select(Phase.generation_id, Phase.name, Phase.status, Phase.attempts, Phase.started_at,
                       Phase.finished_at, Phase.error, Phase.detail).order_by(col(Phase.id))
            for gid, name, status, attempts, started, finished, error, detail in s.execute(
                    where(q, Phase.generation_id)).all():
                if gid in gens:
                    gens[gid].phases[name] = PhaseInfo(name, status, attempts, started, finished, error, detail)
            q = select(Event.id, Event.ts, Event.kind, Event.generation_id, Event.actor, Event.reason,
                       Event.metrics).where(col(Event.kind).in_((*DECISION_KINDS, "rolled_back"))).order_by(col(Event.id))
            latest: dict[tuple[int, bool], tuple] = {}
            for row in s.execute(where(q, Event.generation_id)).all():
                if row[3] in gens:
                    latest[(row[3], row[2] == "rolled_back")] = tuple(row)
            for (gid, is_rollback), row in latest.items():
                if is_rollback:
                    gens[gid].rollback = _event(row)
                else:
                    gens[gid].decision = _event(row)


# -- the display tree: main line flat, side branches indented --------------------------------------------

@dataclass
class Node:
    """One generation in the display tree; `nested` holds its side branches and dead ends, in id order."""

    gen: int
    nested: list[Node | Gap] = field(default_factory=list)


@dataclass(frozen=True)
class Gap:
    """Generations left out of a window (`count` of them, ids `first`..`last`)."""

    count: int
    first: int
    last: int


def display_tree(lin: Lineage) -> list[Node | Gap]:
    """The lineage as a list of top-level rows.

    One child continues on its parent's level (the main line), so a chain of 1,000 promotions is
    a flat list, not 1,000 levels of indentation: the child on the way to the current generation,
    else the child with descendants that holds the newest generation. The other children are
    indented under their parent: dead ends (rejected or failed candidates, the running one) as
    single rows, side branches (e.g. the line a rollback left) as their own flat chains.
    """
    gens = lin.generations
    newest: dict[int, int] = {}
    holds_current: dict[int, bool] = {}
    for gid in sorted(gens, reverse=True):  # children have larger ids than parents
        kids = [k for k in gens[gid].children if k in newest]
        newest[gid] = max([gid, *(newest[k] for k in kids)])
        holds_current[gid] = gid == lin.current or any(holds_current[k] for k in kids)
    for gid in gens:  # anything a descending pass missed (a child with a smaller id than its parent)
        newest.setdefault(gid, gid)
        holds_current.setdefault(gid, gid == lin.current)

    def chain(start: int) -> list[Node | Gap]:
        out: list[Node | Gap] = []
        g: int | None = start
        seen: set[int] = set()
        while g is not None and g not in seen:
            seen.add(g)
            kids = sorted(gens[g].children)
            branches = [k for k in kids if gens[k].children or holds_current[k]]
            main = max(branches, key=lambda k: (holds_current[k], newest[k])) if branches else None
            nested: list[Node | Gap] = []
            for k in kids:
                if k != main:
                    nested.extend(chain(k) if gens[k].children else [Node(k)])
            out.append(Node(g, nested))
            g = main
        return out

    roots = [g for g, info in gens.items() if info.parent_id is None or info.parent_id not in gens]
    rows: list[Node | Gap] = []
    for r in roots:
        rows.extend(chain(r))
    return rows


def window(rows: list[Node | Gap], keep: set[int]) -> list[Node | Gap]:
    """Only rows whose generation is in `keep` or that lead to one; runs left out become one Gap each."""
    out: list[Node | Gap] = []
    dropped: list[int] = []

    def flush() -> None:
        if dropped:
            out.append(Gap(len(dropped), min(dropped), max(dropped)))
            dropped.clear()

    for row in rows:
        if isinstance(row, Gap):
            flush()
            out.append(row)
            continue
        nested = window(row.nested, keep)
        if row.gen in keep or any(isinstance(n, Node) for n in nested):
            flush()
            out.append(Node(row.gen, nested))
        else:
            dropped.extend(_ids(row))
    flush()
    return out


def _ids(node: Node) -> list[int]:
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        out.append(n.gen)
        stack.extend(x for x in n.nested if isinstance(x, Node))
    return out


def default_keep(lin: Lineage, last: int | None) -> set[int] | None:
    """The newest `last` generations plus the current, pinned and promoted ones; None means all."""
    if last is None or len(lin.generations) <= last:
        return None
    ids = list(lin.generations)
    keep = set(ids[-last:])
    keep.update(g for g in (lin.current, lin.pinned, lin.promoted) if g is not None)
    return keep


# -- one generation in full ----------------------------------------------------------------------------

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
    with _reader(store) as s:
        q = (select(Reflection.id, Reflection.instruction_id, Question.external_id, Reflection.text, Reflection.success,
                    Reflection.attempt_id)
             .join(Attempt, col(Attempt.id) == col(Reflection.attempt_id))
             .join(Question, col(Question.id) == col(Attempt.question_id))
             .where(*where).order_by(col(Reflection.id)).limit(limit))
        return [ReflectionRow(*r) for r in s.execute(q)]


def reflection_stats(store: Store, gen_id: int, purpose: str = POOL) -> ReflectionStats:
    with _reader(store) as s:
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
                     purpose: str = POOL) -> list[tuple[ReflectionRow | None, ReflectionRow | None]]:
    """Up to n (fixed, not fixed) reflections, on the same failed answer when one has both, else apart."""
    base = [Reflection.generation_id == gen_id, Reflection.purpose == purpose]
    with _reader(store) as s:
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
                     purpose: str = POOL) -> list[ReflectionRow]:
    """Reflections of one generation for the browser; `success` filters fixed (True) / not fixed (False)."""
    where = [Reflection.generation_id == gen_id, Reflection.purpose == purpose]
    if success is not None:
        where.append(Reflection.success == success)
    return _reflection_rows(store, where, limit)


def load_detail(store: Store, gen_id: int, samples: int = 3) -> GenDetail:
    """One generation in full: its row, its parent's, config, logs, events and sample reflections."""
    g = store.generation(gen_id)
    if g is None:
        with _reader(store) as s:
            lo, hi = s.execute(select(func.min(col(Generation.id)), func.max(col(Generation.id)))).one()
        have = "the store has no generations" if hi is None else f"the store has {gen_name(lo)}..{gen_name(hi)}"
        raise GenerationNotFound(f"{gen_name(gen_id)} does not exist ({have})")
    ids = [gen_id] + ([g.parent_id] if g.parent_id is not None else [])
    lin = load_lineage(store, ids)
    info = lin.generations[gen_id]
    parent_row = store.generation(g.parent_id) if g.parent_id is not None else None
    config = _loads(g.config_json)
    diff = config_diff(_loads(parent_row.config_json) if parent_row else None, config)
    logs = {p: store.train_logs(gen_id, p) for p in TRAIN_PHASES}
    with _reader(store) as s:
        evs = s.execute(select(Event.id, Event.ts, Event.kind, Event.generation_id, Event.actor, Event.reason,
                            Event.metrics).where(Event.generation_id == gen_id).order_by(col(Event.id))).all()
    return GenDetail(lin, info, lin.generations.get(g.parent_id) if g.parent_id is not None else None, config, diff,
                     {p: rows for p, rows in logs.items() if rows}, [_event(tuple(e)) for e in evs],
                     reflection_pairs(store, gen_id, samples), reflection_stats(store, gen_id))


# -- the live dashboard -------------------------------------------------------------------------------

@dataclass
class WatchInfo:
    now: float
    daemon_pid: int | None
    lineage_size: int
    current: int | None
    pinned: int | None
    latest: GenInfo | None
    pool_size: int | None  # from the running generation's config
    k: int | None
    counts: dict[str, tuple[int, int, int]]  # purpose -> (questions answered at trial 1, attempts, reflections)
    per_minute: float  # attempts written per minute over the last `span` seconds
    span: float
    events: list[EventInfo]


def load_watch(store: Store | None, daemon_pid: int | None, now: float | None = None, span: float = 300.0,
               n_events: int = 8) -> WatchInfo:
    """What `evolver watch` shows, read in a few small queries (no writes, no lock)."""
    now = time.time() if now is None else now
    if store is None:
        return WatchInfo(now, daemon_pid, 0, None, None, None, None, None, {}, 0.0, span, [])
    latest_row = store.latest_generation()
    with _reader(store) as s:
        size = int(s.execute(select(func.count()).select_from(Generation)).scalar_one())
        evs = s.execute(select(Event.id, Event.ts, Event.kind, Event.generation_id, Event.actor, Event.reason,
                            Event.metrics).order_by(col(Event.id).desc()).limit(n_events)).all()
        counts: dict[str, tuple[int, int, int]] = {}
        recent = 0
        if latest_row is not None:
            gid = latest_row.id
            attempts = s.execute(select(Attempt.purpose, func.count(),
                                     func.count(func.distinct(col(Attempt.question_id))))
                              .where(Attempt.generation_id == gid).group_by(col(Attempt.purpose))).all()
            refl = dict(s.execute(select(Reflection.purpose, func.count()).where(Reflection.generation_id == gid)
                               .group_by(col(Reflection.purpose))).all())
            counts = {p: (int(q), int(n), int(refl.get(p, 0))) for p, n, q in attempts}
            recent = int(s.execute(select(func.count()).select_from(Attempt).where(
                Attempt.generation_id == gid, col(Attempt.created_at) >= now - span)).scalar_one())
    latest = None
    pool_size = k = None
    if latest_row is not None:
        latest = load_lineage(store, [latest_row.id], now).generations[latest_row.id]
        cfg = _loads(latest_row.config_json)
        pool_size = (cfg.get("reflection") or {}).get("pool_size")
        k = (cfg.get("reflection") or {}).get("k")
    pinned, promoted = store.pointer("pinned"), store.pointer("current")
    return WatchInfo(now, daemon_pid, size, pinned if pinned is not None else promoted, pinned, latest, pool_size, k,
                     counts, recent * 60.0 / span, span, [_event(tuple(e)) for e in evs])


def store_version(store: Store) -> tuple:
    """A cheap fingerprint that changes whenever the lineage views would: the TUI polls it."""
    with _reader(store) as s:
        gens = s.execute(select(func.count(), func.max(col(Generation.finished_at))).select_from(Generation)).one()
        phases = s.execute(select(func.count(), func.max(col(Phase.started_at)), func.max(col(Phase.finished_at)))
                           .select_from(Phase)).one()
        events = s.execute(select(func.max(col(Event.id)))).scalar_one()
        evals = s.execute(select(func.max(col(EvalResult.id)))).scalar_one()
    return (*tuple(gens), *tuple(phases), events, evals)
