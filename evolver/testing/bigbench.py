"""Small BIG-bench task files and a stand-in for the `bigbench` sdist tarball, for tests.

The layout is the sdist's (`bigbench-1.0.0/bigbench/benchmark_tasks/<task>/task.json`), so the
shipped manifests and recipes can be checked against it without the 358 MB download.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

TOP = "bigbench-1.0.0"
TASKS = "bigbench/benchmark_tasks"


def choice_task(name: str, n: int = 40, **fields: Any) -> dict[str, Any]:
    """A two-option task in the style of sports_understanding (options outside the input)."""
    examples = [{"input": f"Player {i} scored a goal in round {i % 7}",
                 "target_scores": {"plausible": int(i % 3 != 0), "implausible": int(i % 3 == 0)}} for i in range(n)]
    base = {"name": name, "description": "plausible or not", "keywords": ["test"],
            "metrics": ["multiple_choice_grade"], "preferred_score": "multiple_choice_grade",
            "append_choices_to_input": False, "task_prefix": "Is the statement plausible or implausible?",
            "example_input_prefix": "\nStatement: ", "example_output_prefix": "\nPlausible/implausible? "}
    return {**base, **fields, "examples": examples}


def free_task(name: str, n: int = 40) -> dict[str, Any]:
    """A free-text counting task in the style of object_counting (targets: a word and a numeral)."""
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    examples = [{"input": f"I have {' and '.join(['a cat'] * (i % 9 + 1))} ({i}). How many animals do I have?",
                 "target": [words[i % 9 + 1], str(i % 9 + 1)]} for i in range(n)]
    return {"name": name, "description": "count", "keywords": ["test"], "metrics": ["exact_str_match"],
            "preferred_score": "exact_str_match", "examples": examples}


def ordering_task(name: str, objects: int, n: int = 20) -> dict[str, Any]:
    """A lettered three-or-more-option task in the style of logical_deduction's subtasks."""
    colors = ["red", "blue", "green", "black", "white", "pink", "gray"][:objects]
    examples = []
    for i in range(n):
        first = colors[i % objects]
        examples.append({"input": f"Shelf {i}: the {first} book is left of every other book.",
                         "target_scores": {f"The {c} book is the leftmost.": int(c == first) for c in colors}})
    return {"name": name, "description": "order", "keywords": ["test"], "metrics": ["multiple_choice_grade"],
            "preferred_score": "multiple_choice_grade", "append_choices_to_input": False, "choice_prefix": "",
            "task_prefix": "Each paragraph describes books on a shelf.\n\n", "examples": examples}


def default_tasks() -> dict[str, dict[str, Any]]:
    """task path under benchmark_tasks/ -> task.json content: the tasks the shipped recipes name."""
    parent = {"name": "logical_deduction", "description": "order", "keywords": ["test"]}
    return {
        "sports_understanding/task.json": choice_task("sports_understanding"),
        "object_counting/task.json": free_task("object_counting"),
        "logical_deduction/task.json": parent,
        "logical_deduction/three_objects/task.json": ordering_task("three_objects", 3),
        "logical_deduction/five_objects/task.json": ordering_task("five_objects", 5),
    }


def build_sdist(path: Path, tasks: dict[str, dict[str, Any]] | None = None) -> Path:
    """A .tar.gz laid out like the bigbench sdist, holding `tasks` (default: `default_tasks()`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        readme = b"not the real bigbench\n"
        info = tarfile.TarInfo(f"{TOP}/README.md")
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
        for rel, content in (tasks if tasks is not None else default_tasks()).items():
            raw = json.dumps(content).encode()
            info = tarfile.TarInfo(f"{TOP}/{TASKS}/{rel}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path
