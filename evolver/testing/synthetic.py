"""Synthetic stores for the views' tests, bench and docs: many generations, no model.

Everything goes through the Store API and evolver.policy.actions (the same writes the daemon
makes), on a fake clock, so the lineage looks like a real one: promotions with paired tests,
rejections, failures, a rollback, dataset snapshots, training logs and reflections.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from evolver.policy.actions import adopt_base, apply, rollback
from evolver.policy.decide import Decision
from evolver.states import (POOL_PURPOSE, STAGES, TRAINING_STAGES, EvalProtocol, EventKind, GenStatus, PhaseStatus,
                            PointerName, Stage, gen_name)
from evolver.store import Store

# Seconds each stage takes on the fake clock (±20 %).
SECONDS = {Stage.GENERATE: 900, Stage.HARVEST: 30, Stage.SFT: 480, Stage.DPO: 300, Stage.EVALUATE: 600, Stage.DECIDE: 1}
INSTRUCTIONS = ("verify-01", "verify-04", "diagnose-02", "diagnose-07", "plan-03", "plan-05")


class Clock:
    """A settable clock: the store stamps rows with it, so builds are reproducible."""

    def __init__(self, t: float = 1_767_225_600.0) -> None:  # 2026-01-01 00:00 UTC
        self.t = t

    def __call__(self) -> float:
        return self.t

    def tick(self, seconds: float) -> None:
        self.t += seconds


def _config(lr: float, pool_size: int = 600) -> str:
    return json.dumps({"seed": 0, "model": {"base": "tiny-llama"},
                       "reflection": {"task": "arith", "pool_size": pool_size, "k": 4},
                       "training": {"lineage": "continue", "sft": {"learning_rate": lr, "epochs": 1},
                                    "dpo": {"beta": 0.1, "learning_rate": lr / 4}},
                       "evaluation": {"benchmarks": ["arith", "gsm8k"], "max_rounds": 1}})


def _eval(store: Store, gen: int, acc: dict[str, tuple[float, float]], n: int = 200, lean: bool = False) -> None:
    for bench, (t1, t2) in acc.items():
        store.put_eval_results(gen, bench, EvalProtocol.STANDARD, "eval", {"acc@t1": (t1, n), "acc@t2": (t2, n),
                                                               "parse_rate": (0.97, n)})
        if not lean:
            store.put_eval_results(gen, bench, EvalProtocol.PAPER, "eval", {"acc@t1": (acc[bench][0] * 0.9, n),
                                                                "acc@t2": (max(t2 - 0.02, 0.0), n)})


def add_reflections(store: Store, gen: int, questions: int = 12, k: int = 4, seed: int = 0) -> None:
    """A pool of failed answers, k reflections each, and the retries they led to (some fixed)."""
    rng = random.Random(seed + gen)
    qids = store.upsert_questions([{"source": "arith", "external_id": f"arith-{gen}-{i}", "split": "train",
                                    "text": f"What is {100 + i} + {27 * i}?", "gold": str(100 + 28 * i)}
                                   for i in range(questions)])
    common = {"generation_id": gen, "purpose": POOL_PURPOSE, "backend": "transformers", "model_ref": gen_name(gen),
              "sampling": "{}", "reason": "wrong"}
    store.insert_attempts([{**common, "question_id": q, "trial": 1, "branch": 0, "seed": 1, "prompt": "Q",
                            "output": "I think 17. Finish[17]", "answer": "17", "correct": False}
                           for q in qids.values()])
    firsts = {a.question_id: a.id for a in store.attempts(gen, POOL_PURPOSE) if a.trial == 1}
    texts = ("I added the tens before carrying the units; the carry belongs to the tens column.",
             "Check each column from the right: 7 + 5 = 12, write 2, carry 1.",
             "The answer is probably right; try again with the same steps.",
             "I should recompute more carefully.")
    store.insert_reflections([{**common, "attempt_id": firsts[q], "branch": b, "instruction_id": rng.choice(INSTRUCTIONS),
                               "seed": b, "prompt": "reflect", "text": texts[(b + q) % len(texts)], "tokens_out": 20}
                              for q in qids.values() for b in range(k)])
    oks = {(r.attempt_id, r.branch): rng.random() < 0.35 for r in store.reflections(gen, POOL_PURPOSE)}
    store.insert_attempts([{**common, "question_id": q, "trial": 2, "branch": b, "seed": 2, "prompt": "Q2",
                            "output": "Finish[x]", "answer": "x", "correct": oks[(firsts[q], b)]}
                           for q in qids.values() for b in range(k)])
    seconds = {(a.question_id, a.branch): a.id for a in store.attempts(gen, POOL_PURPOSE) if a.trial == 2}
    by_attempt = {v: q for q, v in firsts.items()}
    store.link_reflections([(r.id, seconds[(by_attempt[r.attempt_id], r.branch)], oks[(r.attempt_id, r.branch)])
                            for r in store.reflections(gen, POOL_PURPOSE)])


def build(path: Path, generations: int = 1000, seed: int = 0, running: bool = False, reflections_for: int = 3,
          benchmarks: tuple[str, ...] = ("arith", "gsm8k"), lean: bool = False) -> Path:
    """Write a store of `generations` finished generations (the base included) to `path`.

    `running` adds one more generation, stopped half-way through its generate phase. The last
    `reflections_for` finished generations get reflections (the `show` view's samples). `lean`
    writes only the training phases, D+ and D± and the standard protocol (a quarter of the
    writes, for tests that need many generations quickly).
    """
    rng = random.Random(seed)
    clock = Clock()
    store = Store.open(path, clock=clock)
    try:
        skill = {b: (0.30 + 0.05 * i, 0.36 + 0.05 * i) for i, b in enumerate(benchmarks)}
        store.create_generation(0, None, "tiny-llama", "cfg-0", _config(2e-4), status=GenStatus.BASE)
        store.phase_start(0, Stage.EVALUATE)
        clock.tick(240)
        _eval(store, 0, skill, lean=lean)
        store.phase_finish(0, Stage.EVALUATE, detail={"seconds": 240})
        adopt_base(store, 0)
        skills, measured = {0: skill}, {0: skill}
        lr, current, next_rollback = 2e-4, 0, 120  # tracked here: reading the pointer back per generation would double the build time
        for gen in range(1, generations):
            parent = current
            if gen % 10 == 0:
                lr = rng.choice((1e-4, 2e-4, 5e-4))
            store.create_generation(gen, parent, "tiny-llama", f"cfg-{lr:g}", _config(lr))
            failed = gen % 37 == 0
            _phases(store, clock, gen, rng, failed, lean)
            if failed:
                store.update_generation(gen, status=GenStatus.FAILED, finished_at=clock(),
                                        note=f"{gen_name(gen)} sft: CUDA OOM")
                store.record_event(EventKind.FAILED, gen, "daemon",
                                   f"{gen_name(gen)} sft: TrainingError: child exited 137 (OOM)")
                continue
            # A true skill that drifts from the parent's, measured with noise: most candidates are no better.
            skills[gen] = {b: (_clip(t1 + rng.gauss(0.0, 0.006)), _clip(t2 + rng.gauss(0.0005, 0.008)))
                           for b, (t1, t2) in skills[parent].items()}
            measured[gen] = {b: (_clip(t1 + rng.gauss(0, 0.012)), _clip(t2 + rng.gauss(0, 0.015)))
                             for b, (t1, t2) in skills[gen].items()}
            _eval(store, gen, measured[gen], lean=lean)
            decision = _decision(gen, parent, measured[gen], measured[parent], rng)
            _decide(store, decision, current)
            if decision.promote:
                current = gen
            if decision.promote and gen >= next_rollback:  # now and then a person rolls a promotion back
                next_rollback += 150
                _, current = rollback(store, reason=f"{gen_name(gen)} answers worse in production logs", actor="user")
        for gen in range(max(1, generations - reflections_for), generations):
            add_reflections(store, gen, seed=seed)
        if running:
            gen = generations
            store.create_generation(gen, current, "tiny-llama", f"cfg-{lr:g}", _config(lr))
            store.phase_start(gen, Stage.GENERATE)
            clock.tick(120)
            add_reflections(store, gen, questions=8, seed=seed)
    finally:
        store.close()
    return path


def _clip(x: float) -> float:
    return min(0.9, max(0.05, x))


def _decide(store: Store, d: Decision, cur: int) -> None:
    """What evolver.policy.actions.apply writes (event, pointer, status), in one transaction."""
    with store.tx() as conn:
        payload = {**d.to_json(), "adapter": {"path": None, "sha256": None}, "pinned": None,
                   "current": {"from": cur, "to": d.candidate if d.promote else cur}}
        if d.promote:
            store.set_pointer(PointerName.CURRENT, d.candidate, conn=conn)
        store.record_event(EventKind.PROMOTED if d.promote else EventKind.REJECTED, d.candidate, "policy", d.reason,
                           payload, conn=conn)
        store.update_generation(d.candidate, conn=conn, status=GenStatus.PROMOTED if d.promote else GenStatus.REJECTED,
                                finished_at=store.clock())


def _phases(store: Store, clock: Clock, gen: int, rng: random.Random, failed: bool, lean: bool) -> None:
    for name in STAGES:
        if lean and name not in (Stage.HARVEST, *TRAINING_STAGES):
            clock.tick(600)
            continue
        store.phase_start(gen, name)
        clock.tick(SECONDS[name] * rng.uniform(0.8, 1.2))
        if name == Stage.HARVEST:
            for kind, n in (("D+", rng.randint(40, 160)), ("D±", rng.randint(20, 90)), ("Dpref", rng.randint(10, 40))):
                if lean and kind == "Dpref":
                    continue
                store.put_dataset(gen, kind, "harvest", [{"i": i} for i in range(n)])
        if name in TRAINING_STAGES:
            if failed and name == Stage.SFT:
                store.phase_finish(gen, name, PhaseStatus.FAILED, error="TrainingError: child exited 137 (OOM)")
                return
            loss0 = rng.uniform(1.2, 2.0) if name == Stage.SFT else 0.69
            store.add_train_logs(gen, name, [{"step": s, "loss": loss0 * (0.85 ** s), "learning_rate": 2e-4}
                                             for s in range(1, 9)])
            store.phase_finish(gen, name, detail={"steps": 8, "train_seconds": 400.0, "final_loss": loss0 * 0.85 ** 8,
                                                  "n_examples": 120, "device": "cpu"})
            continue
        store.phase_finish(gen, name, detail={"seconds": 60})


def _decision(gen: int, incumbent: int | None, acc: dict[str, tuple[float, float]], inc: dict[str, tuple[float, float]],
              rng: random.Random) -> Decision:
    deltas = {b: {"acc@t1": 100 * (acc[b][0] - inc[b][0]), "acc@t2": 100 * (acc[b][1] - inc[b][1])} for b in acc}
    tests = {}
    for b, d in deltas.items():
        gain = d["acc@t2"]
        p = max(1e-4, min(1.0, 0.5 * (2.718 ** (-abs(gain) / 0.8)) * rng.uniform(0.6, 1.4)))
        tests[b] = {"test": "mcnemar", "n": 200, "cand_only": 10, "inc_only": 5, "p": p, "alpha": 0.025,
                    "significant": gain > 0 and p < 0.025}
    best = max(deltas, key=lambda b: deltas[b]["acc@t2"])
    t = tests[best]
    promote = t["significant"] and deltas[best]["acc@t2"] >= 1.0
    d = deltas[best]["acc@t2"]
    reason = (f"{gen_name(gen)}: {best} acc@t2 {d:+.1f} pts (n=200, p={t['p']:.2g} {'<' if t['p'] < 0.025 else '>='} 0.025"
              f" (0.05/2 benchmarks))" + ("" if promote else "; not significant"))
    metrics = {b: {"acc@t1": a[0], "acc@t2": a[1]} for b, a in acc.items()}
    inc_metrics = {b: {"acc@t1": a[0], "acc@t2": a[1]} for b, a in inc.items()}
    return Decision("promote" if promote else "reject", reason, gen, incumbent, "default", metrics, inc_metrics, deltas,
                    tests)


def _small_config(lr: float) -> str:
    return json.dumps({"reflection": {"pool_size": 10, "k": 2}, "training": {"sft": {"learning_rate": lr}}})


def small(path: Path) -> Store:
    """base (t2 40) -> gen 1 promoted (t2 45, p=0.003) -> {gen 2 rejected, gen 3 promoted -> gen 4 failed}.

    Every phase takes a known time on the fake clock: sft 6 min + dpo 3 min = train 9.0 min.
    """
    clock = Clock()
    store = Store.open(path, clock=clock)
    store.create_generation(0, None, "tiny", "h0", _small_config(1e-4), status=GenStatus.BASE)
    store.put_eval_results(0, "arith", EvalProtocol.STANDARD, "e", {"acc@t1": (0.30, 100), "acc@t2": (0.40, 100)})
    adopt_base(store, 0)

    def child(gen: int, parent: int, t1: float, t2: float, p: float, promote: bool, lr: float = 1e-4) -> None:
        store.create_generation(gen, parent, "tiny", f"h{gen}", _small_config(lr))
        for name, minutes in ((Stage.GENERATE, 5), (Stage.HARVEST, 1), (Stage.SFT, 6), (Stage.DPO, 3),
                              (Stage.EVALUATE, 4)):
            store.phase_start(gen, name)
            if name == Stage.HARVEST:
                store.put_dataset(gen, "D+", "harvest", [{"i": i} for i in range(12 + gen)])
                store.put_dataset(gen, "D±", "harvest", [{"i": i} for i in range(5 + gen)])
            clock.tick(60 * minutes)
            store.phase_finish(gen, name, detail={"seconds": 60 * minutes})
        store.add_train_logs(gen, Stage.SFT, [{"step": s, "loss": 2.0 / s, "learning_rate": lr} for s in (1, 2, 3, 4)])
        store.put_eval_results(gen, "arith", EvalProtocol.STANDARD, "e", {"acc@t1": (t1, 100), "acc@t2": (t2, 100)})
        store.put_eval_results(gen, "arith", EvalProtocol.PAPER, "e", {"acc@t1": (0.30, 100), "acc@t2": (t2 - 0.01, 100)})
        store.update_generation(gen, status=GenStatus.EVALUATED)
        inc = store.pointer(PointerName.CURRENT)
        reason = f"{gen_name(gen)}: arith acc@t2 {'up' if promote else 'not significant'} (p={p:g})"
        apply(store, gen, Decision("promote" if promote else "reject", reason, gen, inc, "default",
                                   tests={"arith": {"test": "mcnemar", "n": 100, "p": p, "alpha": 0.05,
                                                    "significant": promote}}))

    child(1, 0, 0.31, 0.45, 0.003, True)
    child(2, 1, 0.32, 0.44, 0.41, False)
    child(3, 1, 0.33, 0.48, 0.02, True, lr=2e-4)
    store.create_generation(4, 3, "tiny", "h4", _small_config(2e-4))
    store.phase_start(4, Stage.GENERATE)
    store.phase_finish(4, Stage.GENERATE, PhaseStatus.FAILED, error="RuntimeError: out of memory")
    store.update_generation(4, status=GenStatus.FAILED, note="gen-0004 generate: RuntimeError: out of memory")
    store.record_event(EventKind.FAILED, 4, "daemon", "gen-0004 generate: RuntimeError: out of memory")
    add_reflections(store, 3, questions=6, k=2)
    return store
