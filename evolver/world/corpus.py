"""The pretraining corpus: how the generation-0 model learns the world's formats, not perfection.

Trial 1 makes two *systematic* errors, so greedy decoding reproduces them:
  - big: both digits >= 7 -> the column sum is written one too low (7+8+0=14);
  - drop: a carry into a column holding a 0 digit is dropped (0+5+0=5 instead of 0+5+1=6);
and, rarely, a *slip*: any other column's sum off by one. No error changes a carry, so every
step of trial 1 has the right carry in view and an error stays where it is.
Reflections follow the instruction's verify and plan parts, first copy the place of the first
wrong digit from the feedback, and are of mixed quality:
  - lazy (the concentrated distractor, more so when the first fault is late and under
    'quickly go through'): "I see no faulty step.";
  - good: walks through trial 1 step by step, each step copied as written and judged
    ("1: 7+8+0=15 ok; 2: 9+8+1=17 should be 9+8+1=18; ..."); it flags the first faulty step (the
    feedback points at it) and each later one with probability 0.85 (big), 0.6 (slip), 0.5 (misread:
    the step restated with the question's digits) or only 0.35 (drop), and passes the rest as "ok";
  - misfix: the same walk with every step passed as "ok", the faulty ones included.
The walk copies the failed solution in order, the way a retry does, so a correction's operands
sit right next to it and are never recalled from a step number: reading them is a copy, not a
guess from the fault's kind. Only good reflections state corrected steps, so a model that merely
computes better cannot turn a poor reflection into a fix by restating a step.
Trial 2 is an edit of trial 1, in its own format (`task.render_retry`): named steps are
'fixed' with the stated sums, every other step is 'kept' as it was. So only a reflection
naming every faulty step leads to a correct retry, and a
retry cannot do better than its reflection by solving afresh: slips, which no habit
predicts, are copied too, so the corpus never shows a retry recomputing a step.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from evolver.reflection.instructions import Instruction, default_pool
from evolver.reflection.prompts import REFLECTION_CUE, SOLUTION_CUE, reflect_prompt, retry_prompt, trial_prompt
from evolver.world.task import (
    ANSWER_FORMAT,
    Question,
    Step,
    answer_of,
    feedback_for,
    gold_answer,
    gold_steps,
    make_questions,
    render_retry,
    render_solution,
)

# Share of pretraining examples per base: base 10 most, so the base level is the one the
# generation-0 model knows best; every other base often enough to write it in the right format,
# with its own table learned only in part: room to evolve. A base left out is a table the model
# does not know at all (it writes another base's sums), so every level a suite holds is in the mix.
BASE_MIX = {10: 0.4, 9: 0.15, 8: 0.15, 7: 0.15, 6: 0.15}
P_FAULT = 0.85
P_SLIP = 0.12  # per column without a habit error
P_MISREAD = 0.06  # per column without another error
P_NAME_LATER = {"big": 0.85, "drop": 0.35, "slip": 0.6, "misread": 0.5}
# Share of lazy reflections by verify part and by the place of the first wrong digit.
# Above one half, greedy decoding is lazy: generation 0 reflects well only when it samples.
LAZY = {1: {1: 0.55, 2: 0.7, 3: 0.75, 4: 0.75}, 2: {1: 0.7, 2: 0.75, 3: 0.8, 4: 0.8}}
PLAN_HIGH = {"big": "Plan: add big digits with care.", "drop": "Plan: never drop a carry.",
             "slip": "Plan: work more carefully.", "misread": "Plan: read each digit from the question.",
             None: "Plan: work more carefully."}
VERIFY_TEXT = {1: "I traced each step.", 2: "I skimmed the steps."}


def fault_kind(st: Step) -> str | None:
    """The habit a column can trip; neither changes the carry out (a 0+9 column with a carry is safe)."""
    big = st.base - 3
    if st.a >= big and st.b >= big and st.s - 1 >= st.base:  # in base 6, 3+3 = 10 would lose its carry
        return "big"
    if st.c == 1 and (st.a == 0 or st.b == 0) and st.a + st.b <= st.base - 2:
        return "drop"
    return None


def faulty(st: Step, kind: str) -> Step:
    if kind == "big":
        return Step(st.a, st.b, st.c, st.s - 1, st.base)
    return Step(st.a, st.b, 0, st.a + st.b, st.base)


def slipped(st: Step, up: bool) -> Step:
    """The sum off by one within its decade, so the carry stays right."""
    top = st.base - 1
    s = st.s + 1 if (up and st.s % st.base != top) or st.s % st.base == 0 else st.s - 1
    return Step(st.a, st.b, st.c, s, st.base)


def misread(rng: random.Random, st: Step) -> Step | None:
    """One of the column's digits read as another, the sum right for what was read and the carry unchanged."""
    carry = st.s >= st.base
    if rng.random() < 0.5:
        options = [a for a in range(st.base) if a != st.a and (a + st.b + st.c >= st.base) == carry]
        return Step(a, st.b, st.c, a + st.b + st.c, st.base) if (a := rng.choice(options or [-1])) >= 0 else None
    options = [b for b in range(st.base) if b != st.b and (st.a + b + st.c >= st.base) == carry]
    return Step(st.a, b, st.c, st.a + b + st.c, st.base) if (b := rng.choice(options or [-1])) >= 0 else None


def run_chain(q: Question, fires: list[bool], slips: dict[int, bool] | None = None,
              misreads: dict[int, Step] | None = None) -> list[Step]:
    """Trial 1 as the model's habits write it; `slips` (0-based step -> up?) and `misreads` add one-off errors."""
    slips, misreads = slips or {}, misreads or {}
    steps = []
    for i, st in enumerate(gold_steps(q)):
        kind = fault_kind(st)
        if kind and fires[i]:
            steps.append(faulty(st, kind))
        elif i in slips:
            steps.append(slipped(st, slips[i]))
        elif i in misreads:
            steps.append(misreads[i])
        else:
            steps.append(st)
    return steps


def edit(trial: list[Step], named: dict[int, Step]) -> list[Step]:
    """Trial 2: the named steps as the reflection states them, the rest copied from trial 1."""
    return [named.get(i, st) for i, st in enumerate(trial)]


def gold_faults(q: Question, trial: list[Step]) -> list[tuple[int, str]]:
    """Steps (0-based) where trial 1 differs from the gold chain, with the kind: what a perfect reflection names."""
    out = []
    for i, (st, g) in enumerate(zip(trial, gold_steps(q))):
        if (st.a, st.b) != (g.a, g.b):
            out.append((i, "misread"))
        elif st != g:
            out.append((i, fault_kind(g) or "slip"))
    return out


@dataclass(frozen=True)
class Reflection:
    text: str
    named: dict[int, Step]
    quality: str


def walk(trial: list[Step], named: dict[int, Step]) -> str:
    """Every step of trial 1 as written, then "ok" or the corrected step (0-based index -> Step)."""
    return "; ".join(f"{st.text(i + 1)} should be {named[i].equation}" if i in named else f"{st.text(i + 1)} ok"
                     for i, st in enumerate(trial)) + "."


def make_reflection(rng: random.Random, q: Question, trial: list[Step], instruction: Instruction) -> Reflection:
    verify, plan = (int(p) for p in instruction.id.split("-")[::2])
    n = len(trial)
    faults = gold_faults(q, trial)
    gold = gold_steps(q)
    r = rng.random()
    lazy = LAZY[verify][min(faults[0][0] + 1, 4)] if faults else 1.0
    named: dict[int, Step] = {}
    kind: str | None = None
    if r < lazy or not faults:
        quality, target = "lazy", n - 1
        diag = "I see no faulty step."
    else:
        r2 = (r - lazy) / (1 - lazy)
        first, kind = faults[0]
        target = first
        if r2 < 0.8:
            quality = "good"
            named[first] = gold[first]
            for i, k in faults[1:]:
                if rng.random() < P_NAME_LATER[k]:
                    named[i] = gold[i]
        else:
            quality = "misfix"
        diag = walk(trial, named)
    plan_text = PLAN_HIGH[kind] if plan == 1 else f"Plan: redo from step {target + 1}."
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


def make_example(rng: random.Random, q: Question, pool: list[Instruction]) -> Example:
    gold_chain = gold_steps(q)
    fires = [rng.random() < P_FAULT for _ in gold_chain]
    slips = {i: rng.random() < 0.5 for i in range(len(fires)) if rng.random() < P_SLIP}
    misreads = {i: m for i, st in enumerate(gold_chain)
                if rng.random() < P_MISREAD and (m := misread(rng, st)) is not None}
    gold = gold_answer(q)
    trial = run_chain(q, fires, slips, misreads)
    out1 = render_solution(trial)
    tp = trial_prompt(ANSWER_FORMAT, q.text)
    ans1 = answer_of(trial)
    if ans1 == gold:
        return Example(tp + out1, None, None, True, None, None)
    instruction = rng.choice(pool)
    refl = make_reflection(rng, q, trial, instruction)
    rp = reflect_prompt(ANSWER_FORMAT, q.text, out1, feedback_for(ans1, gold), instruction.text)
    trial2 = edit(trial, refl.named)
    out2 = render_retry(trial2, set(refl.named))
    return Example(tp + out1, rp + refl.text, retry_prompt(rp, refl.text) + out2, False, refl.quality,
                   answer_of(trial2) == gold)


def examples(seed: int, count: int, mix: dict[int, float] | None = None) -> Iterator[Example]:
    """Corpus examples from train-split questions only (drawn with their own seed), bases by `mix`, shuffled."""
    rng = random.Random(f"corpus:{seed}")
    pool = default_pool()
    questions: list[Question] = []
    for base, share in sorted((mix or BASE_MIX).items(), reverse=True):
        questions += make_questions(seed + 7919, held_out=False, count=round(count * share), base=base)
    random.Random(f"corpus-order:{seed}").shuffle(questions)
    for q in questions:
        yield make_example(rng, q, pool)


def documents(seed: int, count: int, mix: dict[int, float] | None = None) -> Iterator[tuple[str, str]]:
    """(text without EOS, prefix trained without loss): every trial, reflection and retry doc.

    A retry doc starts with its reflection doc minus the EOS, so an LM trained on both could
    not know whether a reflection ends; the retry doc's prompt is therefore trained without
    loss and only reflection docs teach what follows a reflection (the EOS). A reflection
    doc's prompt repeats a trial doc, so only its reflection carries loss: the capacity goes
    to the decisions that matter (which step, which sum).
    """
    for ex in examples(seed, count, mix):
        yield ex.trial_doc, ""
        if ex.reflect_doc is not None and ex.retry_doc is not None:
            yield ex.reflect_doc, ex.reflect_doc[: ex.reflect_doc.rindex(REFLECTION_CUE) + len(REFLECTION_CUE)]
            yield ex.retry_doc, ex.retry_doc[: ex.retry_doc.rindex(SOLUTION_CUE) + len(SOLUTION_CUE)]
