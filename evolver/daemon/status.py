"""A summary of the store and the daemon, for `evolver status` and the faces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evolver.daemon.lock import holder
from evolver.store import Store


def gather(store: Store | None, state_dir: Path) -> dict[str, Any]:
    pid = holder(state_dir)
    out: dict[str, Any] = {
        "state_dir": str(state_dir),
        "daemon": {"pid": pid, "alive": pid is not None},
        "generations": 0,
        "current": None,
        "pinned": None,
        "latest": None,
        "last_decision": None,
    }
    if store is None:
        return out
    with store.engine.connect() as c:
        out["generations"] = int(c.exec_driver_sql("SELECT COUNT(*) FROM generations").scalar_one())
    out["schema"] = store.schema_version()[-1]
    out["current"] = store.pointer("current")
    out["pinned"] = store.pointer("pinned")
    latest = store.latest_generation()
    if latest is not None:
        running = [p for p in store.phases(latest.id) if p.status == "running"]
        out["latest"] = {
            "id": latest.id, "status": latest.status, "parent": latest.parent_id,
            "phase": running[-1].name if running else None,
            "phase_detail": json.loads(running[-1].detail) if running and running[-1].detail else None,
        }
    decisions = [e for e in store.events(limit=20) if e.kind != "note"]
    if decisions:
        e = decisions[0]
        out["last_decision"] = {"kind": e.kind, "generation": e.generation_id, "reason": e.reason, "ts": e.ts}
    return out
