"""Stage 6, decide: compare the candidate with the incumbent on the same questions, then promote or reject.

Both sides are read from their evaluations under today's settings (the evaluate stage made them;
here they are cache hits), unit by unit: the suite and each of its levels, so the policy's paired
test and no-regression guard see every level. Idempotent: a generation that already carries its
decision returns it without deciding again (a crash between the decision and the phase mark), which
makes the decision and the phase's done mark as good as one transaction (tests/test_faults.py).

Late in a lineage gains are small. With `confirm` in the policy, a first look that shows a gain of at
least `margin` without significance is followed by a second, larger one, and with `confirm_drop` > 1 so
is a first look whose only objection is a small drop (within that multiple of its limit). The second
look widens only the units in question: each such drop and, when no gain is significant yet, each gain
of the margin; both generations are evaluated there on `confirm` questions per level (the first look's
questions and more, whose work is copied, not redone), the other units stand as the first look measured
them, and the policy decides again. Each look tests at alpha/2 (Bonferroni over the two looks), so two
chances to promote cost no more false promotions than one.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from evolver.context import StageContext, StageResult
from evolver.evaluation.outcomes import by_unit, outcomes, question_levels
from evolver.evaluation.run import evaluate
from evolver.policy.actions import apply
from evolver.policy.decide import EPS, BenchmarkScores, Decision, Scores, decide, drop_limit, test_key
from evolver.policy.rules import Policy, load_policy
from evolver.states import EvalProtocol, EventKind, PointerName, split_unit

DECIDED = (EventKind.PROMOTED, EventKind.REJECTED, EventKind.MANUAL_PROMOTE)  # a verdict on this generation


Widening = dict[str, frozenset[str] | None]  # suite -> the levels a second look widens (None: every level)


def scores(ctx: StageContext, generation: int, primaries: tuple[str, ...], limit: int | None = None,
           widen: Widening | None = None) -> Scores:
    """A generation's standard-protocol metrics and per-question outcomes of the primary metrics, per unit.

    With `limit`, the suites (and levels) `widen` names are read on `limit` questions per level, the rest
    on the first look's questions (`widen` None: every suite and level)."""
    g = ctx.store.generation(generation)
    assert g is not None
    benches: dict[str, BenchmarkScores] = {}
    rounds = ctx.cfg.config.evaluation.max_rounds
    for suite in ctx.cfg.config.evaluation.benchmarks:
        if limit and (widen is None or suite in widen):
            ev = evaluate(ctx, suite, generation, paper=False, limit=limit, levels=widen.get(suite) if widen else None)
        else:
            ev = evaluate(ctx, suite, generation)
        metrics: dict[str, dict[str, float]] = {}
        for r in ctx.store.eval_results(generation, key=ev.key):
            if r.protocol == EvalProtocol.STANDARD:
                metrics.setdefault(r.benchmark, {})[r.metric] = r.value
        result = outcomes(ctx.store, generation, suite, EvalProtocol.STANDARD, ev.key, rounds)
        levels = question_levels(ctx.store, list(result.get("acc@t1", {})))
        for unit, per in by_unit(suite, result, levels).items():
            benches[unit] = BenchmarkScores(metrics.get(unit, {}), per.get(primaries[0], {}),
                                            {m: per.get(m, {}) for m in primaries})
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
    look = policy.model_copy(update={"alpha": policy.alpha / 2}) if policy.confirm else policy
    cand = scores(ctx, ctx.generation, policy.primaries)
    inc = scores(ctx, incumbent, policy.primaries) if incumbent is not None else None
    decision = decide(cand, inc, look)
    looks = [{"n": _n(cand), "decision": decision.kind, "reason": decision.reason}]
    if inc is not None and promising(decision, policy):
        units = in_question(decision, policy)
        widen = widening(units)
        cand = scores(ctx, ctx.generation, policy.primaries, limit=policy.confirm, widen=widen)
        inc = scores(ctx, incumbent, policy.primaries, limit=policy.confirm, widen=widen)  # type: ignore[arg-type]
        decision = decide(cand, inc, look)
        where = f"{', '.join(units)} on {policy.confirm} questions per level"
        decision = replace(decision, reason=f"second look, {where}: {decision.reason}")
        looks.append({"n": _n(cand), "widened": units, "per_level": policy.confirm, "decision": decision.kind,
                      "reason": decision.reason})
    moved = apply(ctx.store, ctx.generation, decision, actor="policy")
    return StageResult({"decision": decision.kind, "reason": decision.reason, "moved": moved, "incumbent": incumbent,
                        "looks": looks})


def promising(decision: Decision, policy: Policy) -> bool:
    """A first look worth a second: not promoted, some unit gained at least the margin, and no drop beyond its
    limit, or (`confirm_drop` > 1) none beyond that multiple of it: on 400 questions a level's drop of 2.5
    points is 10 questions, within what two fine-tunings of one parent differ by, and the larger sample
    tells a small true drop from a large one where the first cannot."""
    if decision.promote or not policy.confirm:
        return False
    if any(delta < -drop_limit(policy, m)[1] * policy.confirm_drop - EPS
           for d in decision.deltas.values() for m, delta in d.items()):
        return False
    return any(d.get(p, 0.0) >= policy.margin for d in decision.deltas.values() for p in policy.primaries)


def in_question(decision: Decision, policy: Policy) -> list[str]:
    """The units a second look widens: each with a drop beyond its limit and, when no gain of the first look
    is significant yet, each with a gain of at least the margin on a primary metric. The others stand as the
    first look measured them: drops within the limits, and either a significant gain that already carries
    the promotion or gains below the margin, which no second look can turn into one."""
    deltas, primaries = decision.deltas, policy.primaries
    dropped = {u for u, d in deltas.items() for m, delta in d.items() if delta < -drop_limit(policy, m)[1] - EPS}
    gains = {(u, p): decision.tests.get(test_key(u, p, primaries), {}).get("significant", False)
             for u, d in deltas.items() for p in primaries if d.get(p, 0.0) >= policy.margin - EPS}
    carried = any(gains.values())
    return sorted(dropped | ({u for (u, _p), sig in gains.items() if not sig} if not carried else set()))


def widening(units: list[str]) -> Widening:
    """Units to the suites and levels they cover: a level unit ('arith/b10') widens that level, a suite's unit
    ('arith') all of its levels."""
    out: Widening = {}
    for u in units:
        suite, level = split_unit(u)
        if level is None:
            out[suite] = None
        elif suite not in out or out[suite] is not None:
            out[suite] = (out.get(suite) or frozenset()) | {level}
    return out


def _n(s: Scores) -> int:
    """Questions of the largest unit (the suites' questions over all levels)."""
    return max((len(b.outcomes) for b in s.benchmarks.values()), default=0)
