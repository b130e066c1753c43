"""BIG-bench tasks from their native `task.json` files (format `bigbench_json`).

Each example is one item:
- multiple choice (`target_scores`; the options with the top score are right): the question is
  the task's prompt as BIG-bench builds it (`task_prefix`, `example_input_prefix`, the input,
  then the options after the task's own `choice_prefix` when `append_choices_to_input`, the
  default), ending with the task's `example_output_prefix` as a cue. Options are lettered
  (A, B, ...) so a chat model can answer with a letter; `show_choices = "always"` lists them
  for tasks that keep them out of the input (their answers are then read from the option text
  alone under "auto"), "never" hides them.
- free text (`target`, a string or a list of accepted strings): exact match after SQuAD
  normalisation against any target, with token F1 in `Verdict.scores["f1"]`; the task's
  `output_regex` picks the answer out of the model's text, as BIG-bench does.
Answers are read from the model's free text (evolver.tasks.choices): `Finish[...]`, a letter,
an option's text, an answer phrase.

Splits are stable content hashes of each example (task name, input, targets): `test_share` of
them are held out (`test`), the rest are the reflection pool (`train`), and `all` is every
example (for scoring outside predictions). The `shots` worked examples every prompt carries are
the first train examples in hash order (varying their answers, and drawn from every file in turn),
and leave the pool. Item ids are 1-based positions in the task file. A suite may read several
files (a task's subtasks, or several tasks: `member` as a list): each file's name is then its items'
level, so results are reported per task (`bb-mix/object_counting`) and the pool draws from the
levels by the frontier rules (evolver.reflection.pool), and ids are `<task>/<n>`.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from evolver.tasks.answers import squad_normalize, token_f1
from evolver.tasks.base import Item, Verdict
from evolver.tasks.choices import LETTERS, parse_choice, parse_free
from evolver.tasks.fewshot import WorkedExample, preamble
from evolver.tasks.rows import DataError, Loaded, Record, Rows, load_items, take
from evolver.tasks.taskfile import TaskFile, read_many

SPLITS = ("train", "test", "all")
DEFAULT_CHOICE_PREFIX = "\n  choice: "
INSTRUCTION = ("Answer the question. When choices are listed, pick one by its letter. "
               "Finish with Finish[answer], as in the examples.")
UNPARSED = "No answer found: finish with Finish[...] holding the letter of a choice or a short answer."
ShowChoices = Literal["auto", "always", "never"]


def _bucket(task: str, ex: dict[str, Any]) -> float:
    key = json.dumps([task, ex.get("input"), ex.get("target"), ex.get("target_scores")], sort_keys=True, default=str)
    return int(hashlib.sha256(key.encode()).hexdigest()[:15], 16) / 16**15


@dataclass
class BigBenchSource:
    """The examples of one or more task files, split by content hash; reads the files on first use."""

    path: Path
    members: tuple[str, ...] = ()  # task.json members of a tarball; () = `path` is the task.json
    test_share: float = 0.5
    shots: int = 3

    def __post_init__(self) -> None:
        if not 0.0 < self.test_share < 1.0:
            raise ValueError(f"test_share must be between 0 and 1, got {self.test_share!r}")
        if self.shots < 0:
            raise ValueError(f"shots must be 0 or more, got {self.shots!r}")

    @cached_property
    def files(self) -> list[TaskFile]:
        return [f for files in read_many(self.path, list(self.members)) for f in files]

    @cached_property
    def _split(self) -> tuple[dict[str, list[Record]], list[Record]]:
        several = len(self.files) > 1  # each file's name is then its items' level
        per_file: list[list[tuple[float, Record]]] = []
        for tf in self.files:
            rows = []
            for n, ex in enumerate(tf.examples, start=1):
                rid = f"{tf.name}/{n}" if several else str(n)
                data = {"example": ex, "task": tf.data, "task_name": tf.name, "level": tf.name if several else None}
                rows.append((_bucket(tf.name, ex), Record(rid, f"{tf.where}: example {n}", data)))
            per_file.append(rows)
        shots: list[Record] = []
        trains = [sorted((r for r in rows if r[0] >= self.test_share), key=lambda r: r[0]) for rows in per_file]
        seen: set[str] = set()
        while len(shots) < self.shots and any(trains):
            for t in trains:
                if t and len(shots) < self.shots:  # the first in hash order whose answer no shot has yet
                    pick = next((r for r in t if _answer_key(r[1]) not in seen), t[0])
                    t.remove(pick)
                    seen.add(_answer_key(pick[1]))
                    shots.append(pick[1])
        held = {r.id for r in shots}
        order = [r for rows in per_file for r in rows]
        splits = {"all": [r for _, r in order],
                  "test": [r for b, r in order if b < self.test_share],
                  "train": [r for b, r in order if b >= self.test_share and r.id not in held]}
        return splits, shots

    def records(self, split: str) -> Rows:
        if split not in SPLITS:
            raise DataError(f"no {split!r} split here (splits: {', '.join(SPLITS)})")
        return Rows(list(self._split[0][split]), [], "positions in the task file (1-based; '<task>/<n>' when"
                                                     " the suite reads several files)")

    def shot_records(self) -> list[Record]:
        return list(self._split[1])


def _answer_key(r: Record) -> str:
    """What an example's right answer is (its best option, else its target): worked examples vary it."""
    ex = r.data["example"]
    scores = ex.get("target_scores")
    if isinstance(scores, dict) and scores:
        return str(max(scores, key=lambda k: scores[k] if isinstance(scores[k], int | float) else 0))
    return str(ex.get("target"))


@dataclass
class BigBenchJsonTask:
    """A BIG-bench task (or several) scored from a chat model's free text; see the module docstring."""

    source: BigBenchSource
    name: str = "bigbench"
    cap: int | None = None
    show_choices: ShowChoices = "auto"
    shuffle_choices: bool = True
    instruction: str = INSTRUCTION
    examples: list[WorkedExample] = field(default_factory=list)  # the manifest's own, before the drawn shots

    @cached_property
    def answer_format(self) -> str:
        shots = [WorkedExample(it.text, solution(it)) for it in (self._item(r, "shots") for r in self.source.shot_records())]
        return preamble(self.instruction, [*self.examples, *shots])

    def load(self, split: str = "test", limit: int | None = None) -> list[Item]:
        return self.load_report(split, limit).items

    def load_report(self, split: str = "test", limit: int | None = None) -> Loaded:
        """Items of `split`; `limit` (and the manifest's cap) count per level when the suite reads several files."""
        loaded = load_items(self.source, split, None, None, self._item)
        per: dict[str, list[Item]] = {}
        for it in loaded.items:
            per.setdefault(str(it.meta.get("level", "")), []).append(it)
        items = [it for group in per.values() for it in take(group, limit, self.cap)]
        return Loaded(items, loaded.dropped, loaded.ids)

    def _item(self, r: Record, split: str) -> Item:
        ex, task = r.data["example"], r.data["task"]
        if not isinstance(ex, dict) or not isinstance(ex.get("input"), str):
            raise DataError(f"{r.where}: no 'input' text")
        meta: dict[str, Any] = {"task": r.data["task_name"]}
        if r.data.get("level"):
            meta["level"] = r.data["level"]
        head = str(task.get("task_prefix") or "") + str(task.get("example_input_prefix") or "") + ex["input"]
        cue = str(task.get("example_output_prefix") or "").strip()
        scores = ex.get("target_scores")
        multiple = isinstance(scores, dict) and len(scores) >= 2 and (
            "target" not in ex or task.get("preferred_score") == "multiple_choice_grade")
        if multiple:
            return self._choice_item(r, split, head, cue, scores, task, meta)
        target = ex.get("target")
        targets = [str(t) for t in (target if isinstance(target, list) else [target])] if target is not None else []
        if not targets:
            raise DataError(f"{r.where}: neither 'target_scores' (two or more) nor 'target'")
        meta.update(kind="free", targets=targets, regex=task.get("output_regex"))
        return Item(r.id, head + (f"\n{cue}" if cue else ""), targets[0], split, meta)

    def _choice_item(self, r: Record, split: str, head: str, cue: str, scores: dict[str, Any],
                     task: dict[str, Any], meta: dict[str, Any]) -> Item:
        try:
            pairs = [(str(c), float(s)) for c, s in scores.items()]
        except (TypeError, ValueError):
            raise DataError(f"{r.where}: 'target_scores' values must be numbers") from None
        if self.shuffle_choices:
            random.Random(_bucket(r.data["task_name"], r.data["example"])).shuffle(pairs)
        choices = [c for c, _ in pairs]
        top = max(s for _, s in pairs)
        correct = [i for i, (_, s) in enumerate(pairs) if s == top]
        shown = self.show_choices == "always" or (self.show_choices == "auto" and task.get("append_choices_to_input", True))
        prefix = str(task.get("choice_prefix") or DEFAULT_CHOICE_PREFIX)
        text = head + ("".join(f"{prefix}{LETTERS[i]}. {c}" for i, c in enumerate(choices)) if shown else "")
        text += f"\n{cue}" if cue else ""
        gold = LETTERS[correct[0]] if shown else choices[correct[0]]
        meta.update(kind="choice", choices=choices, correct=correct, letters=bool(shown))
        return Item(r.id, text, gold, split, meta)

    def score(self, item: Item, output: str) -> Verdict:
        if item.meta.get("kind") == "choice":
            choices, letters = list(item.meta["choices"]), bool(item.meta.get("letters"))
            index, raw = parse_choice(output, choices, letters)
            if raw is None:
                return Verdict(False, None, "unparsed", UNPARSED)
            if index is None:
                return Verdict(False, raw, "wrong", "That answer is none of the choices.")
            ok = index in item.meta["correct"]
            answer = LETTERS[index] if letters else choices[index]
            return Verdict(ok, answer, "correct" if ok else "wrong")
        raw = parse_free(output)
        if raw is None:
            return Verdict(False, None, "unparsed", UNPARSED)
        answer = _apply_regex(raw, item.meta.get("regex"))
        targets = list(item.meta.get("targets") or [item.gold])
        ok = any(squad_normalize(answer) == squad_normalize(t) for t in targets)
        f1 = max(token_f1(answer, t) for t in targets)
        feedback = "" if ok else f"Token F1 against the reference answer: {f1:.2f}."
        return Verdict(ok, answer, "correct" if ok else "wrong", feedback, {"f1": f1})


def _apply_regex(text: str, pattern: object) -> str:
    """The first match of the task's `output_regex` in the answer (the answer itself without one)."""
    import re

    if not isinstance(pattern, str) or not pattern:
        return text
    try:
        m = re.search(pattern, text)
    except re.error:
        return text
    return m.group(0) if m else text


def solution(item: Item) -> str:
    """A worked example's solution: the finished answer (the letter of a shown option, else its text)."""
    return f"Finish[{item.gold}]"
