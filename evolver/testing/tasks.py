"""A test task whose verifier needs no competent model, for fast end-to-end runs on tiny random models.

An output counts as correct when the sha256 of (question id, output) is divisible by 3: a fixed, deterministic rule, so
a tiny random model still produces both successes and failures and every phase has data.
"""

from __future__ import annotations

import hashlib

from evolver.tasks.base import Item, Verdict


class HashTask:
    name = "hashy"
    answer_format = "Answer with Finish[x]."

    def __init__(self, seed: int = 0, size: int = 400) -> None:
        self.seed = seed
        self.size = size

    def load(self, split: str = "test", limit: int | None = None) -> list[Item]:
        offset = 0 if split == "test" else 100_000
        items = [Item(id=f"{split}-{i}", text=f"{i + offset} + {(i * 7 + self.seed) % 13}",
                      gold=str(i + offset + (i * 7 + self.seed) % 13), split=split) for i in range(self.size)]
        return items[:limit] if limit else items

    def score(self, item: Item, output: str) -> Verdict:
        ok = int(hashlib.sha256(f"{item.id}|{output}".encode()).hexdigest(), 16) % 3 == 0
        return Verdict(correct=ok, answer=output.strip()[-8:] or None, reason="correct" if ok else "wrong")
