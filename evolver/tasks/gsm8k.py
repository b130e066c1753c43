"""GSM8K grade-school math: the answer is one number.

Rows are the release's JSONL (`grade_school_math/data/test.jsonl` of github.com/openai/grade-school-math,
or the hub's `openai/gsm8k`, config `main`): `question`, and `answer` = worked solution ending in
`#### N`; the gold is N. Ids: the row's `id` when every row has a distinct one, else 1-based line
numbers (`evolver.tasks.rows`).

The model finishes with `Finish[N]`. Also accepted, in this order: `#### N` (the dataset's own
form), then the last number of the output (`Verdict.scores["strict"]` is 0 for that last
fallback). Numbers compare as exact fractions after dropping `$`, commas and units, so `18`,
`18.00` and `$18` are equal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from evolver.tasks.answers import finish_bracket, format_number, last_number
from evolver.tasks.base import Item, Verdict
from evolver.tasks.rows import DataError, Loaded, Record, RowSource, load_items, require

_HASHES = re.compile(r"####\s*([^\n]*)")


@dataclass
class GSM8KTask:
    source: RowSource
    name: str = "gsm8k"
    cap: int | None = None
    answer_format: str = ("Solve the problem. Reason step by step, then finish with Finish[N], "
                          "where N is the final number.")

    def load(self, split: str = "test", limit: int | None = None) -> list[Item]:
        return self.load_report(split, limit).items

    def load_report(self, split: str = "test", limit: int | None = None) -> Loaded:
        return load_items(self.source, split, limit, self.cap, self._item)

    def _item(self, r: Record, split: str) -> Item:
        require(r, "question", "answer")
        answer = str(r.data["answer"])
        m = _HASHES.search(answer)
        value = last_number(m.group(1) if m else answer)
        if value is None:
            raise DataError(f"{r.where}: no final number after '####' in 'answer'")
        return Item(r.id, str(r.data["question"]), format_number(value), split)

    def score(self, item: Item, output: str) -> Verdict:
        strict = True
        raw = finish_bracket(output)
        if raw is None:
            m = _HASHES.search(output)
            raw = m.group(1) if m else None
        if raw is None:
            raw, strict = output, False
        value = last_number(raw)
        if value is None:
            return Verdict(False, None, "unparsed", "No final number found: finish with Finish[N].")
        correct = value == last_number(item.gold)
        return Verdict(correct, format_number(value), "correct" if correct else "wrong",
                       scores={"strict": float(strict)})
