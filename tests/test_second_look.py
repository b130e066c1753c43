"""The decide stage's second look: a promising but not yet significant gain, or a small drop, is looked at again on more
questions, for the units in question alone."""

from __future__ import annotations

from collections import Counter

import pytest

from evolver.backends.holder import BackendHolder
from evolver.context import StageContext
from evolver.evaluation.outcomes import purpose
from evolver.evaluation.run import evaluate, questions
from evolver.policy.decide import BenchmarkScores, Decision, Scores, decide
from evolver.policy.rules import Policy
from evolver.stages.decide import in_question, promising, widening
from evolver.store import Store
from evolver.tasks.base import meta_level
from evolver.world import base_model_path


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


def _unit(t1: tuple[int, int], t2: tuple[int, int], n: int = 400) -> tuple[BenchmarkScores, BenchmarkScores]:
    """One unit of both sides: (candidate, incumbent) right answers out of `n` for acc@t1 and acc@t2, the
    candidate's extra right answers on questions the incumbent missed."""
    def side(r1: int, r2: int) -> BenchmarkScores:
        per = {"acc@t1": {q: q < r1 for q in range(n)}, "acc@t2": {q: q < r2 for q in range(n)}}
        return BenchmarkScores({"acc@t1": r1 / n, "acc@t2": r2 / n}, per["acc@t2"], per)
    return side(t1[0], t2[0]), side(t1[1], t2[1])


def _decide(units: dict[str, tuple[tuple[int, int], tuple[int, int]]], policy: Policy) -> Decision:
    pairs = {u: _unit(*v) for u, v in units.items()}
    cand = Scores(2, "evaluated", {u: c for u, (c, _) in pairs.items()})
    inc = Scores(1, "evaluated", {u: i for u, (_, i) in pairs.items()})
    return decide(cand, inc, policy.model_copy(update={"alpha": policy.alpha / 2}))


def test_a_second_look_widens_only_the_units_in_question() -> None:
    policy = Policy(confirm=1000, t1_max_drop=2.0, max_regression=2.0, confirm_drop=2.0)
    # b9 gains much (significant), b10 drops 3 points of acc@t1 (over 2, within twice 2), b8 gains 1.25 (not
    # significant), b7 stays flat
    d = _decide({"arith/b9": ((200, 200), (320, 200)), "arith/b10": ((188, 200), (300, 300)),
                 "arith/b8": ((200, 200), (205, 200)), "arith/b7": ((200, 200), (200, 200))}, policy)
    assert d.reason.startswith("regression") and promising(d, policy)
    # b9's gain carries the promotion if b10's drop clears: b9, b8 and b7 stand as the first look measured them
    assert in_question(d, policy) == ["arith/b10"]
    assert widening(["arith/b10"]) == {"arith": frozenset({"b10"})}
    # a gain of the margin that is not significant is in question too; a suite's own unit widens every level
    d = _decide({"arith": ((200, 200), (205, 200)), "arith/b10": ((200, 200), (205, 200))}, policy)
    assert not d.promote and in_question(d, policy) == ["arith", "arith/b10"]
    assert widening(["arith", "arith/b10"]) == {"arith": None} == widening(["arith/b10", "arith"])
    assert widening(["arith/b10", "arith/b7", "logic"]) == {"arith": frozenset({"b10", "b7"}), "logic": None}


def test_the_widened_levels_hold_the_first_looks_questions_and_more(world_config) -> None:  # noqa: ANN001
    cfg = world_config("[evaluation]\nlimit = 30\n")
    _, first = questions(cfg, "arith")
    _, wide = questions(cfg, "arith", 70, {"b10", "b7"})
    _, every = questions(cfg, "arith", 70)
    count = Counter(meta_level(it.meta) for it in wide.items)
    assert count == {"b10": 70, "b7": 70, "b9": 30, "b8": 30, "b6": 30}
    assert {it.id for it in first.items} < {it.id for it in wide.items} < {it.id for it in every.items}
    assert len(every.items) == 5 * 70


@pytest.mark.skipif(not (base_model_path() / "config.json").is_file(), reason="no shipped world model")
def test_a_wider_look_answers_only_its_new_questions(world_config) -> None:  # noqa: ANN001
    """The second look's evaluation copies the first look's work on the questions both hold (greedy: the same
    answers) and answers only the new ones, with every reflection linked to the copies of its attempts."""
    cfg = world_config("[evaluation]\nlimit = 6\npaper_protocol = false\n")
    store = Store.open(cfg.state_dir / "evolver.db")
    store.create_generation(0, None, "embedded", "h", "{}", status="base")
    ctx = StageContext(cfg, store, 0, None, BackendHolder(cfg))
    first = evaluate(ctx, "arith", 0)
    old = store.attempts(0, purpose("arith", "standard", first.key))
    edited = old[0].question_id  # as if the suite had been edited in place: its text is no longer the stored one
    with store.tx() as c:
        c.exec_driver_sql("UPDATE questions SET text = text || '?' WHERE id = ?", (edited,))
    wide = evaluate(ctx, "arith", 0, paper=False, limit=10, levels={"b7"})
    new = store.attempts(0, purpose("arith", "standard", wide.key))
    assert len({a.question_id for a in new}) == 5 * 6 + 4
    by_key = {(a.question_id, a.trial, a.branch): a for a in new}
    for a in old:  # the first look's work, copied as it was (its clock too: nothing answered again)
        b = by_key.get((a.question_id, a.trial, a.branch))
        if a.question_id == edited:  # answered again (a batch of other questions may word it differently)
            assert b is None or b.created_at >= first.finished_at
            continue
        assert b is not None and b.id != a.id and (b.output, b.correct, b.created_at) == (a.output, a.correct, a.created_at)
    fresh = [a for a in new if a.question_id not in {o.question_id for o in old} or a.question_id == edited]
    assert len({a.question_id for a in fresh}) == 5 and min(a.created_at for a in fresh) >= first.finished_at
    mine = {a.id for a in new}
    for r in store.reflections(0, purpose("arith", "standard", wide.key)):
        assert r.attempt_id in mine and r.next_attempt_id in mine
    assert store.copy_work(0, purpose("arith", "standard", first.key), purpose("arith", "standard", wide.key),
                           [a.question_id for a in old]) == 0  # idempotent: nothing copied twice
