"""The training pool: drawn at the model's frontier, solved questions retire, failed ones return."""

from __future__ import annotations

from evolver.reflection.pool import PoolRules, by_level, draw, frontier_level
from evolver.store import Store
from evolver.tasks.base import Item
from evolver.world.task import ArithTask

RULES = PoolRules(size=20, returns=0.25, frontier_share=0.75, mastery=0.9)


def items(bases: tuple[int, ...] = (10, 9, 8), n: int = 100) -> list[Item]:
    return ArithTask(bases=bases).load("train", n)


def test_frontier_is_the_lowest_level_not_mastered() -> None:
    assert frontier_level(["b10", "b9", "b8"], {"b10": 0.95, "b9": 0.5}, 0.9) == "b9"
    assert frontier_level(["b10", "b9", "b8"], {}, 0.9) == "b10"  # unknown is not mastered
    assert frontier_level(["b10", "b9"], {"b10": 0.99, "b9": 0.95}, 0.9) is None  # all mastered: no frontier


def test_new_questions_come_from_the_frontier_and_every_level_above() -> None:
    pool = draw(items(), {}, {"b10": 0.95, "b9": 0.4}, RULES)
    assert pool.frontier == "b9" and len(pool.items) == 20
    got = by_level(pool.items)
    assert set(got) == {"b9", "b8"} and len(got["b9"]) == 15 and len(got["b8"]) == 5
    assert pool.report["levels"] == {"b9": {"new": 15, "returning": 0}, "b8": {"new": 5, "returning": 0}}
    assert draw(items(), {}, {"b10": 0.95, "b9": 0.4}, RULES).items == pool.items  # deterministic
    # Four levels above the frontier share the rest in equal parts, the nearest taking the remainder;
    # the mastered level below the frontier gets none.
    wide = draw(items((10, 9, 8, 7, 6, 5)), {}, {"b10": 0.95}, PoolRules(30, 0.0, 0.6, 0.9))
    assert {lv: v["new"] for lv, v in wide.report["levels"].items()} == {"b9": 18, "b8": 3, "b7": 3, "b6": 3, "b5": 3}
    odd = draw(items((10, 9, 8, 7)), {}, {}, PoolRules(10, 0.0, 0.5, 0.9))
    assert {lv: v["new"] for lv, v in odd.report["levels"].items()} == {"b10": 5, "b9": 2, "b8": 2, "b7": 1}


def test_review_draws_from_the_mastered_levels_below_the_frontier() -> None:
    review = PoolRules(40, 0.0, 0.5, 0.9, review=0.25)
    pool = draw(items((10, 9, 8, 7)), {}, {"b10": 0.95, "b9": 0.92}, review)  # frontier b8; b10 and b9 mastered
    assert pool.frontier == "b8"
    assert {lv: v["new"] for lv, v in pool.report["levels"].items()} == {"b10": 5, "b9": 5, "b8": 15, "b7": 15}
    # nothing below the frontier: the review share goes to the frontier and the levels above, as without review
    low = draw(items((10, 9)), {}, {}, review)
    assert {lv: v["new"] for lv, v in low.report["levels"].items()} == {"b10": 20, "b9": 20}


def test_once_every_level_is_mastered_new_questions_come_from_each_alike() -> None:
    """No level takes the pool once all are mastered: a pool piled onto the last level let the others drift."""
    review = PoolRules(40, 0.0, 0.75, 0.9, review=0.1)
    pool = draw(items((10, 9, 8, 7)), {}, {"b10": 1.0, "b9": 0.99, "b8": 0.95, "b7": 0.92}, review)
    assert pool.frontier is None and pool.report["all_mastered"]
    assert {lv: v["new"] for lv, v in pool.report["levels"].items()} == {"b10": 10, "b9": 10, "b8": 10, "b7": 10}
    # one level back below mastery is the frontier again
    again = draw(items((10, 9, 8, 7)), {}, {"b10": 1.0, "b9": 0.99, "b8": 0.85, "b7": 0.92}, review)
    assert again.frontier == "b8" and not again.report["all_mastered"]


def test_a_solved_question_retires_and_a_failed_one_returns() -> None:
    all_items = items((10,))
    first = draw(all_items, {}, {}, RULES)
    solved, failed = first.items[:10], first.items[10:]
    history = {it.id: (1, True, 1) for it in solved} | {it.id: (1, False, 1) for it in failed}
    second = draw(all_items, history, {}, RULES)
    ids = {it.id for it in second.items}
    assert not ids & {it.id for it in solved}  # retired: never again
    back = [it for it in second.items if it.id in {f.id for f in failed}]
    assert len(back) == 5 == second.report["levels"]["b10"]["returning"]  # a quarter of 20
    assert second.report["retired_before"] == 10 and second.report["waiting_before"] == 10
    fresh = [it for it in second.items if it.id not in history]
    assert len(fresh) == 15 and fresh == [it for it in all_items if it.id not in history][:15]


def test_without_levels_the_pool_is_failures_and_fresh_questions() -> None:
    plain = [Item(id=f"q{i}", text=f"q{i}", gold="x") for i in range(50)]
    pool = draw(plain, {"q0": (2, False, 3)}, {}, RULES)
    assert pool.frontier is None and pool.items[-1].id == "q0" and len(pool.items) == 20


def test_a_small_task_runs_out_of_fresh_questions_and_shrinks() -> None:
    plain = [Item(id=f"q{i}", text=f"q{i}", gold="x") for i in range(12)]
    history = {f"q{i}": (1, i < 6, 1) for i in range(10)}  # q0-q5 solved, q6-q9 failed, q10-q11 fresh
    pool = draw(plain, history, {}, RULES)
    assert sorted(it.id for it in pool.items) == ["q10", "q11", "q6", "q7", "q8", "q9"]


def test_history_counts_only_earlier_generations(store: Store) -> None:
    qids = store.upsert_questions([{"source": "arith", "external_id": f"e{i}", "text": f"{i} + 1", "gold": str(i + 1)}
                                   for i in range(3)])
    for g in (0, 1, 2):
        store.create_generation(g, g - 1 if g else None, "b", "h", "{}")
    rows = [dict(generation_id=g, purpose="pool", question_id=qids[e], trial=1, branch=0, backend="t", model_ref="m",
                 sampling="{}", seed=0, prompt="p", output="o", correct=ok, reason="r")
            for g, e, ok in ((1, "e0", False), (1, "e1", True), (2, "e0", True), (2, "e2", False))]
    store.insert_attempts(rows)
    assert store.pool_history("arith", 2) == {"e0": (1, False, 1), "e1": (1, True, 1)}
    assert store.pool_history("arith", 3) == {"e0": (2, True, 2), "e1": (1, True, 1), "e2": (1, False, 2)}
