"""The ReflectEvo benchmarks: LogiQA, MATH, MBPP and BIG-bench, in the reference's answer formats.

Rows are the reference's JSONL files (`data/data_source/*_test.jsonl` of the ReflectEvo release):
- logiqa: `question` (options inline, "A." ... "D."), `answer` a-d. Answer: `Finish[X]`.
- math: `problem`, `solution` (gold = content of its last `\\boxed{}`; an `answer` key, as in
  MATH-500, wins when present). Answer: `Finish<<<X>>>`; equal under the Hendrycks MATH
  normalisation, or symbolically (sympy, time-limited).
- mbpp: `text`, `code` (reference solution, the item's gold; never shown), `test_list`,
  `test_setup_code`, `challenge_test_list`. Answer: code between `[BEGIN]` and `[END]`, judged by
  running `test_setup_code`, the code, then each assert of `test_list` in the sandbox.
- bigbench: `question`, `answer` (a string, or an object with key `answer`). A row whose question
  lists options ("A. True" ...) and whose gold is a letter is multiple choice (`Finish[X]`,
  letter match); any other row is free text (`Finish[span]`, SQuAD-normalised exact match, with
  token F1 in `Verdict.scores["f1"]`).

Item ids (what predictions files use), under the default `ids = "auto"` (see `evolver.tasks.rows`):
a file's own `id` (else `task_id`) when every row has a distinct one, else every row's 1-based line
number. So LogiQA ids are the dataset's own ids (not the reference loader's line numbers), MBPP ids
are `task_id`s (11-510), and MATH and BIG-bench ids are line numbers (the BIG-bench file repeats
ids and leaves 144 rows without one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evolver.tasks.answers import choice_letter, code_block, finish_bracket, finish_math, options, squad_normalize, token_f1
from evolver.tasks.base import Item, Verdict
from evolver.tasks.math_equiv import last_boxed, math_equiv
from evolver.tasks.rows import DataError, Loaded, Record, RowSource, load_items, require
from evolver.tasks.sandbox import SandboxLimits, run_tests

UNPARSED_FINISH = "No final answer found: finish with Finish[...]."


def _unparsed(hint: str) -> Verdict:
    return Verdict(correct=False, answer=None, reason="unparsed", feedback=hint)


def _judged(correct: bool, answer: str, **scores: float) -> Verdict:
    return Verdict(correct=correct, answer=answer, reason="correct" if correct else "wrong", scores=dict(scores))


@dataclass
class LogiQATask:
    """LogiQA multiple choice: `Finish[X]`, X a letter a-d (or the option's text)."""

    source: RowSource
    name: str = "logiqa"
    cap: int | None = None
    answer_format: str = ("Answer the multiple-choice question. Reason step by step, then finish with Finish[X], "
                          "where X is the letter of the correct option (a, b, c or d).")

    def load(self, split: str = "test", limit: int | None = None) -> list[Item]:
        return self.load_report(split, limit).items

    def load_report(self, split: str = "test", limit: int | None = None) -> Loaded:
        return load_items(self.source, split, limit, self.cap, self._item)

    def _item(self, r: Record, split: str) -> Item:
        require(r, "question", "answer")
        q = str(r.data["question"])
        return Item(r.id, q, str(r.data["answer"]).strip().lower(), split, {"options": options(q)})

    def score(self, item: Item, output: str) -> Verdict:
        raw = finish_bracket(output)
        if raw is None:
            return _unparsed(UNPARSED_FINISH)
        letter = choice_letter(raw, item.meta.get("options") or {})
        return _judged(letter == item.gold.lower(), letter)


@dataclass
class MathTask:
    """Competition math: `Finish<<<X>>>`, judged by Hendrycks `is_equiv`, then symbolically."""

    source: RowSource
    name: str = "math"
    cap: int | None = None
    sympy_timeout_s: float = 5.0
    answer_format: str = ("Solve the problem. Reason step by step, then give the final answer as Finish<<<X>>>, "
                          "where X is the answer in LaTeX (no \\boxed).")

    def load(self, split: str = "test", limit: int | None = None) -> list[Item]:
        return self.load_report(split, limit).items

    def load_report(self, split: str = "test", limit: int | None = None) -> Loaded:
        return load_items(self.source, split, limit, self.cap, self._item)

    def _item(self, r: Record, split: str) -> Item:
        require(r, "problem")
        if r.data.get("answer") is not None:
            gold = str(r.data["answer"])
        else:
            require(r, "solution")
            gold = last_boxed(str(r.data["solution"]))
            if gold is None:
                raise DataError(f"{r.where}: no \\boxed{{...}} answer in 'solution'")
        meta = {k: r.data[k] for k in ("level", "type") if k in r.data}
        return Item(r.id, str(r.data["problem"]), gold.strip(), split, meta)

    def score(self, item: Item, output: str) -> Verdict:
        answer = finish_math(output)
        if answer is None:
            return _unparsed("No final answer found: finish with Finish<<<answer>>>.")
        equal, how = math_equiv(answer, item.gold, self.sympy_timeout_s)
        return _judged(equal, answer, symbolic=float(how == "symbolic"))  # share of matches only sympy found


@dataclass
class MBPPTask:
    """MBPP: code between [BEGIN] and [END], run against the row's asserts in the sandbox.

    `challenge_tests` adds the row's `challenge_test_list` to the judging asserts (the reference
    judges only the three asserts the prompt shows). Programs are limited in CPU time (`cpu_s`),
    which does not depend on how busy the machine is, so a verdict does not either; `timeout_s`
    is a wall-clock safety net for programs that sleep or block, generous enough that load does
    not reach it.
    """

    source: RowSource
    name: str = "mbpp"
    cap: int | None = None
    challenge_tests: bool = False
    cpu_s: float = 10.0
    timeout_s: float = 60.0
    limits: SandboxLimits | None = None
    answer_format: str = "Write the Python code for the task. Put the complete code between [BEGIN] and [END]."
    _limits: SandboxLimits = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._limits = self.limits or SandboxLimits(cpu_seconds=self.cpu_s, wall_seconds=self.timeout_s)

    def load(self, split: str = "test", limit: int | None = None) -> list[Item]:
        return self.load_report(split, limit).items

    def load_report(self, split: str = "test", limit: int | None = None) -> Loaded:
        return load_items(self.source, split, limit, self.cap, self._item)

    def _item(self, r: Record, split: str) -> Item:
        require(r, "text", "test_list")
        tests = [str(t) for t in r.data["test_list"]]
        text = (f"You are an expert Python programmer, and here is your task: {r.data['text']} "
                f"Your code should pass these tests: {tests!s}")
        meta = {
            "tests": tests,
            "setup": str(r.data.get("test_setup_code") or ""),
            "challenge_tests": [str(t) for t in r.data.get("challenge_test_list") or []],
        }
        return Item(r.id, text, str(r.data.get("code") or ""), split, meta)

    def score(self, item: Item, output: str) -> Verdict:
        code = code_block(output)
        if code is None:
            return _unparsed("No code found: put the code between [BEGIN] and [END].")
        tests = list(item.meta["tests"]) + (list(item.meta["challenge_tests"]) if self.challenge_tests else [])
        result = run_tests(code, tests, item.meta.get("setup", ""), self._limits)
        reason = "correct" if result.passed else "wrong" if result.reason.startswith("assert") else result.reason
        frac = result.tests_passed / result.tests_total if result.tests_total else float(result.passed)
        return Verdict(result.passed, code, reason, result.feedback, {"tests_passed": frac})


@dataclass
class BigBenchTask:
    """BIG-bench (ReflectEvo's mix): option letters via `Finish[X]`; free-text rows by SQuAD exact match."""

    source: RowSource
    name: str = "bigbench"
    cap: int | None = None
    answer_format: str = ("Reason step by step, then finish with Finish[X], where X is the letter of the correct "
                          "option or, when no options are given, a short answer taken from the text.")

    def load(self, split: str = "test", limit: int | None = None) -> list[Item]:
        return self.load_report(split, limit).items

    def load_report(self, split: str = "test", limit: int | None = None) -> Loaded:
        return load_items(self.source, split, limit, self.cap, self._item)

    def _item(self, r: Record, split: str) -> Item:
        require(r, "question", "answer")
        gold = r.data["answer"]
        if isinstance(gold, dict):
            if "answer" not in gold:
                raise DataError(f"{r.where}: 'answer' is an object without key 'answer'")
            gold = gold["answer"]
        gold, question = str(gold).strip(), str(r.data["question"])
        opts = options(question)
        kind = "choice" if opts and len(gold) == 1 and gold.lower() in opts else "free"
        return Item(r.id, question, gold.lower() if kind == "choice" else gold, split, {"kind": kind, "options": opts})

    def score(self, item: Item, output: str) -> Verdict:
        raw = finish_bracket(output)
        if raw is None:
            return _unparsed(UNPARSED_FINISH)
        if item.meta.get("kind") == "choice":
            letter = choice_letter(raw, item.meta.get("options") or {})
            return _judged(letter == item.gold, letter)
        em = squad_normalize(raw) == squad_normalize(item.gold)
        return _judged(em, raw, f1=token_f1(raw, item.gold))
