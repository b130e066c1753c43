"""The evaluate phase: acc@t1 and acc@t2 on held-out suites, greedy, cached in the store.

Two protocols per suite:
- 'standard': the generation answers, reflects on its failures and retries (acc@t1, acc@t2).
- 'paper': trial 1 is held fixed at generation 0's answers (as in ReflectEvo), so acc@t2
  measures the reflection skill alone.
Results are keyed by (generation, suite, protocol, metric, eval-config hash): re-running is free.
"""

from __future__ import annotations

from typing import Any

from evolver.backends.base import Backend, Sampling
from evolver.context import PhaseContext
from evolver.reflection.common import adapter_for, instruction_pool, load_task, register_items, suite_limit
from evolver.reflection.engine import LoopSpec, fixed_picker, run_loop
from evolver.store import Store, canonical_hash

BASE_GENERATION = 0


def purpose(suite: str, protocol: str) -> str:
    return f"eval:{suite}" if protocol == "standard" else f"eval-fixed:{suite}"


def eval_hash(ctx: PhaseContext, suite: str) -> str:
    """What makes two evaluations comparable: suite, rounds, decoding, instruction, cap, seed."""
    c = ctx.cfg.config
    return canonical_hash({
        "suite": suite, "rounds": c.evaluation.max_rounds, "instruction": c.evaluation.instruction,
        "limit": suite_limit(ctx.cfg, suite), "trial_tokens": c.generation.trial.max_new_tokens,
        "reflect_tokens": c.generation.reflection.max_new_tokens, "seed": c.seed, "model": c.model.base,
    })


def outcomes(store: Store, generation: int, suite: str, protocol: str, max_rounds: int) -> dict[str, dict[int, bool]]:
    """Per-question results: {'acc@t1': {qid: ok}, 'acc@t2': {qid: ok}} along branch 0."""
    rows = store.attempts(generation, purpose(suite, protocol))
    if protocol == "paper":
        base = {a.question_id: a for a in store.attempts(BASE_GENERATION, purpose(suite, "standard")) if a.trial == 1}
        t1 = {q: bool(a.correct) for q, a in base.items()}
    else:
        t1 = {a.question_id: bool(a.correct) for a in rows if a.trial == 1 and a.branch == 0}
    t2 = dict(t1)
    for a in rows:
        if a.branch == 0 and 2 <= a.trial <= max_rounds + 1 and a.correct and a.question_id in t2:
            t2[a.question_id] = True
    return {"acc@t1": t1, "acc@t2": t2}


def _metrics(store: Store, generation: int, suite: str, protocol: str, max_rounds: int) -> dict[str, tuple[float, int]]:
    o = outcomes(store, generation, suite, protocol, max_rounds)
    n = len(o["acc@t1"])
    out = {m: (sum(v.values()) / n if n else 0.0, n) for m, v in o.items()}
    if protocol == "standard":
        t1 = [a for a in store.attempts(generation, purpose(suite, protocol)) if a.trial == 1]
        out["parse_rate"] = (sum(a.reason != "unparsed" for a in t1) / max(len(t1), 1), len(t1))
    return out


def evaluate_suite(ctx: PhaseContext, suite: str, backend: Backend) -> dict[str, Any]:
    c = ctx.cfg.config
    store, gen = ctx.store, ctx.generation
    key = eval_hash(ctx, suite)
    cached = {(r.protocol, r.metric): r.value for r in store.eval_results(gen, suite) if r.config_hash == key}
    protocols = ["standard"] + (["paper"] if c.evaluation.paper_protocol and gen != BASE_GENERATION else [])
    if all((p, "acc@t2") in cached for p in protocols):
        return {p: {m: v for (pp, m), v in cached.items() if pp == p} for p in protocols}
    task = load_task(ctx.cfg, suite)
    items = register_items(store, task, task.load("test", suite_limit(ctx.cfg, suite)))
    pool = {i.id: i for i in instruction_pool(ctx.cfg)}
    if c.evaluation.instruction not in pool:
        raise ValueError(f"evaluation.instruction: unknown instruction id {c.evaluation.instruction!r}")
    ins = pool[c.evaluation.instruction]
    greedy = Sampling(0.0, 1.0, c.generation.trial.max_new_tokens)
    greedy_r = Sampling(0.0, 1.0, c.generation.reflection.max_new_tokens)
    adapter = adapter_for(store, gen)
    result: dict[str, Any] = {}
    for protocol in protocols:
        fixed = None
        if protocol == "paper":
            base = [a for a in store.attempts(BASE_GENERATION, purpose(suite, "standard")) if a.trial == 1]
            fixed = {a.question_id: a.id for a in base if a.question_id in items}
            if not fixed:
                raise RuntimeError(f"paper protocol on {suite}: generation 0 has not been evaluated")
        spec = LoopSpec(purpose=purpose(suite, protocol), k=1, max_rounds=c.evaluation.max_rounds, trial=greedy,
                        reflect=greedy_r, pick=fixed_picker(ins), seed=c.seed, instructions={ins.id: ins},
                        fixed_trial1=fixed)
        run_loop(store, backend, task, items, gen, ctx.model_ref, adapter, spec,
                 lambda label, d, t, p=protocol: ctx.progress(f"eval {suite} {p} {label}", d, t), ctx.check_stop)
        metrics = _metrics(store, gen, suite, protocol, c.evaluation.max_rounds)
        store.put_eval_results(gen, suite, protocol, key, metrics)
        result[protocol] = {m: v for m, (v, _n) in metrics.items()}
    return result


def run(ctx: PhaseContext, backend: Backend | None = None) -> dict[str, Any]:
    """Evaluate this generation on every configured suite."""
    own = backend is None
    if backend is None:
        from evolver.backends.factory import make_backend

        backend = make_backend(ctx.cfg)
    try:
        return {s: evaluate_suite(ctx, s, backend) for s in ctx.cfg.config.evaluation.benchmarks}
    finally:
        if own:
            backend.close()
