"""Worked examples (few-shot) and answer instructions: what makes a prompt a real chat model can follow.

A task's `answer_format` opens every prompt of the loop (trial, reflection, retry). A suite may
replace its instruction (one written for chat models) and add worked examples; both then become
that opening, so every call carries the same examples, as the reference's prompts do. The examples
use the loop's own labels (`Question:` / `Solution:`, see evolver.reflection.prompts), so the
prompt's last question reads as one more of them. The embedded world sets neither and keeps its
own format.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

END_OF_EXAMPLES = "(END OF EXAMPLES)"


@dataclass(frozen=True)
class WorkedExample:
    question: str
    solution: str


def preamble(instruction: str, examples: Sequence[WorkedExample] = ()) -> str:
    """The instruction followed by the worked examples, ready to open a trial or reflection prompt."""
    if not examples:
        return instruction
    shots = "\n\n".join(f"Question: {e.question}\nSolution: {e.solution}" for e in examples)
    return f"{instruction}\n\n{shots}\n{END_OF_EXAMPLES}\n"
