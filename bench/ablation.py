"""Where does the gain come from? Each training variant as the daemon would run it, from the same generation 0.

Each variant is a lineage of `--generations` generations (default 3, the main job's length) under the
configuration's schedule and policy, in a state folder of its own; generation 1 of every variant
draws the same pool from the same generation-0 model (seeds do not depend on the training settings),
so with `--generations 1` the variants differ in their training alone. Variants:
  (a)  the method as configured (defaults: SFT on D+, R1 and T1, then DPO on D±)
  (a') SFT on D+ only                             (the reflection skill alone, no solver data)
  (b)  SFT on all reflections, D+ and D- together (no verifier filtering)
  (c)  SFT on correct answers, no reflection      (rejection-sampling fine-tuning; iterated, STaR):
       trial-1-correct answers plus the correct retries, each after its question
  (c') SFT on trial-1-correct answers only         (plain rejection sampling; on the embedded world a
       retry is written as an edit of trial 1, so (c) teaches that format as an answer)
  (d)  no training
and print, for the generation each lineage ends on (its `current` pointer: a rejected candidate is not
served), held-out acc@t1, acc@t2 and the paper-protocol acc@t2 (trial 1 fixed at generation 0), which
measures the reflection skill alone, on the first suite's own unit (every level together).

    python bench/ablation.py [--config evolver.toml] [--state DIR] [--generations 3] [--only a,c] [--json]

`--state DIR` keeps each variant in DIR/<tag>; a variant whose lineage already holds `--generations`
generations is read, not rerun.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from evolver.config import LoadedConfig, load_config
from evolver.states import BASE_GENERATION, GenStatus, PointerName

DECIDED = (GenStatus.PROMOTED, GenStatus.REJECTED, GenStatus.ROLLED_BACK)

VARIANTS: dict[str, dict | None] = {
    "(a) the method: SFT on D+, R1 and T1, then DPO on D±": {"sft": {}, "dpo": {}},
    "(a') SFT on D+ only (reflection skill alone)": {"sft": {"data": ["D+"]}, "dpo": {"enabled": False}},
    "(b) SFT on D+ and D- (unfiltered)": {"sft": {"data": ["D+", "D-"]}, "dpo": {"enabled": False}},
    "(c) SFT on correct answers (RFT, STaR)": {"sft": {"mode": "answers", "data": ["D+", "T1"]},
                                               "dpo": {"enabled": False}},
    "(c') SFT on correct first trials (RFT on T1)": {"sft": {"mode": "answers", "data": ["T1"]},
                                                     "dpo": {"enabled": False}},
    "(d) no training": None,
}


def tag(name: str) -> str:
    """'(a') SFT D+ then DPO D±' -> "a'"."""
    return name[1:name.index(")")]


def variant_config(base: LoadedConfig, over: dict | None, state: Path) -> LoadedConfig:
    data = base.config.model_dump(mode="json")
    data["state_dir"] = str(state)
    if over:
        data["training"]["sft"].update(over["sft"])
        data["training"]["dpo"].update(over["dpo"])
    return LoadedConfig(type(base.config).model_validate(data), base.path)


def run_variant(cfg: LoadedConfig, train: bool, generations: int, log: Console) -> dict:
    """The variant's lineage (resumed or read when its store holds it already), then its current generation's report."""
    from evolver.backends.holder import BackendHolder
    from evolver.context import StageContext
    from evolver.daemon.cycle import ensure_base
    from evolver.daemon.runner import Daemon
    from evolver.evaluation.run import evaluate, stored_report
    from evolver.store import Store

    backends = BackendHolder(cfg)
    t0 = time.time()
    with Store.open(cfg.state_dir / "evolver.db") as store:
        ensure_base(StageContext(cfg, store, 0, None, backends))
        have = len([g for g in store.generations() if g.id != BASE_GENERATION and g.status in DECIDED])
    if train and have < generations:
        def progress(label: str, done: int, total: int, **_: object) -> None:
            if done == total:
                log.print(f"  [{(time.time() - t0) / 60:5.1f} min] {label} {done}/{total}")

        result = Daemon(cfg, generations - have, progress, backends).run(signals=True)
        if result.fatal:
            raise SystemExit(f"ablation: the lineage in {cfg.state_dir} failed: {result.fatal}")
    with Store.open(cfg.state_dir / "evolver.db") as store:
        current = store.pointer(PointerName.CURRENT) or BASE_GENERATION
        decided = {g.id: g.status for g in store.generations() if g.id != BASE_GENERATION}
        ctx = StageContext(cfg, store, current, None, backends)
        bench = cfg.config.evaluation.benchmarks[0]
        report = stored_report(ctx, evaluate(ctx, bench, current))[bench]  # the decide stage's evaluation
    backends.close()
    paper = report.get("paper", {}).get("acc@t2")  # generation 0's trial 1 is its own: paper = standard
    return {"current": current, "generations": decided, "acc@t1": report["standard"]["acc@t1"],
            "acc@t2": report["standard"]["acc@t2"],
            "paper acc@t2": report["standard"]["acc@t2"] if current == BASE_GENERATION else paper,
            "minutes": round((time.time() - t0) / 60, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "evolver.toml"))
    ap.add_argument("--state", default=None, help="Folder of the variants' state folders (default: a temporary one).")
    ap.add_argument("--generations", type=int, default=3, help="Generations of each variant's lineage.")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--only", default="", help="Comma-separated variant tags to run, e.g. \"a',d\" (default: all).")
    args = ap.parse_args()
    only = {t.strip() for t in args.only.split(",") if t.strip()}
    unknown = only - {tag(n) for n in VARIANTS}
    if unknown:
        ap.error(f"--only: unknown variant(s) {sorted(unknown)}; choose from {[tag(n) for n in VARIANTS]}")
    if args.generations < 1:
        ap.error("--generations: at least 1")
    base = load_config(args.config)
    state = Path(args.state or tempfile.mkdtemp(prefix="evolver-ablation-"))
    log = Console(stderr=True)
    results = []
    for name, over in VARIANTS.items():
        if only and tag(name) not in only:
            continue
        log.print(f"{name}: {args.generations} generation(s) in {state / tag(name)}")
        cfg = variant_config(base, over, state / tag(name))
        results.append({"variant": name, **run_variant(cfg, over is not None, args.generations, log)})
    out = {"state": str(state), "generations": args.generations, "results": results}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    t = Table(title=f"ablation: each variant's lineage of {args.generations} generation(s) from generation 0; "
                    f"the generation it ends on (current)")
    for c in ("variant", "promoted", "current", "acc@t1", "acc@t2", "paper acc@t2", "min"):
        t.add_column(c, justify="right" if c != "variant" else "left")
    for r in results:
        fmt = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
        promoted = ",".join(str(g) for g, st in sorted(r["generations"].items()) if st == GenStatus.PROMOTED)
        t.add_row(r["variant"], promoted or "-", str(r["current"]), fmt(r["acc@t1"]), fmt(r["acc@t2"]), fmt(r["paper acc@t2"]),
                  str(r["minutes"]))
    Console().print(t)


if __name__ == "__main__":
    main()
