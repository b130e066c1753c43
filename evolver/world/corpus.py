"""The pretraining corpus: how the generation-0 model learns the world's formats, not perfection.

Trial 1 makes two *systematic* errors, so greedy decoding reproduces them:
  - big: both digits >= 7 -> the column sum is written one too low (7+8+0=14);
  - drop: a carry into a column holding a 0 digit is dropped (0+5+0=5 instead of 0+5+1=6).
Reflections follow the instruction's verify and plan parts, first copy the place of the first
wrong digit from the feedback (so which step to name is a local decision), and are of mixed quality:
  - lazy (the concentrated distractor, more so when the first fault is late and under
    'quickly go through'): restates the last step unchanged;
  - good: names the first faulty step (the feedback points at it) and then each later
    faulty step with probability 0.85 (big) or only 0.35 (drop), with the right sums;
  - misfix: names the first faulty step but keeps its wrong sum; random: restates another step.
Trial 2 follows its reflection: named steps take the stated sums, every other step is
redone with the same habits. So only a reflection naming every faulty step leads to a
correct retry; a partial or wrong one leaves the retry wrong.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from evolver.reflection.instructions import Instruction, default_pool
from evolver.reflection.prompts import REFLECTION_CUE, SOLUTION_CUE, reflect_prompt, retry_prompt, trial_prompt
from evolver.world.task import (
    ANSWER_FORMAT,
    Step,
    answer_of,
    columns,
    feedback_for,
    gold_steps,
    make_questions,
    question_text,
    render_solution,
)

P_FAULT = 0.85
P_NAME_LATER = {"big": 0.85, "drop": 0.35}
# Share of lazy reflections by verify part and by the place of the first wrong digit.
LAZY = {1: {1: 0.2, 2: 0.6, 3: 0.65, 4: 0.65}, 2: {1: 0.6, 2: 0.7, 3: 0.75, 4: 0.75}}
PLAN_HIGH = {"big": "Plan: add big digits with care.", "drop": "Plan: never drop a carry.",
             None: "Plan: work more carefully."}
VERIFY_TEXT = {1: "I traced each step.", 2: "I skimmed the steps."}


def fault_kind(a: int, b: int, c: int) -> str | None:
    if a >= 7 and b >= 7:
        return "big"
    if c == 1 and (a == 0 or b == 0):
        return "drop"
    return None


def faulty(a: int, b: int, c: int, kind: str) -> Step:
    if kind == "big":
        return Step(a, b, c, a + b + c - 1)
    return Step(a, b, 0, a + b)


def run_chain(x: int, y: int, fires: list[bool], forced: dict[int, Step] | None = None) -> list[Step]:
    """Steps as the model's habits write them; `forced` (0-based step -> Step) overrides named steps."""
    forced = forced or {}
    steps, c = [], 0
    for i, (a, b) in enumerate(columns(x, y)):
        if i in forced:
            st = forced[i]
        else:
            kind = fault_kind(a, b, c)
            st = faulty(a, b, c, kind) if kind and fires[i] else Step(a, b, c, a + b + c)
        steps.append(st)
        c = st.s // 10
    return steps


def gold_faults(x: int, y: int, fires: list[bool]) -> list[tuple[int, str]]:
    """Steps (0-based) where a habit fires along the correct chain, with its kind: what a perfect reflection names."""
    out = []
    for i, st in enumerate(gold_steps(x, y)):
        kind = fault_kind(st.a, st.b, st.c)
        if kind and fires[i]:
            out.append((i, kind))
    return out


@dataclass(frozen=True)
class Reflection:
    text: str
    named: dict[int, Step]
    quality: str


def _step_sentence(i: int, st: Step) -> str:
    return f"Step {i + 1} should be {st.a}+{st.b}+{st.c}={st.s:02d}."


def make_reflection(rng: random.Random, x: int, y: int, fires: list[bool], trial: list[Step],
                    instruction: Instruction) -> Reflection:
    verify, plan = (int(p) for p in instruction.id.split("-")[::2])
    n = len(trial)
    faults = gold_faults(x, y, fires)
    gold = gold_steps(x, y)
    r = rng.random()
    lazy = LAZY[verify][min(faults[0][0] + 1, 4)] if faults else 1.0
    named: dict[int, Step] = {}
    kind: str | None = None
    if r < lazy or not faults:
        quality, last = "lazy", n - 1
        named[last] = trial[last]
    else:
        r2 = (r - lazy) / (1 - lazy)
        first, kind = faults[0]
        if r2 < 0.8:
            quality = "good"
            named[first] = gold[first]
            for i, k in faults[1:]:
                if rng.random() < P_NAME_LATER[k]:
                    named[i] = gold[i]
        elif r2 < 0.9:
            quality = "misfix"
            named[first] = trial[first]
        else:
            quality, kind = "random", None
            others = [i for i in range(n) if i != first] or [first]
            j = rng.choice(others)
            named[j] = trial[j]
    diag = " ".join(_step_sentence(i, named[i]) for i in sorted(named))
    plan_text = PLAN_HIGH[kind] if plan == 1 else f"Plan: redo from step {min(named) + 1}."
    complete = quality == "good" and all(i in named for i, _ in faults)
    place = f" The first wrong digit is at place {faults[0][0] + 1}." if faults else ""
    return Reflection(f" {VERIFY_TEXT[verify]}{place} {diag} {plan_text}", named,
                      "good_all" if complete else ("good_part" if quality == "good" else quality))


@dataclass(frozen=True)
class Example:
    """One question's documents (texts without EOS) and labels for statistics."""

    trial_doc: str
    reflect_doc: str | None
    retry_doc: str | None
    trial_correct: bool
    quality: str | None
    retry_correct: bool | None


def make_example(rng: random.Random, x: int, y: int, pool: list[Instruction]) -> Example:
    fires = [rng.random() < P_FAULT for _ in columns(x, y)]
    q = question_text(x, y)
    gold = str(x + y)
    trial = run_chain(x, y, fires)
    out1 = render_solution(trial)
    tp = trial_prompt(ANSWER_FORMAT, q)
    ans1 = answer_of(trial)
    if ans1 == gold:
        return Example(tp + out1, None, None, True, None, None)
    instruction = rng.choice(pool)
    refl = make_reflection(rng, x, y, fires, trial, instruction)
    rp = reflect_prompt(ANSWER_FORMAT, q, out1, feedback_for(ans1, gold), instruction.text)
    trial2 = run_chain(x, y, fires, refl.named)
    out2 = render_solution(trial2)
    return Example(tp + out1, rp + refl.text, retry_prompt(rp, refl.text) + out2, False, refl.quality,
                   answer_of(trial2) == gold)


def examples(seed: int, count: int) -> Iterator[Example]:
    """Corpus examples from train-split questions only (drawn with their own seed)."""
    rng = random.Random(f"corpus:{seed}")
    pool = default_pool()
    for x, y in make_questions(seed + 7919, held_out=False, count=count):
        yield make_example(rng, x, y, pool)


def documents(seed: int, count: int) -> Iterator[tuple[str, str]]:
    """(text without EOS, prefix trained without loss): every trial, reflection and retry doc.

    A retry doc starts with its reflection doc minus the EOS, so an LM trained on both could
    not know whether a reflection ends; the retry doc's prompt is therefore trained without
    loss and only reflection docs teach what follows a reflection (the EOS). A reflection
    doc's prompt repeats a trial doc, so only its reflection carries loss: the capacity goes
    to the decisions that matter (which step, which sum).
    """
    for ex in examples(seed, count):
        yield ex.trial_doc, ""
        if ex.reflect_doc is not None and ex.retry_doc is not None:
            yield ex.reflect_doc, ex.reflect_doc[: ex.reflect_doc.rindex(REFLECTION_CUE) + len(REFLECTION_CUE)]
            yield ex.retry_doc, ex.retry_doc[: ex.retry_doc.rindex(SOLUTION_CUE) + len(SOLUTION_CUE)]
