"""What every benchmark is: a loader, an answer format, and a scorer (the verifier).

The embedded world is one task like the others; nothing in the loop special-cases it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Item:
    """One question. `id` is the external id the loader assigns (stable across runs)."""

    id: str
    text: str
    gold: str
    split: str = "test"
    meta: dict[str, Any] = field(default_factory=dict)


def meta_level(meta: object) -> str | None:
    """A question's level from its meta (`meta.level`, e.g. the embedded world's bases), None without one."""
    level = meta.get("level") if isinstance(meta, dict) else None
    return None if level is None else str(level)


@dataclass(frozen=True)
class Verdict:
    """The verifier's judgement of one output.

    `reason` is 'correct', 'wrong', 'unparsed', or a short cause ('timeout', 'error: ...').
    `feedback` may be shown to the reflector (a failing test's message, say); it never holds the gold answer.
    """

    correct: bool
    answer: str | None
    reason: str
    feedback: str = ""
    scores: dict[str, float] = field(default_factory=dict)


class Task(Protocol):
    """A benchmark. `answer_format` is the one-line instruction telling the model how to finish."""

    name: str
    answer_format: str

    def load(self, split: str = "test", limit: int | None = None) -> list[Item]: ...

    def score(self, item: Item, output: str) -> Verdict: ...


@runtime_checkable
class RewritesRetries(Protocol):
    """A task whose retries are written in another format than first trials (the embedded world's edits).

    `as_first_trial` turns a retry into the first-trial solution it amounts to, so a correct retry can
    teach first trials (STaR's rationalization). For every other task a retry already is a solution.
    """

    def as_first_trial(self, output: str) -> str: ...


def first_trial_text(task: Task, output: str) -> str:
    """A retry's text as a first-trial answer to the same question."""
    return task.as_first_trial(output) if isinstance(task, RewritesRetries) else output
