"""Pure promotion and rollback decisions: evaluation numbers and a Policy in, a Decision out.

Nothing here touches the store, so every rule can be tested with literal numbers and the
same inputs always give the same decision (the bootstrap is seeded by the policy).

The rule, in order:
1. Only a generation whose status is "evaluated" can be promoted; failed, running or
   never-evaluated ones are refused with a reason that says so.
2. Any considered benchmark/metric that drops more than `max_regression` points
   (`t1_max_drop` for acc@t1) rejects the candidate, whatever it gained elsewhere.
3. A primary metric must rise by at least `margin` points on some benchmark, and the
   paired test on that benchmark must be significant at alpha / (benchmarks x primary metrics)
   (Bonferroni: adding suites or metrics must not make promotion easier by chance). With
   several primary metrics (`primary = ["acc@t2", "acc@t1"]`) a significant gain in any of them
   promotes: a model that answers more questions right at the first try is better even when
   its reflections add nothing more.

A "benchmark" here is a unit of evaluation: a suite, or one level of a suite with levels
('arith/5d'); `policy.benchmarks` names suites and selects all their units.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from evolver.errors import UsageError
from evolver.policy.rules import Policy
from evolver.policy.stats import bootstrap_ci, mcnemar
from evolver.states import gen_name, split_unit

T1 = "acc@t1"
EPS = 1e-9  # points; keeps 2.0000000001 from counting as "more than 2"


class PolicyInputError(UsageError):
    """Evaluation numbers that a policy cannot judge (e.g. an accuracy outside [0, 1])."""


@dataclass(frozen=True)
class BenchmarkScores:
    """One benchmark's aggregate metrics (fractions in [0, 1]) and per-question outcomes of the primary metric
    (`outcomes`), and of further primary metrics by name (`by_metric`)."""

    metrics: Mapping[str, float]
    outcomes: Mapping[Hashable, bool] = field(default_factory=dict)
    by_metric: Mapping[str, Mapping[Hashable, bool]] = field(default_factory=dict)

    def paired(self, metric: str, first: str) -> Mapping[Hashable, bool]:
        return self.by_metric.get(metric, self.outcomes if metric == first else {})


@dataclass(frozen=True)
class Scores:
    """What one generation brings to a decision."""

    generation: int
    status: str
    benchmarks: Mapping[str, BenchmarkScores]

    def metrics(self) -> dict[str, dict[str, float]]:
        return {b: dict(s.metrics) for b, s in self.benchmarks.items()}


@dataclass(frozen=True)
class Decision:
    kind: Literal["promote", "reject"]
    reason: str  # one line, quoting the numbers
    candidate: int
    incumbent: int | None
    policy: str
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # candidate's, fractions
    incumbent_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    deltas: dict[str, dict[str, float]] = field(default_factory=dict)  # candidate - incumbent, in points
    tests: dict[str, dict[str, Any]] = field(default_factory=dict)  # per benchmark: the paired test of `primary`
    # ("bench" for the first primary metric, "bench metric" for the others)

    @property
    def promote(self) -> bool:
        return self.kind == "promote"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _pts(delta: float) -> str:
    return f"{delta:+.1f} pts"


def _check_range(side: Scores, bench: str) -> None:
    for m, v in side.benchmarks[bench].metrics.items():
        if not 0.0 <= float(v) <= 1.0:
            raise PolicyInputError(f"{gen_name(side.generation)}: {bench}.{m} = {v} is not an accuracy in [0, 1]")


def _refusal(candidate: Scores) -> str | None:
    g = gen_name(candidate.generation)
    if candidate.status == "failed":
        return f"{g} failed; a failed generation is never promoted"
    if candidate.status != "evaluated":
        return f"{g} is {candidate.status!r}, not evaluated; only evaluated generations can be promoted"
    if not candidate.benchmarks:
        return f"{g} has no evaluation results; it cannot be promoted"
    return None


def _paired_test(cand: Mapping[Hashable, bool], inc: Mapping[Hashable, bool], policy: Policy,
                 alpha: float) -> dict[str, Any]:
    if policy.test == "mcnemar":
        r = mcnemar(cand, inc)
        pr = r.paired
        significant = pr.cand_only > pr.inc_only and r.p < alpha
        extra: dict[str, Any] = {"p": r.p}
    else:
        ci = bootstrap_ci(cand, inc, alpha=alpha, n_boot=policy.n_boot, seed=policy.seed)
        pr = ci.paired
        significant = pr.n > 0 and ci.low > 0
        extra = {"ci": [100 * ci.low, 100 * ci.high], "level": ci.level, "n_boot": ci.n_boot, "seed": ci.seed}
    return {"test": policy.test, "n": pr.n, "cand_only": pr.cand_only, "inc_only": pr.inc_only,
            "alpha": alpha, "significant": significant, **extra}


def _evidence(t: dict[str, Any], policy: Policy, n_bench: int) -> str:
    """'p=0.0003 < 0.05' or '95% CI +6.1..+18.8 pts', plus n; names the Bonferroni split when there is one."""
    n_metrics = len(policy.primaries)
    what = " x ".join(x for x in (f"{n_bench} benchmarks" if n_bench > 1 else "",
                                   f"{n_metrics} metrics" if n_metrics > 1 else "") if x)
    split = f" ({policy.alpha:g}/{what})" if what else ""
    if t["test"] == "mcnemar":
        op = "<" if t["p"] < t["alpha"] else ">="
        return f"n={t['n']}, p={t['p']:.2g} {op} {t['alpha']:.3g}{split}"
    lo, hi = t["ci"]
    return f"n={t['n']}, {100 * t['level']:.3g}% CI {lo:+.1f}..{hi:+.1f} pts{split}"


def decide(candidate: Scores, incumbent: Scores | None, policy: Policy) -> Decision:
    """Promote or reject `candidate` against the generation now current (`incumbent`)."""
    base = {"candidate": candidate.generation, "incumbent": incumbent.generation if incumbent else None,
            "policy": policy.name, "metrics": candidate.metrics()}

    def reject(reason: str, **more: Any) -> Decision:
        return Decision("reject", reason, **base, **more)

    refusal = _refusal(candidate)
    if refusal:
        return reject(refusal)
    if incumbent is None:
        if policy.first_generation == "promote":
            return Decision("promote", f"{gen_name(candidate.generation)} is the first evaluated generation and nothing"
                            " is current (first_generation = 'promote')", **base)
        return reject("nothing is current: generation 0 (the base) must be current before candidates are judged"
                      " (first_generation = 'base')")
    if incumbent.generation == candidate.generation:
        return reject(f"{gen_name(candidate.generation)} is already current")

    cg, ig = gen_name(candidate.generation), gen_name(incumbent.generation)
    benches = sorted(candidate.benchmarks.keys() & incumbent.benchmarks.keys())
    if policy.benchmarks:
        for b in policy.benchmarks:
            for side, g in ((candidate, cg), (incumbent, ig)):
                if b not in side.benchmarks:
                    return reject(f"{g} was not evaluated on {b}, which the policy requires")
        benches = [u for u in benches if split_unit(u)[0] in policy.benchmarks]
    elif not benches:
        return reject(f"no benchmark was evaluated for both {cg} and {ig}")
    for b in benches:
        _check_range(candidate, b)
        _check_range(incumbent, b)

    deltas: dict[str, dict[str, float]] = {}
    for b in benches:
        cm, im = candidate.benchmarks[b].metrics, incumbent.benchmarks[b].metrics
        deltas[b] = {m: 100 * (float(cm[m]) - float(im[m])) for m in sorted(cm.keys() & im.keys())}
    base["incumbent_metrics"] = {b: dict(incumbent.benchmarks[b].metrics) for b in benches}
    base["deltas"] = deltas

    primaries = policy.primaries
    for b in benches:
        for side, g in ((candidate, cg), (incumbent, ig)):
            for p in primaries:
                if p not in side.benchmarks[b].metrics:
                    return reject(f"{g} has no {p} on {b}")

    regressions = []
    for b in benches:
        for m, d in deltas[b].items():
            key, limit = drop_limit(policy, m)
            if d < -limit - EPS:
                regressions.append((d + limit, f"{m} {_pts(d)} on {b} exceeds {key} {limit:g}"
                                    f" ({100 * incumbent.benchmarks[b].metrics[m]:.1f} -> "
                                    f"{100 * candidate.benchmarks[b].metrics[m]:.1f})"))
    alpha = policy.alpha / (len(benches) * len(primaries))
    tests = {test_key(b, p, primaries): _paired_test(candidate.benchmarks[b].paired(p, primaries[0]),
                                                     incumbent.benchmarks[b].paired(p, primaries[0]), policy, alpha)
             for b in benches for p in primaries}
    base["tests"] = tests
    if regressions:
        regressions.sort()
        more = f" (+{len(regressions) - 1} more)" if len(regressions) > 1 else ""
        return reject(f"regression: {regressions[0][1]}{more}")

    ranked = sorted(((b, p) for b in benches for p in primaries), key=lambda bp: -deltas[bp[0]][bp[1]])
    winners = [(b, p) for b, p in ranked
               if deltas[b][p] >= policy.margin - EPS and tests[test_key(b, p, primaries)]["significant"]]
    if winners:
        b, p = winners[0]
        cm, im = candidate.benchmarks[b].metrics, incumbent.benchmarks[b].metrics
        return Decision("promote", f"{p} {_pts(deltas[b][p])} on {b} ({100 * im[p]:.1f} -> {100 * cm[p]:.1f},"
                        f" {_evidence(tests[test_key(b, p, primaries)], policy, len(benches))}), no regression",
                        **base)
    b, p = ranked[0]
    d = deltas[b][p]
    t = tests[test_key(b, p, primaries)]
    if d < policy.margin - EPS:
        return reject(f"{p} {_pts(d)} on {b} is below the {policy.margin:g}-pt margin"
                      f" ({_evidence(t, policy, len(benches))})")
    return reject(f"{p} {_pts(d)} on {b} is not significant ({_evidence(t, policy, len(benches))})")


def drop_limit(policy: Policy, metric: str) -> tuple[str, float]:
    """The policy key and the points `metric` may drop on any benchmark: acc@t1 has its own limit."""
    return ("t1_max_drop", policy.t1_max_drop) if metric == T1 else ("max_regression", policy.max_regression)


def test_key(bench: str, metric: str, primaries: tuple[str, ...]) -> str:
    """Tests are keyed by benchmark for the first primary metric (what views quote), 'bench metric' for others."""
    return bench if metric == primaries[0] else f"{bench} {metric}"


def should_rollback(current_now: Mapping[str, Mapping[str, float]],
                    current_at_promotion: Mapping[str, Mapping[str, float]], policy: Policy) -> tuple[bool, str]:
    """Whether a re-evaluation of the current generation fell more than `tolerance` points below its
    promotion-time score on a primary metric of any considered benchmark (benchmark -> metric -> value)."""
    benches = list(policy.benchmarks) or sorted(current_now.keys() & current_at_promotion.keys())
    pairs = [(b, p, float(current_now[b][p]), float(current_at_promotion[b][p])) for b in benches
             for p in policy.primaries if p in current_now.get(b, {}) and p in current_at_promotion.get(b, {})]
    if not pairs:
        return False, f"no {'/'.join(policy.primaries)} to compare with the promotion-time scores; nothing to judge"
    b, p, now, then = min(pairs, key=lambda t: t[2] - t[3])
    drop = 100 * (then - now)
    if drop > policy.tolerance + EPS:
        return True, (f"{p} on {b} fell {drop:.1f} pts since promotion ({100 * then:.1f} -> {100 * now:.1f}),"
                      f" beyond the {policy.tolerance:g}-pt tolerance")
    return False, f"{p} on {b} {_pts(-drop)} since promotion, within the {policy.tolerance:g}-pt tolerance"
