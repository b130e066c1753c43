"""A compact lineage table printed at the end of `evolver run` (the full views live in the TUI issue)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from evolver.config import LoadedConfig
from evolver.store import Store


def lineage_rows(store: Store) -> list[dict]:
    rows = []
    current = store.current_generation()
    for g in store.generations():
        res = {(r.benchmark, r.protocol, r.metric): r.value for r in store.eval_results(g.id)}
        ds = {d.kind: d.n_rows for d in store.datasets(g.id)}
        phases = {p.name: p for p in store.phases(g.id)}
        minutes = {n: round((p.finished_at - p.started_at) / 60, 2) for n, p in phases.items()
                   if p.started_at and p.finished_at}
        events = [e for e in store.events(g.id) if e.kind in ("promoted", "rejected", "failed", "rolled_back")]
        rows.append({"id": g.id, "parent": g.parent_id, "status": g.status, "current": g.id == current,
                     "metrics": {f"{b}/{p}/{m}": v for (b, p, m), v in res.items()}, "datasets": ds,
                     "minutes": minutes, "reason": events[0].reason if events else None,
                     "adapter_sha256": g.adapter_sha256})
    return rows


def print_lineage(cfg: LoadedConfig, out: Console) -> None:
    db = cfg.state_dir / "evolver.db"
    if not db.exists():
        return
    with Store.open(db) as store:
        rows = lineage_rows(store)
    t = Table(title="lineage", show_lines=False)
    for col in ("gen", "parent", "status", "acc@t1", "acc@t2", "paper t2", "D+", "D±", "min", "reason"):
        t.add_column(col, overflow="fold")
    for r in rows:
        m = r["metrics"]
        bench = cfg.config.evaluation.benchmarks[0]
        get = lambda k: f"{100 * m[k]:.1f}" if k in m else "-"  # noqa: E731
        t.add_row(f"{r['id']}{' *' if r['current'] else ''}", str(r["parent"] if r["parent"] is not None else "-"),
                  r["status"], get(f"{bench}/standard/acc@t1"), get(f"{bench}/standard/acc@t2"),
                  get(f"{bench}/paper/acc@t2"), str(r["datasets"].get("D+", "-")), str(r["datasets"].get("D±", "-")),
                  f"{sum(r['minutes'].values()):.1f}" if r["minutes"] else "-", (r["reason"] or "")[:70])
    out.print(t)
