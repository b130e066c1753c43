"""Real benchmark files load and score right with the shipped manifests, quirks included.

The public ReflectEvo files are not shipped; these tests build files with the same quirks from the
10-row samples in ../shared (when present) plus rows written here: BIG-bench repeats ids, leaves
rows without one (whose line numbers collide with other rows' ids) and repeats whole rows; MBPP
solutions return standard-library types (collections.Counter) and a setup builds objects of a
class the solution defines. Gold answers must all score right and perturbed ones all wrong,
through `evolver eval --predictions`, as a user would run it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evolver.cli.app import app

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "reflectevo"

CHOICE = "{q}\nOptions:\nA. True\nB. False\nC. Neither"
# BIG-bench-like multiple-choice rows: id 3 twice, id 7 twice, and ids that are line numbers of id-less rows.
BIGBENCH_CHOICE = [
    {"id": 3, "question": CHOICE.format(q="Is water wet?"), "answer": "a"},
    {"id": 3, "question": CHOICE.format(q="Is fire cold?"), "answer": "b"},
    {"id": 7, "question": CHOICE.format(q="Is the claim neutral?"), "answer": "c"},
    {"id": 7, "question": CHOICE.format(q="Is ice hot?"), "answer": {"answer": "B"}},
    {"id": 16, "question": CHOICE.format(q="Is two even?"), "answer": "a"},
]
BIGBENCH_FREE = [
    {"question": "The court ruled on Monday. Who ruled?", "answer": "The court"},
    {"question": "It happened in 1930. When?", "answer": "1930"},
]

# MBPP-like rows an honest solution must pass: a Counter compared with a dict literal, a setup that
# builds objects of the solution's class, and a defaultdict compared with a plain dict.
MBPP_ROWS = [
    {"task_id": 901, "text": "Write a function to count the characters of a string.",
     "code": "from collections import Counter\ndef char_count(s):\n    return Counter(s)",
     "test_list": ["assert char_count('aab') == {'a': 2, 'b': 1}", "assert char_count('') == {}",
                   "assert char_count('xyzx') == {'x': 2, 'y': 1, 'z': 1}"],
     "test_setup_code": "", "challenge_test_list": []},
    {"task_id": 902, "text": "Write a function to find the longest chain of pairs.",
     "code": "class Pair(object):\n    def __init__(self, a, b):\n        self.a = a\n        self.b = b\n\n"
             "def max_chain_length(arr, n):\n    arr = sorted(arr, key=lambda p: p.b)\n    best, end = 0, None\n"
             "    for p in arr:\n        if end is None or p.a > end:\n            best, end = best + 1, p.b\n    return best",
     "test_list": ["assert max_chain_length(pairs, 4) == 3", "assert max_chain_length(pairs[:1], 1) == 1",
                   "assert max_chain_length(pairs[:2], 2) == 1"],
     "test_setup_code": "pairs = [Pair(5, 24), Pair(15, 25), Pair(27, 40), Pair(50, 60)]", "challenge_test_list": []},
    {"task_id": 903, "text": "Write a function to group words by their first letter.",
     "code": "from collections import defaultdict\ndef group(words):\n    out = defaultdict(list)\n"
             "    for w in words:\n        out[w[0]].append(w)\n    return out",
     "test_list": ["assert group(['ab', 'ac', 'b']) == {'a': ['ab', 'ac'], 'b': ['b']}"],
     "test_setup_code": "", "challenge_test_list": []},
]


def shared_rows(name: str) -> list[dict]:
    path = SHARED / f"{name}_test_sample.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def shipped_suite(name: str, data: Path, tmp_path: Path) -> Path:
    """The shipped manifest, unchanged but for `data`, which points at the file built here."""
    text = (REPO / "evals" / name / "manifest.toml").read_text()
    text, count = re.subn(r'(?m)^data = ".*"$', f"data = {json.dumps(str(data))}", text)
    assert count == 1
    manifest = tmp_path / "evals" / name / "manifest.toml"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(text)
    return manifest


def score(tmp_path: Path, manifest: Path, outputs: dict[str, str]) -> dict:
    preds = write_jsonl(tmp_path / "preds.jsonl", [{"id": i, "output": o} for i, o in outputs.items()])
    config = tmp_path / "evolver.toml"
    config.write_text("")
    result = CliRunner().invoke(app, ["--config", str(config), "eval", "--benchmark", str(manifest),
                                      "--predictions", str(preds), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def gold_letter(row: dict) -> str:
    answer = row["answer"]["answer"] if isinstance(row["answer"], dict) else row["answer"]
    return str(answer)


def test_bigbench_with_repeated_and_missing_ids_loads_with_the_shipped_manifest(tmp_path: Path) -> None:
    sample = shared_rows("bigbench")   # free-text rows without ids, the first 4 repeated at the end
    rows = BIGBENCH_CHOICE + BIGBENCH_FREE + sample
    manifest = shipped_suite("bigbench", write_jsonl(tmp_path / "bigbench_test.jsonl", rows), tmp_path)
    ids = [str(n) for n in range(1, len(rows) + 1)]   # what --help and the README say: line numbers

    gold = score(tmp_path, manifest, {i: f"Thought: so.\nAction: Finish[{gold_letter(r)}]" for i, r in zip(ids, rows)})
    assert (gold["items"], gold["n"], gold["correct"]) == (len(rows), len(rows), len(rows))
    assert gold["missing_ids"] == gold["unknown_ids"] == [] and gold["dropped_rows"] == {}
    without = len(rows) - len(BIGBENCH_CHOICE)
    assert gold["ids"] == f"line numbers ({without} rows without an id and 2 ids on more than one row (first '3'))"

    def wrong(row: dict) -> str:
        letter = gold_letter(row).lower()
        return "Finish[zzz qqq]" if len(letter) > 1 else f"Finish[{'b' if letter == 'a' else 'a'}]"

    perturbed = score(tmp_path, manifest, {i: wrong(r) for i, r in zip(ids, rows)})
    assert perturbed["n"] == len(rows) and perturbed["correct"] == 0 and perturbed["parse_rate"] == 1.0


def test_mbpp_honest_solutions_with_standard_library_types_and_setup_classes(tmp_path: Path) -> None:
    rows = shared_rows("mbpp") + MBPP_ROWS
    manifest = shipped_suite("mbpp", write_jsonl(tmp_path / "mbpp_test.jsonl", rows), tmp_path)
    ids = [str(r["task_id"]) for r in rows]   # MBPP rows carry distinct task_ids: those are the ids

    gold = score(tmp_path, manifest, {i: f"Action: [BEGIN]\n{r['code']}\n[END]" for i, r in zip(ids, rows)})
    wrong_rows = [(row["id"], row["feedback"]) for row in gold["rows"] if not row["correct"]]
    assert gold["correct"] == len(rows) == gold["n"], wrong_rows
    assert gold["ids"].startswith("row ids")

    def perturbed(row: dict) -> str:
        func = re.search(r"assert\s+(\w+)\(", row["test_list"][0]).group(1)
        return f"[BEGIN]\n{row['code']}\n_real = {func}\ndef {func}(*a):\n    return ('off by one', _real(*a))\n[END]"

    off = score(tmp_path, manifest, {i: perturbed(r) for i, r in zip(ids, rows)})   # honest code, result altered
    assert off["n"] == len(rows) and off["correct"] == 0


def test_dropped_rows_are_counted_by_reason_in_the_report(tmp_path: Path) -> None:
    rows = [{"problem": "1+1?", "solution": "It is $\\boxed{2}$."}, {"problem": "No answer here", "solution": "none"},
            {"problem": "2+2?"}, {"problem": "3+3?", "solution": "$\\boxed{6}$"}]
    data = write_jsonl(tmp_path / "math_test.jsonl", rows)
    data.write_text(data.read_text() + "{truncated\n")
    manifest = shipped_suite("math", data, tmp_path)
    report = score(tmp_path, manifest, {"1": "Finish<<<2>>>", "4": "Finish<<<6>>>"})
    assert (report["items"], report["correct"], report["missing_ids"]) == (2, 2, [])
    dropped = report["dropped_rows"]
    assert [dropped.pop("no \\boxed{...} answer in 'solution'"), dropped.pop("missing key 'solution'")] == [1, 1]
    assert len(dropped) == 1 and next(iter(dropped)).startswith("not JSON (")


def test_predictions_help_says_which_id_to_carry() -> None:
    result = CliRunner().invoke(app, ["eval", "--help"], env={"COLUMNS": "200"})
    text = " ".join(result.stdout.split())
    assert "1-based line number" in text and "task_id" in text


@pytest.mark.parametrize("size_mb", [6.5])
def test_extracting_code_from_a_huge_answer_is_fast(size_mb: float) -> None:
    import time

    from evolver.tasks.answers import code_block, finish_bracket, finish_math

    n = int(size_mb * 1_000_000)
    answers = ["[BEGIN]\n" + "x = 1\n" * (n // 6) + "[END]", "[BEGIN] x\n" * (n // 10),
               "[BEGIN] x = (\n[END]" * (n // 19), "Finish[" * (n // 7), "Finish<<<" * (n // 9)]
    for answer in answers:
        start = time.process_time()
        code_block(answer), finish_bracket(answer), finish_math(answer)
        assert time.process_time() - start < 2.0, answer[:30]
