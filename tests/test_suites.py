"""Suites (manifests), predictions scoring, and `evolver eval` end to end on the shared samples."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evolver.cli.app import app
from evolver.evaluation.predictions import Prediction, read_predictions, score_predictions
from evolver.tasks.reflectevo import LogiQATask
from evolver.tasks.rows import DataError, RecordsSource
from evolver.tasks.suites import SuiteError, find_suite, list_suites, load_manifest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "reflectevo"
BUILT_IN = ("logiqa", "math", "mbpp", "bigbench", "gsm8k")

GSM8K_ROWS = [
    {"question": "Tom has 3 apples and buys 4 more. How many apples does he have?", "answer": "3+4=7\n#### 7"},
    {"question": "A pen costs $2. How much do 6 pens cost?", "answer": "6*2=12\n#### 12"},
    {"question": "Sam had 1,000 coins and lost 250. How many are left?", "answer": "1000-250=750\n#### 750"},
]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def jsonl(path: Path, rows: list[dict]) -> Path:
    return write(path, "".join(json.dumps(r) + "\n" for r in rows))


def shared_rows(name: str) -> tuple[Path, list[dict]]:
    path = SHARED / f"{name}_test_sample.jsonl"
    if not path.is_file():
        pytest.skip(f"shared sample {path} is absent")
    return path, [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def suite_on_sample(name: str, tmp_path: Path) -> tuple[Path, list[dict]]:
    """The built-in manifest, copied to tmp with `data` pointing at the shared sample (or a GSM8K fixture)."""
    if name == "gsm8k":
        data, rows = jsonl(tmp_path / "gsm8k_rows.jsonl", GSM8K_ROWS), GSM8K_ROWS
    else:
        data, rows = shared_rows(name)
    text = (REPO / "evals" / name / "manifest.toml").read_text()
    text, count = re.subn(r'(?m)^data = ".*"$', f"data = {json.dumps(str(data))}", text)
    assert count == 1
    return write(tmp_path / name / "manifest.toml", text), rows


def expected_ids(name: str, rows: list[dict]) -> list[str]:
    """The documented id rule, computed independently of the loaders."""
    return [str(r.get("id", r.get("task_id", n))) for n, r in enumerate(rows, start=1)]


def gold_output(name: str, row: dict) -> str:
    """A correct answer in the model's format, from the raw row."""
    if name == "mbpp":
        return f"Thought: write it.\nAction: [BEGIN]\n{row['code']}\n[END]"
    if name == "math":
        solution = row["solution"]
        start = solution.rindex("\\boxed{") + len("\\boxed{")
        depth, end = 1, start
        while depth:
            depth += {"{": 1, "}": -1}.get(solution[end], 0)
            end += 1
        return f"Thought: done.\nAction: Finish<<<{solution[start:end - 1]}>>>"
    if name == "gsm8k":
        return f"Action: Finish[{row['answer'].split('####')[1].strip()}]"
    return f"Thought: so.\nAction: Finish[{row['answer']}]"


def wrong_output(name: str, row: dict) -> str:
    if name == "mbpp":
        func = re.search(r"assert\s+(\w+)\(", row["test_list"][0]).group(1)
        return f"[BEGIN]\ndef {func}(*args, **kwargs):\n    return 'nope'\n[END]"
    if name == "math":
        return gold_output(name, row).replace(">>>", "+1>>>")
    if name == "gsm8k":
        return "Finish[123456]"
    if name == "logiqa":
        return f"Finish[{'a' if row['answer'] != 'a' else 'b'}]"
    return "Finish[zzz qqq]"


@pytest.fixture
def cli(tmp_path: Path):  # noqa: ANN201
    config = write(tmp_path / "evolver.toml", "")
    runner = CliRunner()  # click >= 8.2 keeps stderr apart (result.stderr)

    def invoke(*args: str):  # noqa: ANN202
        return runner.invoke(app, ["--config", str(config), "eval", *args])

    return invoke


# --- manifests -------------------------------------------------------------------------------------


def test_built_in_manifests_are_valid_and_say_where_data_goes(tmp_path: Path) -> None:
    suites = {s.name: s for s in list_suites([REPO / "evals"], strict=False)}
    for name in BUILT_IN:
        suite = suites[name]
        assert suite.manifest.format == name and suite.manifest.split == "test"
        data = suite.data_files()["test"]
        if data.exists():
            continue  # someone put the real file there
        with pytest.raises(DataError) as err:
            suite.task().load()
        message = str(err.value)
        assert "\n" not in message and f"{data.name} not found: download {data.name} from" in message


def test_manifest_errors_are_one_line_naming_file_and_key(tmp_path: Path) -> None:
    cases = {
        'name = "x"\nformat = "logiqa"\ndata = "d.jsonl"\nlimt = 3\n': "limt: unknown key",
        'format = "logiqa"\ndata = "d.jsonl"\n': "name: required key is missing",
        'name = "x"\nformat = "trivia"\ndata = "d.jsonl"\n': "format: Input should be",
        'name = "x"\nformat = "logiqa"\n': "format 'logiqa' needs `data`",
        'name = "x"\nformat = "logiqa"\ndata = "d.jsonl"\n[datasets]\nid = "a/b"\n': "either `data` or `[datasets]`",
        'name = "x"\nformat = "logiqa"\ndata = "d.jsonl"\nlimit = 0\n': "limit: Input should be greater than or equal to 1",
        'name = "x"\nformat = "logiqa"\ntask = "m:C"\ndata = "d.jsonl"\n': "exactly one of `format` or `task`",
        'name = "x"\nformat = \n': "invalid TOML",
    }
    for i, (text, expected) in enumerate(cases.items()):
        path = write(tmp_path / f"s{i}" / "manifest.toml", text)
        with pytest.raises(SuiteError) as err:
            load_manifest(path)
        assert str(path) in str(err.value) and expected in str(err.value) and "\n" not in str(err.value)


def test_options_are_checked_against_the_task(tmp_path: Path) -> None:
    jsonl(tmp_path / "s" / "rows.jsonl", [{"question": "q\nA. x\nB. y", "answer": "a"}])
    write(tmp_path / "s" / "manifest.toml", 'name = "s"\nformat = "logiqa"\ndata = "rows.jsonl"\n[options]\nshuffle = true\n')
    with pytest.raises(SuiteError, match=r"options: not accepted by format 'logiqa'"):
        find_suite(tmp_path / "s", []).task()


def test_find_and_list_suites(tmp_path: Path) -> None:
    evals = tmp_path / "evals"
    jsonl(evals / "mine" / "rows.jsonl", [{"question": "q\nA. x\nB. y", "answer": "b", "id": "q-1"}])
    write(evals / "mine" / "manifest.toml", 'name = "mine"\nformat = "logiqa"\ndata = "rows.jsonl"\nsplit = "dev"\n')
    by_name = find_suite("mine", [evals])
    assert find_suite(evals / "mine", []).path == by_name.path == find_suite(evals / "mine" / "manifest.toml", []).path
    items = by_name.task().load("dev")
    assert [(i.id, i.gold, i.split) for i in items] == [("q-1", "b", "dev")]
    assert [s.name for s in list_suites([evals, tmp_path / "absent"])] == ["mine"]
    with pytest.raises(SuiteError, match=r"no suite 'other' \(looked in .*evals\); suites: mine"):
        find_suite("other", [evals])
    write(evals / "broken" / "manifest.toml", "name = 1\n")
    with pytest.raises(SuiteError, match="broken/manifest.toml: name"):
        list_suites([evals])
    assert [s.name for s in list_suites([evals], strict=False)] == ["mine"]


def test_split_table_and_line_ids(tmp_path: Path) -> None:
    rows = [{"question": "q\nA. x\nB. y", "answer": "a", "id": 9}, {"question": "r\nA. x\nB. y", "answer": "b"}]
    jsonl(tmp_path / "train.jsonl", rows)
    jsonl(tmp_path / "test.jsonl", rows[:1])
    write(tmp_path / "manifest.toml", 'name = "t"\nformat = "logiqa"\nids = "line"\nlimit = 1\n'
                                      '[data]\ntrain = "train.jsonl"\ntest = "test.jsonl"\n')
    task = find_suite(tmp_path / "manifest.toml", []).task()
    assert [i.id for i in task.load("train")] == ["1"] and len(task.load("test")) == 1


def test_arith_format_maps_to_the_world_task(tmp_path: Path) -> None:
    pytest.importorskip("evolver.world.task")
    write(tmp_path / "manifest.toml", 'name = "arith"\nformat = "arith"\nlimit = 3\n[options]\nseed = 1\n')
    task = find_suite(tmp_path, []).task()
    items = task.load("test")
    assert len(items) == 3 and task.score(items[0], f"Finish[{items[0].gold}]").correct


def test_hub_datasets_are_not_touched_until_loaded(tmp_path: Path) -> None:
    write(tmp_path / "manifest.toml", 'name = "g"\nformat = "gsm8k"\n[datasets]\nid = "nobody/nothing-here"\nconfig = "main"\n')
    suite = find_suite(tmp_path, [])
    task = suite.task()  # builds without any network or import of `datasets` work
    assert task.name == "g" and suite.manifest.datasets.id == "nobody/nothing-here"


# --- predictions -----------------------------------------------------------------------------------


def test_score_predictions_reports_everything() -> None:
    rows = [{"question": f"q{i}\nA. x\nB. y", "answer": "a", "id": f"q{i}"} for i in range(4)]
    task = LogiQATask(RecordsSource({"test": rows}))
    items = task.load()
    preds = [Prediction("q0", "Finish[a]"), Prediction("q1", "Finish[b]"), Prediction("q1", "Finish[a]"),
             Prediction("q2", "no answer"), Prediction("zz", "Finish[a]")]
    report = score_predictions(task, items, preds, malformed=["f:3: not JSON"])
    assert (report.items, report.n, report.correct) == (4, 3, 1)
    assert report.accuracy == pytest.approx(1 / 3) and report.accuracy_all == pytest.approx(1 / 4)
    assert report.parse_rate == pytest.approx(2 / 3)
    assert report.unknown_ids == ["zz"] and report.missing_ids == ["q3"] and report.duplicate_ids == ["q1"]
    assert [r.correct for r in report.rows] == [True, False, False]   # the first q1 is the one scored
    assert report.reasons == {"correct": 1, "unparsed": 1, "wrong": 1} and report.malformed == ["f:3: not JSON"]


def test_read_predictions_reports_bad_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "p.jsonl", '{"id": 1, "output": "a"}\n\nnot json\n[1]\n{"id": 2}\n'
                                      '{"id": true, "output": "x"}\n{"id": 3, "output": 4}\n{"id": "x", "output": "b"}\n')
    rows, bad = read_predictions(path)
    assert [(r.id, r.output) for r in rows] == [("1", "a"), ("x", "b")]
    assert [b.split(": ", 1)[0] for b in bad] == [f"{path}:{n}" for n in (3, 4, 5, 6, 7)]
    assert "not JSON" in bad[0] and "missing key 'output'" in bad[2] and "'output' must be a string" in bad[4]


# --- the CLI, end to end ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUILT_IN)
def test_eval_cli_scores_gold_and_wrong_predictions(name: str, tmp_path: Path, cli) -> None:  # noqa: ANN001
    manifest, rows = suite_on_sample(name, tmp_path)
    ids = expected_ids(name, rows)
    gold = jsonl(tmp_path / "gold.jsonl", [{"id": i, "output": gold_output(name, r)} for i, r in zip(ids, rows)])
    result = cli("--benchmark", str(manifest), "--predictions", str(gold), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["suite"], report["items"], report["n"]) == (name, len(rows), len(rows))
    assert report["correct"] == len(rows) and report["accuracy"] == 1.0 and report["parse_rate"] == 1.0
    assert report["missing_ids"] == report["unknown_ids"] == report["duplicate_ids"] == report["malformed"] == []

    wrong = jsonl(tmp_path / "wrong.jsonl", [{"id": i, "output": wrong_output(name, r)} for i, r in zip(ids, rows)])
    report = json.loads(cli("--benchmark", str(manifest), "--predictions", str(wrong), "--json").stdout)
    assert report["n"] == len(rows) and report["correct"] == 0 and report["parse_rate"] == 1.0


def test_eval_cli_table_limit_and_problems(tmp_path: Path, cli) -> None:  # noqa: ANN001
    _, rows = shared_rows("logiqa")
    evals = tmp_path / "evals"
    text = (REPO / "evals" / "logiqa" / "manifest.toml").read_text()
    write(evals / "logiqa" / "manifest.toml", re.sub(r'(?m)^data = ".*"$', f'data = "{SHARED}/logiqa_test_sample.jsonl"', text))
    lines = [json.dumps({"id": r["id"], "output": f"Finish[{r['answer']}]"}) for r in rows[:6]]
    lines += [json.dumps({"id": rows[0]["id"], "output": "Finish[a]"}), json.dumps({"id": 424242, "output": "Finish[a]"}),
              "{broken", json.dumps({"output": "Finish[a]"})]
    preds = write(tmp_path / "preds.jsonl", "\n".join(lines) + "\n")

    result = cli("--benchmark", "logiqa", "--predictions", str(preds))   # by name, under the config's evals/
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert re.search(r"items\s+│ 10", out) and re.search(r"scored\s+│ 6", out) and re.search(r"accuracy\s+│ 100.00%", out)
    assert "missing ids (4)" in out and "unknown ids (1)" in out and "424242" in out and "duplicate ids (1)" in out
    assert re.search(r"malformed lines\s+│ 2 \(listed on stderr\)", out)
    assert f"evolver: warning: {preds}:9: not JSON" in result.stderr
    assert f"evolver: warning: {preds}:10: missing key 'id'" in result.stderr

    report = json.loads(cli("--benchmark", "logiqa", "--predictions", str(preds), "--limit", "3", "--json").stdout)
    assert (report["items"], report["n"], report["beyond_limit"]) == (3, 3, 3)
    assert report["missing_ids"] == [] and report["unknown_ids"] == ["424242"]


def test_eval_cli_errors(tmp_path: Path, cli) -> None:  # noqa: ANN001
    preds = write(tmp_path / "p.jsonl", '{"id": 1, "output": "x"}\n')
    result = cli("--benchmark", "logiqa")
    assert result.exit_code == 2 and "give --generation N to evaluate a model" in result.output
    result = cli("--benchmark", "nope", "--predictions", str(preds))
    assert result.exit_code == 2 and "no suite 'nope'" in result.output
    write(tmp_path / "evals" / "logiqa" / "manifest.toml", (REPO / "evals" / "logiqa" / "manifest.toml").read_text())
    result = cli("--benchmark", "logiqa", "--predictions", str(preds))
    assert result.exit_code == 2
    assert "logiqa_test.jsonl not found: download logiqa_test.jsonl from the ReflectEvo release" in result.output
    result = cli("--benchmark", "logiqa", "--predictions", str(tmp_path / "absent.jsonl"), "--json")
    assert result.exit_code == 2 and json.loads(result.stdout)["error"] == "usage"
    jsonl(tmp_path / "evals" / "logiqa" / "logiqa_test.jsonl", [{"question": "q\nA. x\nB. y", "answer": "a", "id": 5}])
    result = cli("--benchmark", "logiqa", "--predictions", str(preds))   # nothing scorable: exit 1
    assert result.exit_code == 1 and "unknown ids (1)" in result.stdout
