"""Where the store stands now, read in a few small queries (no writes, no lock): the live dashboard
of `evolver watch`, the summary `evolver status` prints, and the fingerprint the TUI polls.

Whether the daemon runs is not the store's to know: callers pass the lock holder's pid in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from evolver.states import NOTICES, PhaseStatus
from evolver.store.lineage import EVENT_COLUMNS, EventInfo, GenInfo, current_pointers, event_info, load_lineage, loads
from evolver.store.repo import Store
from evolver.store.schema import Attempt, EvalResult, Event, Generation, Phase, Reflection


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
    """What `evolver watch` shows."""
    now = time.time() if now is None else now
    if store is None:
        return WatchInfo(now, daemon_pid, 0, None, None, None, None, None, {}, 0.0, span, [])
    latest_row = store.latest_generation()
    with store.reader() as s:
        size = int(s.execute(select(func.count()).select_from(Generation)).scalar_one())
        evs = s.execute(select(*EVENT_COLUMNS).order_by(col(Event.id).desc()).limit(n_events)).all()
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
        reflection = loads(latest_row.config_json).get("reflection") or {}
        pool_size, k = reflection.get("pool_size"), reflection.get("k")
    current, _, pinned = current_pointers(store)
    return WatchInfo(now, daemon_pid, size, current, pinned, latest, pool_size, k,
                     counts, recent * 60.0 / span, span, [event_info(e) for e in evs])


def store_version(store: Store) -> tuple:
    """A cheap fingerprint that changes whenever the lineage views would: the TUI polls it."""
    with store.reader() as s:
        gens = s.execute(select(func.count(), func.max(col(Generation.finished_at))).select_from(Generation)).one()
        phases = s.execute(select(func.count(), func.max(col(Phase.started_at)), func.max(col(Phase.finished_at)))
                           .select_from(Phase)).one()
        events = s.execute(select(func.max(col(Event.id)))).scalar_one()
        evals = s.execute(select(func.max(col(EvalResult.id)))).scalar_one()
    return (*tuple(gens), *tuple(phases), events, evals)


def status_summary(store: Store | None, state_dir: Path, daemon_pid: int | None) -> dict[str, Any]:
    """What `evolver status` prints (and `--json` gives): the daemon, the pointers, the latest generation and
    its running phase, the last decision. Works without a store (None): nothing has run yet."""
    out: dict[str, Any] = {
        "state_dir": str(state_dir),
        "daemon": {"pid": daemon_pid, "alive": daemon_pid is not None},
        "generations": 0,
        "current": None,
        "pinned": None,
        "latest": None,
        "last_decision": None,
    }
    if store is None:
        return out
    with store.reader() as s:
        out["generations"] = int(s.execute(select(func.count()).select_from(Generation)).scalar_one())
    out["schema"] = store.schema_version()[-1]
    _, out["current"], out["pinned"] = current_pointers(store)
    latest = store.latest_generation()
    if latest is not None:
        running = [p for p in store.phases(latest.id) if p.status == PhaseStatus.RUNNING]
        out["latest"] = {
            "id": latest.id, "status": latest.status, "parent": latest.parent_id,
            "phase": running[-1].name if running else None,
            "phase_detail": loads(running[-1].detail) if running and running[-1].detail else None,
        }
    decisions = [e for e in store.events(limit=20) if e.kind not in NOTICES]
    if decisions:
        e = decisions[0]
        out["last_decision"] = {"kind": e.kind, "generation": e.generation_id, "reason": e.reason, "ts": e.ts}
    return out
