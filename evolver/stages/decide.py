"""Stage 6, decide: compare the candidate with the incumbent on the same questions, then promote or reject.

Both sides are read from their evaluations under today's settings (the evaluate stage made them;
here they are cache hits), unit by unit: the suite and each of its levels, so the policy's paired
test and no-regression guard see every level. Idempotent: a generation that already carries its
decision returns it without deciding again (a crash between the decision and the phase mark), which
makes the decision and the phase's done mark as good as one transaction (tests/test_faults.py).
"""

from __future__ import annotations

import json
from typing import Any

from evolver.context import StageContext, StageResult
from evolver.evaluation.outcomes import by_unit, outcomes, question_levels
from evolver.evaluation.run import evaluate
from evolver.policy.actions import apply
from evolver.policy.decide import BenchmarkScores, Scores, decide
from evolver.policy.rules import load_policy
from evolver.states import EvalProtocol, EventKind, PointerName

DECIDED = (EventKind.PROMOTED, EventKind.REJECTED, EventKind.MANUAL_PROMOTE)  # a verdict on this generation


def scores(ctx: StageContext, generation: int, primary: str) -> Scores:
    """A generation's standard-protocol metrics and per-question outcomes of `primary`, per unit."""
    g = ctx.store.generation(generation)
    assert g is not None
    benches: dict[str, BenchmarkScores] = {}
    rounds = ctx.cfg.config.evaluation.max_rounds
    for suite in ctx.cfg.config.evaluation.benchmarks:
        ev = evaluate(ctx, suite, generation)
        metrics: dict[str, dict[str, float]] = {}
        for r in ctx.store.eval_results(generation, key=ev.key):
            if r.protocol == EvalProtocol.STANDARD:
                metrics.setdefault(r.benchmark, {})[r.metric] = r.value
        result = outcomes(ctx.store, generation, suite, EvalProtocol.STANDARD, ev.key, rounds)
        levels = question_levels(ctx.store, list(result.get("acc@t1", {})))
        for unit, per in by_unit(suite, result, levels).items():
            benches[unit] = BenchmarkScores(metrics.get(unit, {}), per.get(primary, {}))
    return Scores(generation, g.status, benches)


def recorded(ctx: StageContext) -> dict[str, Any] | None:
    """The decision this generation already carries, if any: read from the append-only events, so it
    holds whatever happened to the generation since (a rollback after a crash before the phase mark)."""
    for e in ctx.store.events(ctx.generation):  # newest first
        if e.kind in DECIDED:
            m = json.loads(e.metrics or "{}")
            return {"decision": "reject" if e.kind == EventKind.REJECTED else "promote", "reason": e.reason,
                    "moved": (m.get("current") or {}).get("to") == ctx.generation, "incumbent": m.get("incumbent"),
                    "recorded": True}
    return None


def run(ctx: StageContext) -> StageResult:
    done = recorded(ctx)
    if done is not None:
        return StageResult(done)
    policy = load_policy(ctx.cfg.resolve(ctx.cfg.config.policy.file))
    incumbent = ctx.store.pointer(PointerName.CURRENT)
    cand = scores(ctx, ctx.generation, policy.primary)
    inc = scores(ctx, incumbent, policy.primary) if incumbent is not None else None
    decision = decide(cand, inc, policy)
    moved = apply(ctx.store, ctx.generation, decision, actor="policy")
    return StageResult({"decision": decision.kind, "reason": decision.reason, "moved": moved, "incumbent": incumbent})
