"""The JSON views: `evolver lineage --json` and `evolver show N --json`.

Metrics are fractions, deltas against the parent in points; units are listed as the store holds
them (a suite, 'arith', and each of its levels, 'arith/5d').
"""

from __future__ import annotations

from typing import Any

from evolver.states import gen_name
from evolver.store.detail import GenDetail, ReflectionRow
from evolver.store.lineage import Lineage


def gen_json(lin: Lineage, gid: int, benchmark: str | None = None) -> dict[str, Any]:
    """One generation as the lineage and `show` JSON give it: metrics as fractions, deltas in points."""
    g = lin.generations[gid]
    parent = lin.parent(gid)
    nested = {b: protos for b, protos in g.metrics.items() if benchmark is None or b == benchmark}
    metrics = {b: {p: {m: v.value for m, v in ms.items()} for p, ms in protos.items()} for b, protos in nested.items()}
    deltas: dict[str, Any] = {}
    if parent is not None:
        for b, protos in metrics.items():
            for p, ms in protos.items():
                for m, v in ms.items():
                    old = parent.value(b, m, p)
                    if old is not None:
                        deltas.setdefault(b, {}).setdefault(p, {})[m] = round(100 * (v - old), 4)
    tests = g.decision.tests if g.decision is not None else {}
    return {
        "id": gid, "name": gen_name(gid), "parent": g.parent_id, "status": g.status, "badges": lin.badges(gid),
        "children": g.children, "created_at": g.created_at, "finished_at": g.finished_at,
        "adapter_sha256": g.adapter_sha256, "config_hash": g.config_hash, "metrics": metrics,
        "n": {b: {p: {m: v.n for m, v in ms.items()} for p, ms in protos.items()} for b, protos in nested.items()},
        "deltas_vs_parent": deltas,
        "tests": {b: {"test": t.test, "n": t.n, "p": t.p, "ci": list(t.ci) if t.ci else None,
                      "significant": t.significant} for b, t in tests.items() if benchmark is None or b == benchmark},
        "datasets": {k: {"rows": d.rows, "sha256": d.sha256, "source": d.source} for k, d in g.datasets.items()},
        "phases": {n: {"status": p.status, "attempts": p.attempts, "started_at": p.started_at,
                       "finished_at": p.finished_at, "minutes": p.minutes, "error": p.error}
                   for n, p in g.phases.items()},
        "train_minutes": g.train_minutes,
        "decision": None if g.decision is None else {"kind": g.decision.kind, "actor": g.decision.actor,
                                                     "ts": g.decision.ts, "reason": g.decision.reason},
        "reason": g.reason,
    }


def lineage_json(lin: Lineage, benchmark: str | None = None) -> dict[str, Any]:
    """The lineage's data, every generation (the tree's window is a display choice)."""
    bench = benchmark or (lin.benchmarks[0] if lin.benchmarks else None)
    out = []
    for gid in lin.generations:
        row = gen_json(lin, gid, benchmark)
        row["path_acc_t2"] = None if bench is None else [lin.generations[p].value(bench, "acc@t2") for p in lin.path(gid)]
        out.append(row)
    return {"current": lin.current, "promoted": lin.promoted, "pinned": lin.pinned, "latest": lin.latest,
            "benchmarks": [benchmark] if benchmark else lin.benchmarks, "spark_benchmark": bench,
            "generations": out}


def _reflection(r: ReflectionRow | None) -> dict[str, Any] | None:
    return None if r is None else {"id": r.id, "instruction_id": r.instruction_id, "question": r.question,
                                   "text": r.text, "success": r.success, "attempt_id": r.attempt_id}


def generation_json(d: GenDetail, benchmark: str | None = None) -> dict[str, Any]:
    """`evolver show N --json`: the lineage's row of it, plus phase details, config diff, logs, events, reflections."""
    row = gen_json(d.lineage, d.gen.id, benchmark)
    row["phases"] = {n: {**row["phases"][n], "detail": p.detail} for n, p in d.gen.phases.items()}
    row.update({
        "versions": d.versions or None,
        "versions_changed": {k: {"parent": a, "value": b} for k, (a, b) in d.versions_changed.items()},
        "config_diff": [{"key": k, "parent": a, "value": b} for k, a, b in d.config_diff],
        "train_logs": d.train_logs,
        "events": [{"id": e.id, "ts": e.ts, "kind": e.kind, "actor": e.actor, "reason": e.reason,
                    "metrics": e.metrics} for e in d.events],
        "reflections": {"total": d.reflections.total, "fixed": d.reflections.fixed,
                        "unlinked": d.reflections.unlinked,
                        "by_instruction": [{"instruction_id": i, "n": n, "fixed": f}
                                           for i, n, f in d.reflections.by_instruction],
                        "samples": [{"fixed": _reflection(a), "not_fixed": _reflection(b)} for a, b in d.pairs]},
    })
    return row
