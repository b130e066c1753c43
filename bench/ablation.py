"""Where does the gain come from? One generation of each training variant from the same data.

From generation 0, with the same seeds and the same pool (one generate + harvest), train:
  (a)  the method as configured (defaults: SFT on D+, R1 and T1, then DPO on D±)
  (a') SFT on D+ only                             (the reflection skill alone, no solver data)
  (b)  SFT on all reflections, D+ and D- together (no verifier filtering)
  (c)  SFT on correct answers, no reflection      (rejection-sampling fine-tuning, STaR-like):
       trial-1-correct answers plus the correct retries, each after its question
  (c') SFT on trial-1-correct answers only         (plain rejection sampling; on the embedded world a
       retry is written as an edit of trial 1, so (c) teaches that format as an answer)
  (d)  no training
and print held-out acc@t1, acc@t2 and the paper-protocol acc@t2 (trial 1 fixed at generation 0),
which measures the reflection skill alone.

    python bench/ablation.py [--config evolver.toml] [--state DIR] [--only a,a'] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from evolver.backends.holder import BackendHolder
from evolver.config import LoadedConfig, load_config
from evolver.context import StageContext
from evolver.daemon.cycle import ensure_base, run_stage
from evolver.evaluation.run import evaluate, stored_report
from evolver.states import Stage
from evolver.store import Store

VARIANTS: dict[str, dict] = {
    "(a) the method: SFT on D+, R1 and T1, then DPO on D±": {"sft": {}, "dpo": {}},
    "(a') SFT on D+ only (reflection skill alone)": {"sft": {"data": ["D+"]}, "dpo": {"enabled": False}},
    "(b) SFT on D+ and D- (unfiltered)": {"sft": {"data": ["D+", "D-"]}, "dpo": {"enabled": False}},
    "(c) SFT on correct answers (RFT)": {"sft": {"mode": "answers", "data": ["D+", "T1"]}, "dpo": {"enabled": False}},
    "(c') SFT on correct first trials (RFT on T1)": {"sft": {"mode": "answers", "data": ["T1"]},
                                                     "dpo": {"enabled": False}},
    "(d) no training": None,
}


def tag(name: str) -> str:
    """'(a') SFT D+ then DPO D±' -> "a'"."""
    return name[1:name.index(")")]


def variant_config(base: LoadedConfig, over: dict) -> LoadedConfig:
    data = base.config.model_dump(mode="json")
    data["training"]["sft"].update(over["sft"])
    data["training"]["dpo"].update(over["dpo"])
    data["training"]["lineage"] = "restart"
    return LoadedConfig(type(base.config).model_validate(data), base.path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "evolver.toml"))
    ap.add_argument("--state", default=None, help="State dir (default: a temporary one).")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--only", default="", help="Comma-separated variant tags to run, e.g. \"a',d\" (default: all).")
    args = ap.parse_args()
    only = {t.strip() for t in args.only.split(",") if t.strip()}
    unknown = only - {tag(n) for n in VARIANTS}
    if unknown:
        ap.error(f"--only: unknown variant(s) {sorted(unknown)}; choose from {[tag(n) for n in VARIANTS]}")
    base = load_config(args.config)
    state = Path(args.state or tempfile.mkdtemp(prefix="evolver-ablation-"))
    data = base.config.model_dump(mode="json")
    data["state_dir"] = str(state)
    cfg = LoadedConfig(type(base.config).model_validate(data), base.path)
    store = Store.open(state / "evolver.db")
    backends = BackendHolder(cfg)
    stop = threading.Event()
    t0 = time.time()
    ensure_base(StageContext(cfg, store, 0, None, backends, stop))
    if store.generation(1) is None:
        store.create_generation(1, 0, "bench", cfg.hash, "{}")
    pool_ctx = StageContext(cfg, store, 1, 0, backends, stop)
    for stage in (Stage.GENERATE, Stage.HARVEST):
        run_stage(pool_ctx, stage, retries=0, backoff=0.0)
    collect_s = time.time() - t0
    snapshots = {d.kind: store.dataset_rows(d.id) for d in store.datasets(1)}
    results = []
    for i, (name, over) in enumerate(VARIANTS.items()):
        if only and tag(name) not in only:
            continue
        gid = 10 + i
        vcfg = variant_config(cfg, over) if over else cfg
        if store.generation(gid) is None:
            store.create_generation(gid, 0, "bench", vcfg.hash, json.dumps({"variant": name}))
            for kind, rows in snapshots.items():
                store.put_dataset(gid, kind, "harvest", rows)
        ctx = StageContext(vcfg, store, gid, 0, backends, stop)
        t1 = time.time()
        if over:
            for stage in (Stage.SFT, Stage.DPO):
                run_stage(ctx, stage, retries=0, backoff=0.0)
        train_s = time.time() - t1
        bench = cfg.config.evaluation.benchmarks[0]
        r = stored_report(ctx, evaluate(ctx, bench, gid))[bench]
        results.append({"variant": name, "acc@t1": r["standard"]["acc@t1"], "acc@t2": r["standard"]["acc@t2"],
                        "paper acc@t2": r.get("paper", {}).get("acc@t2"), "train_s": round(train_s, 1)})
    g0 = {r.metric: r.value for r in store.eval_results(0, bench) if r.protocol == "standard"}
    out = {"state": str(state), "collect_s": round(collect_s, 1), "gen0": g0,
           "D+": len(snapshots.get("D+", [])), "D-": len(snapshots.get("D-", [])), "D±": len(snapshots.get("D±", [])),
           "results": results}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    t = Table(title=f"ablation from gen 0 (acc@t1 {100 * g0['acc@t1']:.1f}, acc@t2 {100 * g0['acc@t2']:.1f}); "
                    f"D+ {out['D+']}, D- {out['D-']}, D± {out['D±']}")
    for c in ("variant", "acc@t1", "acc@t2", "paper acc@t2", "train s"):
        t.add_column(c, justify="right" if c != "variant" else "left")
    for r in results:
        fmt = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
        t.add_row(r["variant"], fmt(r["acc@t1"]), fmt(r["acc@t2"]), fmt(r["paper acc@t2"]), str(r["train_s"]))
    Console().print(t)
    backends.close()
    store.close()


if __name__ == "__main__":
    main()
