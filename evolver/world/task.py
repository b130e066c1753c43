"""The embedded world's task family: column addition written one column per step.

A solution is `" 1: 7+8+0=15; 2: 3+4+1=08. Finish[815]"`: step i adds the i-th digits
from the right plus the carry. Every error sits at a step and so can be located.
A retry is written as an edit of the failed solution, `" 1 kept 7+8+0=15; 2 fixed 3+5+1=09. Finish[915]"`:
each step is either kept as trial 1 wrote it or restated as the reflection corrected it. Its format
differs from a first trial's, so what it takes to retry well (follow the reflection) and
what it takes to solve (add) are separate skills: fine-tuning on answers alone does not
teach a retry to follow a reflection, and fine-tuning on retries does not rewrite first trials.
The verifier's feedback says how many answer digits are wrong and where the first
one is (like a failing test's first assertion): the first faulty step is then cheap
to find, later ones must be checked. It never contains the gold answer.

Questions come from a seed; a question belongs to the test split iff its content hash
falls in the held-out bucket, so train (the pool and the pretraining corpus) and
test are disjoint by construction.

Levels are number bases: `bases = [10, 9, 8]` gives questions in base 10 (the base level, written
`7283 + 1456`), base 9 (`7283 + 1456 (base 9)`) and base 8, each item tagged with its level
(`meta.level = "b9"`), so evaluation reports every level and the pool can climb from one to the
next. Every base has its own addition table, so what the model learns in one base does not
carry over to another, and the lower the base the more columns hold two big digits (the
generation-0 model's worst habit): each level is a skill of its own, harder than the one before.
Numbers keep four digits in every base, so reading them is the same work at every level.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

from evolver.tasks.base import Item, Verdict

ANSWER_FORMAT = "Add the numbers column by column from the right, then end with Finish[answer]."
BASE_LEVEL = 10  # the base level's number base: the documented numbers are this level's
DIGITS = 4
TEST_BUCKETS = 10  # one content-hash bucket in TEST_BUCKETS is held out
TRAIN_SIZE = 40_000  # per level (base 4 has fewer: every train-side pair)
TEST_SIZE = 1_000  # per level
_FINISH = re.compile(r"Finish\s*\[\s*([0-9][0-9\s]*?)\s*\]")
_RETRY_STEP = re.compile(r"(\d+) (?:kept|fixed) ")
_QUESTION = re.compile(r"\s*(\d+)\s*\+\s*(\d+)\s*(?:\(base (\d+)\))?\s*")


@dataclass(frozen=True)
class Step:
    """One column: digit a + digit b + carry in = s (written as two base digits: s // base, s % base).

    The sum is always written with two digits so every step has the same length: a
    small model then finds the next column's digits at a fixed distance.
    """

    a: int
    b: int
    c: int
    s: int
    base: int = BASE_LEVEL

    @property
    def equation(self) -> str:
        return f"{self.a}+{self.b}+{self.c}={self.s // self.base}{self.s % self.base}"

    def text(self, i: int) -> str:
        return f"{i}: {self.equation}"


@dataclass(frozen=True)
class Question:
    """Two numerals of the same base (their digits as written) and the base."""

    x: str
    y: str
    base: int = BASE_LEVEL

    @property
    def text(self) -> str:
        return f"{self.x} + {self.y}" if self.base == BASE_LEVEL else f"{self.x} + {self.y} (base {self.base})"


def question_text(x: int | str, y: int | str, base: int = BASE_LEVEL) -> str:
    return Question(str(x), str(y), base).text


def parse_question(text: str) -> Question:
    m = _QUESTION.fullmatch(text)
    if not m:
        raise ValueError(f"not an arith question: {text!r}")
    q = Question(m.group(1), m.group(2), int(m.group(3) or BASE_LEVEL))
    if any(int(ch) >= q.base for ch in q.x + q.y):
        raise ValueError(f"not an arith question: {text!r} (a digit beyond base {q.base})")
    return q


def content_hash(text: str) -> str:
    return hashlib.sha256(text.strip().encode()).hexdigest()


def is_held_out(text: str) -> bool:
    return int(content_hash(text)[:8], 16) % TEST_BUCKETS == 0


def columns(q: Question) -> list[tuple[int, int]]:
    """Digit pairs from the right, padded with zeros to the longer number."""
    sx, sy = q.x[::-1], q.y[::-1]
    n = max(len(sx), len(sy))
    return [(int(sx[i]) if i < len(sx) else 0, int(sy[i]) if i < len(sy) else 0) for i in range(n)]


def gold_steps(q: Question) -> list[Step]:
    steps, c = [], 0
    for a, b in columns(q):
        s = a + b + c
        steps.append(Step(a, b, c, s, q.base))
        c = s // q.base
    return steps


def gold_answer(q: Question) -> str:
    return answer_of(gold_steps(q))


def answer_of(steps: list[Step]) -> str:
    """Written digits, most significant first, with the last carry in front."""
    digits = "".join(str(st.s % st.base) for st in reversed(steps))
    lead = str(steps[-1].s // steps[-1].base) if steps and steps[-1].s >= steps[-1].base else ""
    return (lead + digits).lstrip("0") or "0"

def render_solution(steps: list[Step]) -> str:
    body = "; ".join(st.text(i + 1) for i, st in enumerate(steps))
    return f" {body}. Finish[{answer_of(steps)}]"


def render_retry(steps: list[Step], fixed: set[int]) -> str:
    """Trial 2: each step kept as trial 1 wrote it or, when its 0-based index is in `fixed`, as corrected."""
    body = "; ".join(f"{i + 1} {'fixed' if i in fixed else 'kept'} {st.equation}"
                     for i, st in enumerate(steps))
    return f" {body}. Finish[{answer_of(steps)}]"


def parse_answer(output: str) -> str | None:
    m = _FINISH.search(output)
    if not m:
        return None
    return re.sub(r"\s+", "", m.group(1)).lstrip("0") or "0"


def feedback_for(answer: str, gold: str) -> str:
    """How many digits differ (right-aligned) and the place of the first, counting from the right."""
    n = max(len(answer), len(gold))
    a, g = answer.rjust(n, " "), gold.rjust(n, " ")
    places = [n - i for i in range(n) if a[i] != g[i]]
    if not places:
        return ""
    first = min(places)
    noun = "digit" if len(places) == 1 else "digits"
    return f"{len(places)} wrong {noun}, first at place {first}."


def level_name(base: int) -> str:
    return f"b{base}"


def as_first_trial(retry: str) -> str:
    """A retry written as an edit (`1 kept 7+8+0=15; 2 fixed ...`) as a first-trial solution (`1: 7+8+0=15; ...`).

    A correct retry is then training data for first trials (STaR's rationalization): the solver
    learns from the steps its reflections corrected.
    """
    return _RETRY_STEP.sub(lambda m: f"{m.group(1)}: ", retry)


def _numeral(n: int, base: int) -> str:
    out = ""
    while n:
        n, d = divmod(n, base)
        out = str(d) + out
    return out or "0"


def make_questions(seed: int, held_out: bool, count: int, base: int = BASE_LEVEL) -> list[Question]:
    """`count` distinct 4-digit questions in `base` on the chosen side of the split, in a seeded order (all
    of that side when it holds fewer: base 4's train side has about 33,000).

    The base level keeps the stream it always had, so its questions (and the documented numbers)
    do not change with the levels added beside it.
    """
    tag = "" if base == BASE_LEVEL else f":b{base}"
    rng = random.Random(f"arith:{seed}:{'test' if held_out else 'train'}{tag}")
    tried: set[tuple[int, int]] = set()
    out: list[Question] = []
    lo, hi = base ** (DIGITS - 1), base**DIGITS - 1
    space = (hi - lo + 1) ** 2  # base 4 has 36,864 pairs: fewer than TRAIN_SIZE on the train side
    while len(out) < count and len(tried) < space:
        rng.choice((DIGITS,))  # keeps the base level's random stream as it was
        pair = (rng.randint(lo, hi), rng.randint(lo, hi))
        if pair in tried:
            continue
        tried.add(pair)
        q = Question(_numeral(pair[0], base), _numeral(pair[1], base), base)
        if is_held_out(q.text) == held_out:
            out.append(q)
    return out


class ArithTask:
    """Column addition of two 4-digit numbers in each base of `bases`; the world the shipped model was pretrained on."""

    name = "arith"
    answer_format = ANSWER_FORMAT

    def __init__(self, seed: int = 0, bases: tuple[int, ...] | list[int] = (BASE_LEVEL,)) -> None:
        if not bases or any(not 4 <= b <= 10 for b in bases):
            raise ValueError(f"bases: expected number bases between 4 and 10, got {list(bases)}")
        self.seed = seed
        self.bases = tuple(sorted(set(bases), reverse=True))  # the base level first, then the harder ones

    def load(self, split: str = "test", limit: int | None = None) -> list[Item]:
        """Every level's questions, level by level; `limit` caps each level (not the total)."""
        if split not in ("train", "test"):
            raise ValueError(f"arith: unknown split {split!r} (expected 'train' or 'test')")
        size = TEST_SIZE if split == "test" else TRAIN_SIZE
        count = size if limit is None else min(limit, size)
        items = []
        for b in self.bases:
            prefix = f"arith-{split}" if b == BASE_LEVEL else f"arith-{split}-{level_name(b)}"
            items += [Item(id=f"{prefix}-{i:05d}", text=q.text, gold=gold_answer(q), split=split,
                           meta={"digits": DIGITS, "base": b, "level": level_name(b)})
                      for i, q in enumerate(make_questions(self.seed, split == "test", count, b))]
        return items

    def as_first_trial(self, output: str) -> str:
        return as_first_trial(output)

    def score(self, item: Item, output: str) -> Verdict:
        answer = parse_answer(output)
        if answer is None:
            return Verdict(correct=False, answer=None, reason="unparsed",
                           feedback="No Finish[answer] found.")
        if answer == item.gold:
            return Verdict(correct=True, answer=answer, reason="correct")
        return Verdict(correct=False, answer=answer, reason="wrong", feedback=feedback_for(answer, item.gold))
