"""The decide stage's second look: a promising but not yet significant gain is looked at again, on more questions."""

from __future__ import annotations

from evolver.policy.decide import BenchmarkScores, Scores, decide
from evolver.policy.rules import Policy
from evolver.stages.decide import promising


def _side(gen: int, right: int, n: int, status: str = "evaluated") -> Scores:
    outcomes = {q: q < right for q in range(n)}
    acc = right / n
    return Scores(gen, status, {"arith": BenchmarkScores({"acc@t1": 0.5, "acc@t2": acc}, outcomes)})


def test_a_small_significant_gain_is_not_promising_it_is_promoted() -> None:
    policy = Policy(confirm=1000)
    d = decide(_side(2, 300, 400), _side(1, 250, 400), policy)
    assert d.promote and not promising(d, policy)


def test_a_gain_above_the_margin_without_significance_earns_a_second_look() -> None:
    policy = Policy(confirm=1000)
    half = policy.model_copy(update={"alpha": policy.alpha / 2})
    first = decide(_side(2, 206, 400), _side(1, 200, 400), half)  # +1.5 points: 6 questions, not significant
    assert not first.promote and "not significant" in first.reason and promising(first, policy)
    second = decide(_side(2, 530, 1000), _side(1, 500, 1000), half)  # the same trend on 1,000 questions
    assert second.promote
    assert not promising(first, policy.model_copy(update={"confirm": 0}))  # one look when the policy says so


def test_a_regression_or_a_gain_below_the_margin_gets_no_second_look() -> None:
    policy = Policy(confirm=1000, margin=1.0)
    below = decide(_side(2, 202, 400), _side(1, 200, 400), policy)  # +0.5 points
    assert not below.promote and not promising(below, policy)
    cand = Scores(2, "evaluated", {"arith": BenchmarkScores({"acc@t1": 0.40, "acc@t2": 0.6}, {})})
    inc = Scores(1, "evaluated", {"arith": BenchmarkScores({"acc@t1": 0.50, "acc@t2": 0.5}, {})})
    regressed = decide(cand, inc, policy)
    assert regressed.reason.startswith("regression") and not promising(regressed, policy)


def test_a_small_drop_beside_a_gain_is_looked_at_again_when_the_policy_allows() -> None:
    def side(gen: int, t1: float, t2: float) -> Scores:
        return Scores(gen, "evaluated", {"arith": BenchmarkScores({"acc@t1": t1, "acc@t2": t2}, {})})

    policy = Policy(confirm=1000, t1_max_drop=2.0, max_regression=2.0, confirm_drop=2.0)
    small = decide(side(2, 0.470, 0.60), side(1, 0.500, 0.50), policy)  # acc@t1 -3.0: over 2, within 2 x 2
    assert small.reason.startswith("regression") and promising(small, policy)
    assert not promising(small, policy.model_copy(update={"confirm_drop": 1.0}))  # a drop over its limit rejects at once
    large = decide(side(2, 0.450, 0.60), side(1, 0.500, 0.50), policy)  # -5.0: beyond twice the limit
    assert large.reason.startswith("regression") and not promising(large, policy)
    flat = decide(side(2, 0.470, 0.505), side(1, 0.500, 0.50), policy)  # a small drop and no gain of the margin
    assert not promising(flat, policy)
