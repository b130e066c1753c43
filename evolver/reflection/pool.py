"""Which questions a generation trains on: its pool, drawn at the model's frontier.

Each question has a history in the store (the pools that asked it and whether trial 1 got it
right). A question answered right at trial 1 is *retired*: it never comes back. A question asked
and never answered right *returns* (up to `reflection.pool_returns` of the pool, oldest first).
The rest are *new* questions, never asked before.

Tasks whose questions carry levels (`meta.level`, e.g. the embedded world's 4d, 5d, ...) have a
frontier: the lowest level the current model has not mastered (held-out acc@t1 below
`reflection.mastery`). New questions come from the frontier (`reflection.pool_frontier` of them)
and, in equal parts, from every level above it, so the pool climbs as the model masters each level
and no level waits untrained until the frontier reaches it (a level learned only through transfer
from its neighbours moves by chance from one generation to the next). `reflection.pool_review` of
them come from the mastered levels below the frontier (review: a mastered level no pool asks again
drifts while the others train). Once every level is mastered there is no frontier: the new
questions come from every level in equal parts (a pool piled onto one mastered level let the others
drift by 5 to 16 points, and the policy rejected every such candidate). A task without levels is one
level, and the pool is simply its failures plus fresh questions.

Deterministic: the draw depends only on the items' order and on earlier generations' history,
so a resumed generation draws the same pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evolver.tasks.base import Item, meta_level

NO_LEVEL = ""


@dataclass(frozen=True)
class PoolRules:
    size: int
    returns: float  # share of the pool given to questions asked before and never solved
    frontier_share: float  # share of the new questions from the frontier level (the rest: the levels above)
    mastery: float  # held-out acc@t1 at which a level counts as mastered
    review: float = 0.0  # share of the new questions from the mastered levels below the frontier


@dataclass
class Pool:
    items: list[Item]
    frontier: str | None
    report: dict[str, Any] = field(default_factory=dict)


def level_of(item: Item) -> str:
    return meta_level(item.meta) or NO_LEVEL


def by_level(items: Sequence[Item]) -> dict[str, list[Item]]:
    out: dict[str, list[Item]] = {}
    for it in items:
        out.setdefault(level_of(it), []).append(it)
    return out


def frontier_level(levels: Sequence[str], acc_t1: dict[str, float], mastery: float) -> str | None:
    """The lowest level not mastered (unknown counts as not mastered); None when every level is."""
    for lv in levels:
        if acc_t1.get(lv, 0.0) < mastery:
            return lv
    return None


def _equal_parts(levels: Sequence[str], n: int) -> dict[str, int]:
    """`n` questions in equal parts over `levels`, the first levels taking the remainder."""
    return {lv: n // len(levels) + (1 if i < n % len(levels) else 0) for i, lv in enumerate(levels)}


def draw(items: Sequence[Item], history: dict[str, tuple[int, bool, int]], acc_t1: dict[str, float],
         rules: PoolRules) -> Pool:
    """This generation's pool from the task's training items, their history and the model's level scores."""
    levels = by_level(items)
    order = list(levels)
    frontier = frontier_level(order, acc_t1, rules.mastery)
    retired = sum(1 for _n, solved, _last in history.values() if solved)
    failed = [it for lv in order for it in levels[lv] if it.id in history and not history[it.id][1]]
    failed.sort(key=lambda it: (history[it.id][2], history[it.id][0]))  # longest waiting, least asked first
    returning = failed[: round(rules.size * rules.returns)]
    n_new = rules.size - len(returning)
    if frontier is None:  # every level mastered: review them all alike
        quota = _equal_parts(order, n_new)
    else:
        at = order.index(frontier)
        downs, ups = order[:at], order[at + 1:]
        quota = _equal_parts(downs, round(n_new * rules.review) if downs else 0)
        n_up = n_new - sum(quota.values())
        quota[frontier] = n_up if not ups else round(n_up * rules.frontier_share)
        quota.update(_equal_parts(ups, n_up - quota[frontier]))
    new: list[Item] = []
    for lv, n in quota.items():
        fresh = [it for it in levels[lv] if it.id not in history]
        new += fresh[:n]
    short = rules.size - len(returning) - len(new)
    if short > 0:  # fresh questions ran out: more of the failed ones, then the pool is smaller
        returning += failed[len(returning): len(returning) + short]
    chosen = new + returning
    report = {"frontier": frontier or None, "all_mastered": frontier is None, "size": len(chosen), "retired_before": retired,
              "waiting_before": len(failed),
              "levels": {lv or "all": {"new": sum(1 for it in new if level_of(it) == lv),
                                       "returning": sum(1 for it in returning if level_of(it) == lv)}
                         for lv in order if any(level_of(it) == lv for it in chosen)}}
    return Pool(chosen, frontier or None, report)
