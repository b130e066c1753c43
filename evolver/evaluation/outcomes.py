"""Per-question outcomes of a stored evaluation, and the units results are reported in.

A *unit* is a suite (`arith`) or, for suites whose questions carry levels, one level of it
(`arith/5d`): evaluation reports every unit, and the policy tests and guards each one, so a
gain on one level cannot hide forgetting on another.
"""

from __future__ import annotations

import json

from evolver.states import EvalProtocol, unit_name
from evolver.store import Store
from evolver.tasks.base import meta_level

Outcomes = dict[str, dict[int, bool]]  # metric -> question id -> correct


def purpose(suite: str, protocol: str, key: str) -> str:
    """Attempts of one evaluation: the suite, the protocol and the evaluation's key (so each key has its own)."""
    kind = "eval" if protocol == EvalProtocol.STANDARD else "eval-fixed"
    return f"{kind}:{suite}@{key[:16]}"


def question_levels(store: Store, question_ids: list[int]) -> dict[int, str | None]:
    """Each stored question's level (`meta.level`), None when the task has no levels."""
    return {qid: meta_level(json.loads(q.meta) if q.meta else {}) for qid, q in store.questions(question_ids).items()}


def outcomes(store: Store, generation: int, suite: str, protocol: str, key: str, max_rounds: int,
             fixed_key: str | None = None) -> Outcomes:
    """{'acc@t1': {qid: ok}, 'acc@t2': {qid: ok}} along branch 0 of one evaluation.

    The paper protocol's trial 1 is generation 0's (the evaluation `fixed_key` names).
    """
    rows = store.attempts(generation, purpose(suite, protocol, key))
    if protocol == EvalProtocol.PAPER:
        base = store.attempts(0, purpose(suite, EvalProtocol.STANDARD, fixed_key or ""))
        t1 = {a.question_id: bool(a.correct) for a in base if a.trial == 1 and a.branch == 0}
    else:
        t1 = {a.question_id: bool(a.correct) for a in rows if a.trial == 1 and a.branch == 0}
    t2 = dict(t1)
    for a in rows:
        if a.branch == 0 and 2 <= a.trial <= max_rounds + 1 and a.correct and a.question_id in t2:
            t2[a.question_id] = True
    return {"acc@t1": t1, "acc@t2": t2}


def by_unit(suite: str, result: Outcomes, levels: dict[int, str | None]) -> dict[str, Outcomes]:
    """The suite's outcomes and, when its questions have two or more levels, each level's."""
    units = {suite: result}
    distinct = list(dict.fromkeys(levels[q] for q in sorted(levels) if levels[q] is not None))  # the task's order
    if len(distinct) >= 2:
        for lv in distinct:
            units[unit_name(suite, lv)] = {m: {q: ok for q, ok in per.items() if levels.get(q) == lv}
                                           for m, per in result.items()}
    return units


def rates(result: Outcomes) -> dict[str, tuple[float, int]]:
    n = len(result.get("acc@t1", {}))
    return {m: (sum(v.values()) / n if n else 0.0, n) for m, v in result.items()}
