"""Score outputs produced elsewhere (another run, another system) without loading any model.

A predictions file is JSONL, one `{"id": ..., "output": "..."}` per line, where `id` is the item id
the suite's loader assigns (see `evolver.tasks.rows`) and `output` is the raw model text, scored
exactly as the loop would score it. Nothing is dropped silently: ids the suite does not have,
items without a prediction, repeated ids and unreadable lines are all reported.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evolver.tasks.base import Item, Task, Verdict


@dataclass(frozen=True)
class Prediction:
    id: str
    output: str
    where: str = ""  # file:line


@dataclass(frozen=True)
class RowVerdict:
    id: str
    correct: bool
    answer: str | None
    reason: str
    feedback: str
    scores: dict[str, float]


@dataclass
class PredictionReport:
    """`accuracy` is over scored predictions; `accuracy_all` counts items without one as wrong."""

    items: int
    n: int
    correct: int
    accuracy: float
    accuracy_all: float
    parse_rate: float
    scores: dict[str, float] = field(default_factory=dict)  # mean of each Verdict.scores key over rows having it
    reasons: dict[str, int] = field(default_factory=dict)
    rows: list[RowVerdict] = field(default_factory=list)
    unknown_ids: list[str] = field(default_factory=list)
    missing_ids: list[str] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)  # "file:line: reason"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_predictions(path: Path) -> tuple[list[Prediction], list[str]]:
    """Predictions in file order, and one "file:line: reason" per line that could not be read."""
    rows: list[Prediction] = []
    bad: list[str] = []
    text = path.read_text(encoding="utf-8", errors="replace")
    for n, line in enumerate(text.splitlines(), start=1):
        where = f"{path}:{n}"
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            bad.append(f"{where}: not JSON ({err.msg} at column {err.colno})")
            continue
        if not isinstance(obj, dict):
            bad.append(f"{where}: expected an object with 'id' and 'output', got {type(obj).__name__}")
            continue
        missing = [k for k in ("id", "output") if k not in obj]
        if missing:
            bad.append(f"{where}: missing key {missing[0]!r}")
            continue
        if not isinstance(obj["id"], (str, int)) or isinstance(obj["id"], bool):
            bad.append(f"{where}: 'id' must be a string or an integer, got {type(obj['id']).__name__}")
            continue
        if not isinstance(obj["output"], str):
            bad.append(f"{where}: 'output' must be a string, got {type(obj['output']).__name__}")
            continue
        rows.append(Prediction(str(obj["id"]), obj["output"], where))
    return rows, bad


def score_predictions(task: Task, items: list[Item], rows: list[Prediction], workers: int = 1,
                      malformed: list[str] | None = None) -> PredictionReport:
    """Score each prediction against its item; the first prediction of a repeated id is the one scored."""
    by_id = {item.id: item for item in items}
    seen: set[str] = set()
    unknown: list[str] = []
    duplicates: list[str] = []
    todo: list[tuple[Item, Prediction]] = []
    for row in rows:
        if row.id not in by_id:
            unknown.append(row.id)
        elif row.id in seen:
            if row.id not in duplicates:
                duplicates.append(row.id)
        else:
            seen.add(row.id)
            todo.append((by_id[row.id], row))

    def judge(pair: tuple[Item, Prediction]) -> Verdict:
        return task.score(pair[0], pair[1].output)

    if workers > 1 and len(todo) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            verdicts = list(pool.map(judge, todo))
    else:
        verdicts = [judge(p) for p in todo]

    out = [RowVerdict(item.id, v.correct, v.answer, v.reason, v.feedback, dict(v.scores))
           for (item, _), v in zip(todo, verdicts)]
    n, correct = len(out), sum(r.correct for r in out)
    parsed = sum(r.reason != "unparsed" for r in out)
    reasons: dict[str, int] = {}
    sums: dict[str, list[float]] = {}
    for r in out:
        key = r.reason if not r.reason.startswith("error:") else "error"
        reasons[key] = reasons.get(key, 0) + 1
        for k, v in r.scores.items():
            sums.setdefault(k, []).append(float(v))
    return PredictionReport(
        items=len(items), n=n, correct=correct,
        accuracy=correct / n if n else 0.0,
        accuracy_all=correct / len(items) if items else 0.0,
        parse_rate=parsed / n if n else 0.0,
        scores={k: sum(v) / len(v) for k, v in sorted(sums.items())},
        reasons=dict(sorted(reasons.items())),
        rows=out,
        unknown_ids=unknown,
        missing_ids=[item.id for item in items if item.id not in seen],
        duplicate_ids=duplicates,
        malformed=list(malformed or []),
    )
