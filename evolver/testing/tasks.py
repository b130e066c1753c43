"""Test tasks for fast end-to-end runs on tiny models.

- `HashTask`: an output counts as correct when the sha256 of (question id, output) is divisible by 3: a fixed,
  deterministic rule, so a tiny random model still produces both successes and failures and every phase has data.
- `SumsTask`: a handful of small sums answered `Finish[sum]`; a tiny model taught exactly these prompts
  (`evolver.testing.backends.build_stopping_model`) scores 1.0 and a random one 0.0, so a test can tell two
  models apart by their scores.
"""

from __future__ import annotations

import hashlib
import re

from evolver.tasks.base import Item, Verdict


class HashTask:
    name = "hashy"
    answer_format = "Answer with Finish[x]."

    def __init__(self, seed: int = 0, size: int = 400, levels: int = 1) -> None:
        self.seed = seed
        self.size = size
        self.levels = levels  # > 1: items alternate between levels L0, L1, ... (per-level evaluation, the pool's frontier)

    def load(self, split: str = "test", limit: int | None = None) -> list[Item]:
        offset = 0 if split == "test" else 100_000
        items = [Item(id=f"{split}-{i}", text=f"{i + offset} + {(i * 7 + self.seed) % 13}",
                      gold=str(i + offset + (i * 7 + self.seed) % 13), split=split,
                      meta={"level": f"L{i % self.levels}"} if self.levels > 1 else {}) for i in range(self.size)]
        return items[:limit] if limit else items

    def score(self, item: Item, output: str) -> Verdict:
        ok = int(hashlib.sha256(f"{item.id}|{output}".encode()).hexdigest(), 16) % 3 == 0
        return Verdict(correct=ok, answer=output.strip()[-8:] or None, reason="correct" if ok else "wrong")


class SumsTask:
    """HashTask's questions, judged for real: Finish[the sum]."""

    name = "sums"
    answer_format = HashTask.answer_format

    def __init__(self, seed: int = 0, size: int = 4) -> None:
        self.questions = HashTask(seed, size)

    def load(self, split: str = "test", limit: int | None = None) -> list[Item]:
        return self.questions.load(split, limit)

    def score(self, item: Item, output: str) -> Verdict:
        m = re.search(r"Finish\[(\d+)\]", output)
        if m is None:
            return Verdict(correct=False, answer=None, reason="unparsed", feedback="No Finish[answer] found.")
        ok = m.group(1) == item.gold
        return Verdict(correct=ok, answer=m.group(1), reason="correct" if ok else "wrong",
                       feedback="" if ok else "The sum is wrong.")
