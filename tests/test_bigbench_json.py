"""BIG-bench task.json suites: items, splits, subtasks, tarball members, answers read from a chat model's text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evolver.tasks.bigbench_json import BigBenchJsonTask, BigBenchSource
from evolver.tasks.choices import parse_choice, parse_free
from evolver.tasks.rows import DataError
from evolver.tasks.suites import SuiteError, load_manifest
from evolver.testing.bigbench import build_sdist, choice_task, free_task, ordering_task


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOLVER_CACHE", str(tmp_path / "cache"))


def _write(path: Path, content: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))
    return path


def _task(path: Path, **kw: object) -> BigBenchJsonTask:
    return BigBenchJsonTask(BigBenchSource(path, **{k: v for k, v in kw.items() if k in ("members", "shots", "test_share")}),
                            **{k: v for k, v in kw.items() if k not in ("members", "shots", "test_share")})


def test_split_is_stable_disjoint_and_shots_leave_the_pool(tmp_path: Path) -> None:
    f = _write(tmp_path / "t" / "task.json", choice_task("sports", n=60))
    task = _task(f, shots=3)
    train, test, every = task.load("train"), task.load("test"), task.load("all")
    assert len(every) == 60 and len(train) + len(test) == 57  # 3 shots are in neither split
    assert not {i.id for i in train} & {i.id for i in test}
    shots = {r.id for r in task.source.shot_records()}
    assert len(shots) == 3 and not shots & {i.id for i in train + test}
    again = _task(f, shots=3)
    assert [i.id for i in again.load("test")] == [i.id for i in test]  # a content hash, not a random draw
    assert {i.id for i in every} == {str(n) for n in range(1, 61)}  # ids: positions in the task file
    prompt = task.answer_format
    assert prompt.count("Question: ") == 3 and "(END OF EXAMPLES)" in prompt and "Finish[" in prompt


def test_choice_items_follow_the_tasks_own_format(tmp_path: Path) -> None:
    f = _write(tmp_path / "t" / "task.json", choice_task("sports", n=10))
    hidden = _task(f).load("all")[0]  # append_choices_to_input = false: no options in the text
    assert hidden.text.startswith("Is the statement plausible or implausible?\nStatement: Player 0")
    assert hidden.text.endswith("\nPlausible/implausible?") and "choice:" not in hidden.text
    assert hidden.gold == "implausible" and hidden.meta["letters"] is False
    shown = _task(f, show_choices="always").load("all")[0]
    assert "\n  choice: A. " in shown.text and "\n  choice: B. " in shown.text  # BIG-bench's default prefix, lettered
    assert shown.gold in ("A", "B") and shown.meta["choices"][shown.meta["correct"][0]] == "implausible"
    g = _write(tmp_path / "u" / "task.json", choice_task("sports", n=10, append_choices_to_input=True,
                                                        choice_prefix="\nOption: "))
    assert "\nOption: A. " in _task(g).load("all")[0].text


@pytest.mark.parametrize("output, index, answer", [
    ("Finish[B]", 1, "B"), ("finish[ b ]", 1, "b"), ("Finish[implausible]", 1, "implausible"),
    ("B", 1, "B"), ("(B)", 1, "B"), ("B. implausible", 1, "B"), ("The answer is B.", 1, "B"),
    ("Answer: plausible", 0, "plausible"), ("I think this is implausible.", 1, "implausible"),
    ("It is plausible, since players score.", 0, "plausible"),
    ("A player like him could score.", None, None),  # 'A' opening a sentence is no label
    ("It could be plausible or implausible.", None, None),  # two options named: unparsed
    ("Finish[maybe]", None, "maybe"),  # an answer, but no option: wrong, not unparsed
])
def test_parse_choice_reads_a_chat_models_text(output: str, index: int | None, answer: str | None) -> None:
    assert parse_choice(output, ["plausible", "implausible"], letters=True) == (index, answer)


def test_parse_choice_without_letters_ignores_them() -> None:
    assert parse_choice("B", ["plausible", "implausible"], letters=False) == (None, None)
    assert parse_choice("The black book is the leftmost.", ["The black book is the leftmost.",
                                                            "The red book is the leftmost."], letters=False)[0] == 0


@pytest.mark.parametrize("output, answer", [
    ("Finish[3]", "3"), ("The answer is three.", "three"), ("Answer: 3\n", "3"), ("3", "3"),
    ("Let me count the cats one at a time, carefully, going through every animal in the list twice.", None),
])
def test_parse_free(output: str, answer: str | None) -> None:
    assert parse_free(output) == answer


def test_free_text_scoring_exact_match_f1_and_output_regex(tmp_path: Path) -> None:
    f = _write(tmp_path / "t" / "task.json", free_task("count", n=10))
    task = _task(f)
    item = task.load("all")[2]  # 3 animals: targets ["three", "3"]
    assert item.meta["targets"] == ["three", "3"] and item.gold == "three"
    assert task.score(item, "Finish[3]").correct and task.score(item, "Finish[Three.]").correct
    wrong = task.score(item, "Finish[three cats]")
    assert not wrong.correct and 0 < wrong.scores["f1"] < 1 and "F1" in wrong.feedback
    assert task.score(item, "").reason == "unparsed"
    g = _write(tmp_path / "a" / "task.json", {"name": "add", "output_regex": r"[-+]?\d+",
                                               "examples": [{"input": "What is 1 plus 2?", "target": "3"}]})
    arith = _task(g)
    assert arith.score(arith.load("all")[0], "Finish[it is 3 I think]").correct  # the task's regex picks "3"


def test_subtasks_become_levels(tmp_path: Path) -> None:
    _write(tmp_path / "ld" / "task.json", {"name": "logical_deduction", "description": "parent"})
    _write(tmp_path / "ld" / "three_objects" / "task.json", ordering_task("three_objects", 3, n=12))
    _write(tmp_path / "ld" / "five_objects" / "task.json", ordering_task("five_objects", 5, n=12))
    task = _task(tmp_path / "ld" / "task.json", show_choices="always", shots=2)
    items = task.load("all")
    assert {i.meta["level"] for i in items} == {"three_objects", "five_objects"}
    assert items[0].id.startswith(("five_objects/", "three_objects/"))
    assert len(task.source.shot_records()) == 2 and {r.data["level"] for r in task.source.shot_records()} == {
        "three_objects", "five_objects"}  # one worked example from each subtask
    one = _task(tmp_path / "ld" / "three_objects" / "task.json", show_choices="always").load("all")
    assert len(one) == 12 and "level" not in one[0].meta and one[0].id == "1"


def test_task_file_without_examples_is_one_line_naming_it(tmp_path: Path) -> None:
    f = _write(tmp_path / "empty" / "task.json", {"name": "empty", "description": "nothing"})
    with pytest.raises(DataError, match=r"empty/task.json: task file without examples"):
        _task(f).load("test")


def test_tarball_members_read_without_unpacking_and_cached(tmp_path: Path) -> None:
    sdist = build_sdist(tmp_path / "bigbench-1.0.0.tar.gz")
    members = ("bigbench/benchmark_tasks/sports_understanding/task.json", "bigbench/benchmark_tasks/object_counting")
    task = _task(sdist, members=members, shots=2)
    items = task.load("all")
    assert len(items) == 80 and items[0].id == "sports_understanding/1" and items[-1].id == "object_counting/40"
    assert {i.meta["level"] for i in items} == {"sports_understanding", "object_counting"}
    cached = list((tmp_path / "cache" / "members").rglob("task.json"))
    assert len(cached) == 2  # the two members, not the whole tarball
    sub = _task(sdist, members=("bigbench/benchmark_tasks/logical_deduction/task.json",), show_choices="always")
    assert {i.meta["level"] for i in sub.load("all")} == {"three_objects", "five_objects"}
    with pytest.raises(DataError, match=r"bigbench-1.0.0.tar.gz: no member 'bigbench/benchmark_tasks/nope/task.json'"):
        _task(sdist, members=("bigbench/benchmark_tasks/nope/task.json",)).load("test")


def test_manifest_suite_with_cache_path_and_options(tmp_path: Path) -> None:
    build_sdist(tmp_path / "cache" / "bigbench-1.0.0.tar.gz")
    suite_dir = tmp_path / "evals" / "bb-sports"
    suite_dir.mkdir(parents=True)
    (suite_dir / "manifest.toml").write_text(
        'name = "bb-sports"\nformat = "bigbench_json"\ndata = "$EVOLVER_CACHE/bigbench-1.0.0.tar.gz"\n'
        'member = "bigbench/benchmark_tasks/sports_understanding/task.json"\n'
        '[options]\nshots = 2\ntest_share = 0.25\nshow_choices = "always"\n')
    suite = load_manifest(suite_dir / "manifest.toml")
    loaded = suite.load("test")
    assert 0 < len(loaded.items) < 20 and "positions in the task file" in loaded.ids
    assert "choice: A." in loaded.items[0].text
    (suite_dir / "manifest.toml").write_text('name = "x"\nformat = "bigbench_json"\ndata = "t.json"\n[options]\ntest_share = 2\n')
    with pytest.raises(SuiteError, match="test_share must be between 0 and 1"):
        load_manifest(suite_dir / "manifest.toml").task()
    (suite_dir / "manifest.toml").write_text('name = "x"\nformat = "logiqa"\ndata = "t.jsonl"\nmember = "a/task.json"\n')
    with pytest.raises(SuiteError, match="`member` is for format 'bigbench_json'"):
        load_manifest(suite_dir / "manifest.toml")


def test_limit_counts_per_task_when_a_suite_reads_several(tmp_path: Path) -> None:
    sdist = build_sdist(tmp_path / "bigbench-1.0.0.tar.gz")
    task = _task(sdist, members=("bigbench/benchmark_tasks/sports_understanding", "bigbench/benchmark_tasks/object_counting"))
    items = task.load("test", limit=3)
    assert [i.meta["level"] for i in items] == ["sports_understanding"] * 3 + ["object_counting"] * 3


def _predictions(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"id": i, "output": o}) + "\n" for i, o in rows))
    return path


def test_eval_scores_predictions_for_any_bigbench_task(cli, tmp_path: Path) -> None:  # noqa: ANN001
    build_sdist(tmp_path / "cache" / "pkgs" / "bigbench-1.0.0.tar.gz")
    task = _task(tmp_path / "cache" / "pkgs" / "bigbench-1.0.0.tar.gz",
                 members=("bigbench/benchmark_tasks/object_counting/task.json",))
    items = task.load("test")
    preds = _predictions(tmp_path / "p.jsonl", [(it.id, f"Finish[{it.meta['targets'][1]}]") for it in items[:-1]]
                         + [(items[-1].id, "I cannot count.")])
    result = cli("eval", "--benchmark", "bigbench:object_counting", "--predictions", preds, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n"] == len(items) and report["correct"] == len(items) - 1 and report["format"] == "bigbench_json"
    assert report["parse_rate"] == 1.0 and "f1" in report["scores"]  # "I cannot count." reads as a (wrong) answer
    f = _write(tmp_path / "own" / "task.json", choice_task("sports", n=12))
    every = _predictions(tmp_path / "all.jsonl", [(str(n), "Finish[plausible]") for n in range(1, 13)])
    result = cli("eval", "--benchmark", f, "--predictions", every, "--split", "all", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["correct"] == 8  # 8 of the 12 are plausible


def test_eval_bad_bigbench_inputs_are_one_line_exit_2(cli, tmp_path: Path) -> None:  # noqa: ANN001
    sdist = build_sdist(tmp_path / "cache" / "pkgs" / "bigbench-1.0.0.tar.gz")
    preds = _predictions(tmp_path / "p.jsonl", [("1", "Finish[a]")])
    empty = _write(tmp_path / "empty" / "task.json", {"name": "empty", "description": "no examples"})
    suite = tmp_path / "evals" / "gone"
    suite.mkdir(parents=True)
    (suite / "manifest.toml").write_text(f'name = "gone"\nformat = "bigbench_json"\ndata = "{sdist}"\n'
                                         'member = "bigbench/benchmark_tasks/gone/task.json"\n')
    for benchmark, names in ((empty, f"{empty}: task file without examples"),
                             (suite, f"{sdist}: no member 'bigbench/benchmark_tasks/gone/task.json'")):
        result = cli("eval", "--benchmark", benchmark, "--predictions", preds)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and names in lines[0], result.stderr
