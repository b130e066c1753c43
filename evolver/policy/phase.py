"""The decide phase: compare the candidate with the incumbent on the same questions, then promote or reject."""

from __future__ import annotations

from typing import Any

from evolver.context import PhaseContext
from evolver.evaluation.run import outcomes
from evolver.policy.actions import apply
from evolver.policy.decide import BenchmarkScores, Scores, decide
from evolver.policy.rules import load_policy
from evolver.store import Store


def standard_scores(store: Store, gen: int, primary: str, max_rounds: int) -> Scores:
    """A generation's standard-protocol metrics and per-question outcomes of the primary metric."""
    g = store.generation(gen)
    assert g is not None
    benches: dict[str, BenchmarkScores] = {}
    for r in store.eval_results(gen):
        if r.protocol == "standard":
            benches.setdefault(r.benchmark, BenchmarkScores({}, {}))
            benches[r.benchmark].metrics[r.metric] = r.value  # type: ignore[index]
    for b in benches:
        o = outcomes(store, gen, b, "standard", max_rounds).get(primary, {})
        benches[b] = BenchmarkScores(benches[b].metrics, o)
    return Scores(gen, g.status, benches)


def run(ctx: PhaseContext) -> dict[str, Any]:
    store, c = ctx.store, ctx.cfg.config
    policy = load_policy(ctx.cfg.resolve(c.policy.file))
    rounds = c.evaluation.max_rounds
    incumbent = store.pointer("current")
    cand = standard_scores(store, ctx.generation, policy.primary, rounds)
    inc = standard_scores(store, incumbent, policy.primary, rounds) if incumbent is not None else None
    decision = decide(cand, inc, policy)
    moved = apply(store, ctx.generation, decision, actor="policy")
    return {"decision": decision.kind, "reason": decision.reason, "moved": moved, "incumbent": incumbent}
