"""Continuous evolution over many generations: does every level keep getting better?

    python bench/long_run.py [--config bench/long_run.toml] [--generations 10] [--state DIR]
                             [--plot docs/evolution.png] [--json]

Runs the daemon in this process for `--generations` generations (a fresh state folder unless
`--state` names one to resume), then reads the store and prints, per generation: the decision,
acc@t1 / acc@t2 per level, minutes per stage. It checks the issue's bars on the result:
  - promotions: how many of the generations were promoted;
  - late gains: the model current after the last generation against the one current after
    generation 3, per level, with the policy's paired test (exact McNemar, Bonferroni over levels),
    on `--final` held-out questions per level (default 1,000: the whole of each embedded level's split;
    late in a lineage both models are near the ceiling, and the first look's 400 cannot show a
    one-point gain); the evaluation reuses the questions both models already answered;
  - no forgetting: the largest drop of any level along the main line (each promotion against the
    generation it replaced, as the deciding look measured both on the same questions), for acc@t1 and acc@t2;
and draws acc@t1 and acc@t2 per level across generations, promotions marked (`--plot`).
Wall time and peak memory are printed too; give them with `bench/calibrate.py`'s figure.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from evolver.config import LoadedConfig, load_config
from evolver.states import STAGES, EvalProtocol, EventKind

ROOT = Path(__file__).resolve().parents[1]


def current_after(store: Any, k: int) -> int:
    """The generation served once generation `k` was decided: the latest promotion up to `k` (0 = the base)."""
    ids = [e.generation_id for e in store.events() if e.kind in (EventKind.PROMOTED, EventKind.MANUAL_PROMOTE)
           and e.generation_id is not None and e.generation_id <= k]
    return max(ids, default=0)


def unit_outcomes(ctx: Any, generation: int, primaries: tuple[str, ...], limit: int | None) -> dict[str, dict[int, bool]]:
    """'unit metric' -> per-question outcomes, for each unit and primary metric (`limit` questions per level)."""
    from evolver.stages.decide import scores

    return {f"{u} {m}": dict(o) for u, s in scores(ctx, generation, primaries, limit=limit).benchmarks.items()
            for m, o in s.by_metric.items()}


def analyse(cfg: LoadedConfig, store: Any, backends: Any, generations: int, final: int | None) -> dict[str, Any]:
    from evolver.context import StageContext
    from evolver.policy.rules import load_policy
    from evolver.policy.stats import mcnemar

    policy = load_policy(cfg.resolve(cfg.config.policy.file))
    rows = []
    for g in store.generations():
        metrics: dict[str, dict[str, float]] = {}
        for r in store.eval_results(g.id):
            if r.protocol == EvalProtocol.STANDARD and r.metric in ("acc@t1", "acc@t2"):
                metrics.setdefault(r.benchmark, {})[r.metric] = r.value
        phases = {p.name: p for p in store.phases(g.id)}
        minutes = {s: round(((p.finished_at or 0) - (p.started_at or 0)) / 60, 2) for s in STAGES
                   if (p := phases.get(s)) is not None and p.finished_at}
        rows.append({"generation": g.id, "parent": g.parent_id, "status": g.status, "metrics": metrics,
                     "minutes": minutes})
    promoted = [r["generation"] for r in rows if r["status"] == "promoted"]
    ctx = StageContext(cfg, store, 0, None, backends)
    early, late = current_after(store, 3), current_after(store, generations)
    tests: dict[str, dict[str, Any]] = {}
    if early != late:
        a, b = (unit_outcomes(ctx, g, policy.primaries, final) for g in (late, early))
        units = sorted(set(a) & set(b))
        alpha = policy.alpha / max(len(units), 1)
        for u in units:
            t = mcnemar(a[u], b[u])
            tests[u] = {"late": sum(a[u].values()) / max(len(a[u]), 1), "early": sum(b[u].values()) / max(len(b[u]), 1),
                        "p": t.p, "wins": t.paired.cand_only, "losses": t.paired.inc_only,
                        "significant": t.paired.cand_only > t.paired.inc_only and t.p < alpha}
    drops: dict[str, float] = {}  # from each promotion's own comparison: the look that decided, same questions
    for e in store.events():
        if e.kind != EventKind.PROMOTED or not e.metrics:
            continue
        for unit, ms in (json.loads(e.metrics).get("deltas") or {}).items():
            for metric, d in ms.items():
                if metric in ("acc@t1", "acc@t2"):
                    key = f"{unit} {metric}"
                    drops[key] = max(drops.get(key, 0.0), -float(d))
    return {"rows": rows, "promoted": promoted, "early": early, "late": late, "tests": tests,
            "worst_drop": max(drops.values(), default=0.0), "drops": drops}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "bench" / "long_run.toml"))
    ap.add_argument("--generations", type=int, default=10)
    ap.add_argument("--state", default=None, help="State folder (default: a fresh temporary one).")
    ap.add_argument("--plot", default=None, help="Write the per-level picture here (e.g. docs/evolution.png).")
    ap.add_argument("--final", type=int, default=1000,
                    help="Held-out questions per level for the late-gains test (0 = the first look's).")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from evolver.backends.holder import BackendHolder
    from evolver.daemon.runner import Daemon
    from evolver.store import Store

    base = load_config(args.config)
    data = base.config.model_dump(mode="json")
    data["state_dir"] = args.state or tempfile.mkdtemp(prefix="evolver-long-run-")
    cfg = LoadedConfig(type(base.config).model_validate(data), base.path)
    t0 = time.time()
    last: dict[str, float] = {}

    def progress(label: str, done: int, total: int, **counts: object) -> None:  # one line a minute in a log
        now = time.time()
        if now - last.get(label, 0) > 60 or done == total:
            last[label] = now
            print(f"[{(now - t0) / 60:5.1f} min] {label} {done}/{total}", flush=True)

    backends = BackendHolder(cfg)
    result = Daemon(cfg, args.generations, progress, backends).run(signals=True)
    wall = time.time() - t0
    with Store.open(cfg.state_dir / "evolver.db") as store:
        out = analyse(cfg, store, backends, args.generations, args.final or None)
        out["final_min"] = round((time.time() - t0 - wall) / 60, 1)
        if args.plot:
            from evolver.cli.lineage_view import read_lineage
            from evolver.views.plot import plot_accuracy

            plot_accuracy(read_lineage(store, None), Path(args.plot))
    backends.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.update(state=str(cfg.state_dir), wall_min=round(wall / 60, 1), peak_rss_mb=round(peak), fatal=result.fatal)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return
    print(f"\n{len(out['rows']) - 1} generations in {out['wall_min']} min, peak RSS {out['peak_rss_mb']} MB;"
          f" promoted {len(out['promoted'])}: {out['promoted']}")
    for r in out["rows"]:
        levels = "  ".join(f"{u} {100 * m.get('acc@t1', 0):.1f}/{100 * m.get('acc@t2', 0):.1f}"
                           for u, m in sorted(r["metrics"].items()))
        mins = " ".join(f"{s}={v}" for s, v in r["minutes"].items())
        print(f"gen {r['generation']:>2} {r['status']:<9} {levels}  | {mins}")
    per = args.final or "the first look's"
    print(f"current after gen 3: gen {out['early']}; after gen {args.generations}: gen {out['late']}"
          f" ({per} questions per level; {out['final_min']} min)")
    for u, t in out["tests"].items():
        print(f"  {u}: {100 * t['early']:.1f} -> {100 * t['late']:.1f} (+{t['wins']}/-{t['losses']}, p={t['p']:.2g})"
              f" {'significant' if t['significant'] else 'NOT significant'}")
    print(f"largest drop along the main line: {out['worst_drop']:.1f} points")


if __name__ == "__main__":
    main()
