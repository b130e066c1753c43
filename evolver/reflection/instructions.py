"""ReflectEvo's instruction pool: verify · locate and diagnose · plan (2 × 8 × 2 = 32).

Ids are 'a-b-c' as in the reference (`1-1-1` … `2-8-2`); users extend the pool from config.
"""

from __future__ import annotations

from dataclasses import dataclass

VERIFY = {
    1: "Trace the failed solution step by step and verify each step.",
    2: "Quickly go through the failed solution without verifying every step.",
}
DIAGNOSE = {
    1: "Look for calculation errors.",
    2: "Look for errors in the algorithm logic or the order of steps.",
    3: "Look for breaks in logical coherence.",
    4: "Look for internal inconsistencies between steps.",
    5: "Check alignment with the question's context and requirements.",
    6: "Check that the solution is relevant and covers every aspect of the question.",
    7: "Check that the answer follows the required format.",
    8: "Check the factual accuracy of each statement.",
}
PLAN = {
    1: "Then give a high-level plan to avoid such errors.",
    2: "Then give a low-level plan with the specific corrections.",
}


@dataclass(frozen=True)
class Instruction:
    id: str
    text: str


def default_pool() -> list[Instruction]:
    return [
        Instruction(f"{a}-{b}-{c}", f"{VERIFY[a]} {DIAGNOSE[b]} {PLAN[c]}")
        for a in VERIFY for b in DIAGNOSE for c in PLAN
    ]


def build_pool(ids: list[str] | None = None, extra: list[tuple[str, str]] | None = None) -> list[Instruction]:
    """The configured pool: the defaults (optionally restricted to `ids`) plus extra (id, text) pairs."""
    pool = default_pool() + [Instruction(i, t) for i, t in (extra or [])]
    if ids:
        by_id = {i.id: i for i in pool}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise ValueError(f"reflection.instruction_ids: unknown ids {missing}")
        pool = [by_id[i] for i in ids]
    return pool
