"""Where the store stands now, read in a few small queries (no writes, no lock): the live dashboard
of `evolver watch`, the summary `evolver status` prints, and the fingerprint the TUI polls.

Whether the daemon runs is not the store's to know: callers pass the lock holder's pid in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evolver.states import NOTICES, PhaseStatus
from evolver.store.lineage import EVENT_SELECT, EventInfo, GenInfo, current_pointers, event_info, load_lineage, loads
from evolver.store.reader import Rows


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


def load_watch(store: Rows | None, daemon_pid: int | None, now: float | None = None, span: float = 300.0,
               n_events: int = 8) -> WatchInfo:
    """What `evolver watch` shows."""
    now = time.time() if now is None else now
    if store is None:
        return WatchInfo(now, daemon_pid, 0, None, None, None, None, None, {}, 0.0, span, [])
    latest_row = latest_generation(store)
    ((size,),) = store.rows("SELECT COUNT(*) FROM generations")
    evs = store.rows(f"{EVENT_SELECT} ORDER BY id DESC LIMIT ?", (n_events,))
    counts: dict[str, tuple[int, int, int]] = {}
    recent = 0
    if latest_row is not None:
        gid = latest_row[0]
        attempts = store.rows("SELECT purpose, COUNT(*), COUNT(DISTINCT question_id) FROM attempts"
                              " WHERE generation_id = ? GROUP BY purpose", (gid,))
        refl = dict(store.rows("SELECT purpose, COUNT(*) FROM reflections WHERE generation_id = ? GROUP BY purpose",
                               (gid,)))
        counts = {p: (int(q), int(n), int(refl.get(p, 0))) for p, n, q in attempts}
        ((recent,),) = store.rows("SELECT COUNT(*) FROM attempts WHERE generation_id = ? AND created_at >= ?",
                                  (gid, now - span))
    latest = None
    pool_size = k = None
    if latest_row is not None:
        latest = load_lineage(store, [latest_row[0]], now).generations[latest_row[0]]
        reflection = loads(latest_row[3]).get("reflection") or {}
        pool_size, k = reflection.get("pool_size"), reflection.get("k")
    current, _, pinned = current_pointers(store)
    return WatchInfo(now, daemon_pid, size, current, pinned, latest, pool_size, k,
                     counts, recent * 60.0 / span, span, [event_info(e) for e in evs])


def latest_generation(store: Rows) -> tuple[int, str, int | None, str] | None:
    """(id, status, parent id, config JSON) of the newest generation, None on an empty store."""
    rows = store.rows("SELECT id, status, parent_id, config_json FROM generations ORDER BY id DESC LIMIT 1")
    return rows[0] if rows else None


def store_version(store: Rows) -> tuple:
    """A cheap fingerprint that changes whenever the lineage views would: the TUI polls it."""
    ((gens, gmax),) = store.rows("SELECT COUNT(*), MAX(finished_at) FROM generations")
    ((phases, started, finished),) = store.rows("SELECT COUNT(*), MAX(started_at), MAX(finished_at) FROM phases")
    ((events,),) = store.rows("SELECT MAX(id) FROM events")
    ((evals,),) = store.rows("SELECT MAX(id) FROM eval_results")
    return (gens, gmax, phases, started, finished, events, evals)


def status_summary(store: Rows | None, state_dir: Path, daemon_pid: int | None) -> dict[str, Any]:
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
    ((out["generations"],),) = store.rows("SELECT COUNT(*) FROM generations")
    out["schema"] = store.rows("SELECT MAX(name) FROM schema_migrations")[0][0]
    _, out["current"], out["pinned"] = current_pointers(store)
    latest = latest_generation(store)
    if latest is not None:
        running = store.rows("SELECT name, detail FROM phases WHERE generation_id = ? AND status = ? ORDER BY id",
                             (latest[0], PhaseStatus.RUNNING))
        out["latest"] = {
            "id": latest[0], "status": latest[1], "parent": latest[2],
            "phase": running[-1][0] if running else None,
            "phase_detail": loads(running[-1][1]) if running and running[-1][1] else None,
        }
    decisions = [e for e in recent_events(store, limit=20) if e.kind not in NOTICES]
    if decisions:
        e = decisions[0]
        out["last_decision"] = {"kind": e.kind, "generation": e.generation_id, "reason": e.reason, "ts": e.ts}
    return out


def recent_events(store: Rows, gen_id: int | None = None, limit: int | None = None) -> list[EventInfo]:
    """Events newest first (of one generation when `gen_id` is given), `evolver events`' rows."""
    where, params = ("", ()) if gen_id is None else (" WHERE generation_id = ?", (gen_id,))
    rows = store.rows(f"{EVENT_SELECT}{where} ORDER BY id DESC LIMIT ?", (*params, -1 if limit is None else limit))
    return [event_info(r) for r in rows]
