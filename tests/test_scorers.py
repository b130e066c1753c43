"""Scorers on the shared ReflectEvo samples: gold in the model's format is right, perturbed is wrong,
and the tolerance the reference lacks (spaces, case, nesting, wrappers) holds in both directions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from evolver.tasks.answers import choice_letter, code_block, finish_bracket, finish_math, options, squad_normalize, token_f1
from evolver.tasks.gsm8k import GSM8KTask
from evolver.tasks.math_equiv import hendrycks_equiv, last_boxed, math_equiv
from evolver.tasks.reflectevo import BigBenchTask, LogiQATask, MathTask, MBPPTask
from evolver.tasks.rows import DataError, JsonlSource, RecordsSource

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "reflectevo"


def sample(name: str) -> Path:
    path = SHARED / f"{name}_test_sample.jsonl"
    if not path.is_file():
        pytest.skip(f"shared sample {path} is absent")
    return path


def raw_rows(name: str) -> list[dict]:
    return [json.loads(line) for line in sample(name).read_text().splitlines() if line.strip()]


# --- answer extraction -----------------------------------------------------------------------------


@pytest.mark.parametrize("output, expected", [
    ("Action: Finish[b]", "b"),
    ("Finish[ B ]", "B"),                       # the reference keeps the spaces and fails
    ("finish [c]", "c"),
    ("Finish[[1, 2], [3]]", "[1, 2], [3]"),     # nested brackets (the reference cuts at the first ']')
    ("Finish[f(a[0])] and more]", "f(a[0])"),
    ("use Finish[X] to answer.\nAction: Finish[d]", "d"),   # a restated placeholder is skipped
    ("Finish[a]\nQuestion: next one...\nFinish[c]", "a"),   # the invented follow-up does not count
    ("Finish[unclosed", None),
    ("no answer here", None),
    ("Finish[]", None),
])
def test_finish_bracket(output: str, expected: str | None) -> None:
    assert finish_bracket(output) == expected


def test_finish_math_and_code_block() -> None:
    assert finish_math("so Finish<<< \\frac{1}{2} >>>") == "\\frac{1}{2}"
    assert finish_math("FINISH <<<x > 3>>>") == "x > 3"
    assert finish_math("Finish<<<>>> then Finish<<<7>>>") == "7"
    assert finish_math("Finish[7]") is None
    assert code_block("[BEGIN]\ndef f():\n    return 1\n[END]") == "def f():\n    return 1"
    assert code_block("[BEGIN]\n```python\ndef f(): return 1\n```\n[END]") == "def f(): return 1"
    assert code_block("I write code between [BEGIN] and [END].\nAction: [BEGIN]\nx = 1\n[END]") == "x = 1"
    assert code_block("[BEGIN]\ny = 2\n") == "y = 2"          # stop sequence ate [END]
    assert code_block("def f(): pass") is None


def test_choice_letter_tolerance() -> None:
    opts = options("Is it?\nOptions:\nA. True\nB. False\nC. Neither")
    assert opts == {"a": "True", "b": "False", "c": "Neither"}
    for answer, letter in [("b", "b"), ("B", "b"), ("(b)", "b"), ("B. False", "b"), ("Option B", "b"),
                           ("**C**", "c"), ("false", "b"), ("The answer: a", "the answer: a")]:
        assert choice_letter(answer, opts) == letter, answer
    assert choice_letter("A cat", opts) == "a cat"  # a word that starts with a letter is not that letter


def test_squad_normalisation_and_f1() -> None:
    assert squad_normalize("The  Court!") == "court"
    assert token_f1("the court of appeal", "The court") == pytest.approx(0.5)  # p = 1/3, r = 1
    assert token_f1("x", "y") == 0.0


# --- MATH equivalence ------------------------------------------------------------------------------


@pytest.mark.parametrize("pred, gold", [
    ("\\frac14", "\\frac{1}{4}"), ("\\dfrac{1}{4}", "\\frac14"), ("0.5", "\\frac{1}{2}"), ("1/4", "\\frac14"),
    ("x = 3", "3"), ("10\\%", "10"), ("90^\\circ", "90"), ("$84.5$", "84.5"), ("\\boxed{31}", "31"),
    ("0.25", "\\frac14"), ("-5.5", "-\\frac{11}{2}"), ("84.50", "84.5"), ("2\\sqrt3", "\\sqrt{12}"),
    ("(x+1)^2", "x^2+2x+1"), ("\\frac{\\pi}{2}", "\\pi/2"), ("(3, \\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)"),
])
def test_math_equal(pred: str, gold: str) -> None:
    assert math_equiv(pred, gold)[0]


@pytest.mark.parametrize("pred, gold", [
    ("0.333", "\\frac13"), ("(1, 2]", "(1, 2)"), ("(2, 1)", "(1, 2)"), ("-5", "5"), ("x^2", "x^3"),
    ("9^{9^{9}}", "1"), ("__import__('os').getcwd()", "1"), ("2^{100000}", "2"),
])
def test_math_not_equal(pred: str, gold: str) -> None:
    assert not math_equiv(pred, gold)[0]


def test_symbolic_check_is_time_limited_on_and_off_the_main_thread() -> None:
    import threading
    import time

    from evolver.tasks.math_equiv import _with_timeout

    def slow() -> bool:
        end = time.monotonic() + 5
        while time.monotonic() < end:  # pure Python, as sympy is: the alarm can interrupt it
            pass
        return True

    start = time.monotonic()
    assert _with_timeout(slow, 0.2) is False and time.monotonic() - start < 2
    results: list[bool] = []
    worker = threading.Thread(target=lambda: results.append(_with_timeout(lambda: time.sleep(5) or True, 0.2)))
    start = time.monotonic()
    worker.start()
    worker.join()
    assert results == [False] and time.monotonic() - start < 2
    assert _with_timeout(lambda: True, 1.0) is True


def test_hendrycks_rules_and_boxed_parsing() -> None:
    assert hendrycks_equiv("\\left(1,2\\right)", "(1,2)")
    assert not hendrycks_equiv("0.25", "\\frac14")  # the reference's normaliser alone misses this
    assert last_boxed("so $b=\\boxed{-5}$ and \\boxed{\\frac{1}{\\sqrt{2}}}.") == "\\frac{1}{\\sqrt{2}}"
    assert last_boxed("\\boxed 5$ ok") == "5"
    assert last_boxed("\\boxed{unclosed") is None


# --- tasks on the shared samples --------------------------------------------------------------------


def test_logiqa_sample() -> None:
    task = LogiQATask(JsonlSource({"test": sample("logiqa")}))
    items = task.load()
    rows = raw_rows("logiqa")
    assert [i.id for i in items] == [str(r["id"]) for r in rows]   # the dataset's own ids
    assert all(set(i.meta["options"]) == {"a", "b", "c", "d"} for i in items)
    for item in items:
        other = next(x for x in "abcd" if x != item.gold)
        assert task.score(item, f"Thought: t\nAction: Finish[{item.gold}]").correct
        assert task.score(item, f"Action: Finish[ {item.gold.upper()} ]").correct
        assert task.score(item, f"Finish[{item.meta['options'][item.gold]}]").correct   # the option's text
        wrong = task.score(item, f"Finish[{other}]")
        assert not wrong.correct and wrong.reason == "wrong" and wrong.answer == other
        assert task.score(item, "The answer is clearly (b).").reason == "unparsed"


def test_math_sample() -> None:
    task = MathTask(JsonlSource({"test": sample("math")}))
    items = task.load()
    assert [i.id for i in items] == [str(n) for n in range(1, 11)]   # line numbers
    assert [i.gold for i in items][:5] == ["-5", "0", "\\frac14", "-\\frac{11}{2}", "84.5"]
    assert items[5].gold == "134"   # two \boxed{} in the solution: the last one
    for item in items:
        assert task.score(item, f"Thought: ...\nAction: Finish<<<{item.gold}>>>").correct
        v = task.score(item, f"Finish<<<{item.gold}+1>>>")
        assert not v.correct and v.reason == "wrong"
    assert task.score(items[2], "Finish<<<0.25>>>").scores["symbolic"] == 1.0
    assert task.score(items[0], "the answer is \\boxed{-5}").reason == "unparsed"


def test_mbpp_sample_items_and_scoring() -> None:
    task = MBPPTask(JsonlSource({"test": sample("mbpp")}), timeout_s=5)
    rows = raw_rows("mbpp")
    items = task.load(limit=3)
    assert [i.id for i in items] == [str(r["task_id"]) for r in rows[:3]]
    first = items[0]
    assert first.text.startswith("You are an expert Python programmer, and here is your task: Write a python function")
    assert "Your code should pass these tests: ['assert remove_Occ(" in first.text
    good = task.score(first, f"Thought: easy\nAction: [BEGIN]\n{rows[0]['code']}\n[END]")
    assert good.correct and good.reason == "correct" and good.scores["tests_passed"] == 1.0
    bad = task.score(first, "[BEGIN]\ndef remove_Occ(s, ch):\n    return s\n[END]")
    assert not bad.correct and bad.reason == "wrong" and bad.scores["tests_passed"] == 0.0
    assert bad.feedback == 'Test failed: assert remove_Occ("hello","l") == "heo" (got \'hello\')'
    assert rows[0]["code"] not in bad.feedback and "for i in range" not in bad.feedback   # never the reference
    crash = task.score(first, "[BEGIN]\ndef remove_Occ(s, ch):\n    return undefined_name\n[END]")
    assert crash.reason.startswith("error: NameError") and "line 2" in crash.feedback
    assert task.score(first, "no code").reason == "unparsed"


def test_mbpp_setup_code_and_challenge_tests() -> None:
    row = {"task_id": 7, "text": "t", "code": "def f():\n    return SETUP + 1",
           "test_setup_code": "SETUP = 41", "test_list": ["assert f() == 42"], "challenge_test_list": ["assert f() == 0"]}
    plain = MBPPTask(RecordsSource({"test": [row]}), timeout_s=5)
    item = plain.load()[0]
    assert item.id == "7" and plain.score(item, f"[BEGIN]\n{row['code']}\n[END]").correct   # setup code honoured
    strict = MBPPTask(RecordsSource({"test": [row]}), challenge_tests=True, timeout_s=5)
    v = strict.score(item, f"[BEGIN]\n{row['code']}\n[END]")
    assert not v.correct and v.scores["tests_passed"] == 0.5


def test_bigbench_sample_free_text() -> None:
    task = BigBenchTask(JsonlSource({"test": sample("bigbench")}, ids="line"))
    items = task.load()
    assert all(i.meta["kind"] == "free" for i in items)   # this sample holds only free-text rows
    for item in items:
        assert task.score(item, f"Action: Finish[{item.gold}]").correct
        v = task.score(item, "Finish[zzz qqq]")
        assert not v.correct and v.scores["f1"] == 0.0
    court = next(i for i in items if i.gold == "The court")
    v = task.score(court, "Finish[the court.]")
    assert v.correct and v.scores["f1"] == 1.0
    partial = task.score(court, "Finish[the district court]")
    assert not partial.correct and 0 < partial.scores["f1"] < 1


def test_bigbench_id_schemes_on_colliding_ids() -> None:
    # A row without an id gets line number 2, which the first row uses as its id.
    rows = [{"question": "q", "answer": "x", "id": 2}, {"question": "q", "answer": "y"}]
    with pytest.raises(DataError, match=r"<test>:2: id '2' repeats <test>:1; .* set ids = \"auto\""):
        BigBenchTask(RecordsSource({"test": rows}, ids="row")).load()
    loaded = BigBenchTask(RecordsSource({"test": rows})).load_report()   # the default, "auto"
    assert [i.id for i in loaded.items] == ["1", "2"] and loaded.ids == "line numbers (1 row without an id)"
    assert [i.id for i in BigBenchTask(RecordsSource({"test": rows}, ids="line")).load()] == ["1", "2"]


def test_bigbench_multiple_choice_rows() -> None:
    rows = [{"question": "Claim holds?\nOptions:\nA. True\nB. False\nC. Neither", "answer": "b", "id": 43617},
            {"question": "Would it?\nOptions:\nA. Yes\nB. No", "answer": {"answer": "A"}}]
    task = BigBenchTask(RecordsSource({"test": rows}, ids="row"))
    first, second = task.load()
    assert (first.id, first.meta["kind"], first.gold) == ("43617", "choice", "b")
    assert (second.id, second.gold) == ("2", "a")
    assert task.score(first, "Finish[B]").correct and task.score(first, "Finish[ False ]").correct
    assert not task.score(first, "Finish[a]").correct
    assert task.score(second, "Finish[(A) Yes]").correct


def test_gsm8k() -> None:
    rows = [{"question": "Tom has 3 apples and buys 4. How many?", "answer": "3+4=<<3+4=7>>7\n#### 7"},
            {"question": "Cost?", "answer": "...\n#### 1,250"}]
    task = GSM8KTask(RecordsSource({"test": rows}))
    a, b = task.load()
    assert (a.id, a.gold, b.gold) == ("1", "7", "1250")
    assert task.score(a, "Finish[7]").correct and task.score(a, "Finish[ 7.00 ]").correct
    assert task.score(b, "so Finish[$1,250]").correct
    assert task.score(a, "3 + 4 = 7\n#### 7").scores["strict"] == 1.0
    loose = task.score(a, "He has 7 apples now.")
    assert loose.correct and loose.scores["strict"] == 0.0
    assert not task.score(a, "Finish[8]").correct
    assert task.score(a, "no idea").reason == "unparsed"
    with pytest.raises(DataError, match="no final number"):
        GSM8KTask(RecordsSource({"test": [{"question": "q", "answer": "none"}]})).load()


def test_unusable_rows_are_dropped_and_named(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"question": "q", "answer": "a"}\n\nnot json\n[1]\n{"question": "r"}\n')
    loaded = LogiQATask(JsonlSource({"test": path})).load_report()
    assert [i.id for i in loaded.items] == ["1"]
    assert [str(d) for d in loaded.dropped] == [f"{path}:3: not JSON (Expecting value at column 1)",
                                                f"{path}:4: expected a JSON object, got list",
                                                f"{path}:5: missing key 'answer'"]
    assert loaded.dropped_by_reason()["missing key 'answer'"] == 1


def test_a_file_without_usable_rows_is_one_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"question": "q"}\n')
    with pytest.raises(DataError, match=r"rows.jsonl:1: missing key 'answer'$"):
        LogiQATask(JsonlSource({"test": path})).load()
    path.write_text('{"question": "q"}\nnot json\n')
    with pytest.raises(DataError, match=r"rows.jsonl:1: missing key 'answer' \(and 1 more unusable rows\)"):
        LogiQATask(JsonlSource({"test": path})).load()
    with pytest.raises(DataError, match=r"no 'train' split here \(splits: test\)"):
        LogiQATask(JsonlSource({"test": path})).load("train")
    path.write_bytes(b'{"question": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"rows.jsonl: not UTF-8 text"):
        LogiQATask(JsonlSource({"test": path})).load()


def test_limits_take_a_prefix() -> None:
    task = LogiQATask(JsonlSource({"test": sample("logiqa")}), cap=4)
    assert len(task.load()) == 4 and len(task.load(limit=2)) == 2 and len(task.load(limit=9)) == 4
    ids = [i.id for i in LogiQATask(JsonlSource({"test": sample("logiqa")})).load()]
    assert [i.id for i in task.load(limit=3)] == ids[:3]


def test_verdicts_never_carry_gold_for_choice_tasks() -> None:
    task = LogiQATask(JsonlSource({"test": sample("logiqa")}))
    for item in task.load():
        other = next(x for x in "abcd" if x != item.gold)
        v = task.score(item, f"Finish[{other}]")
        assert not re.search(rf"\b{item.gold}\b", v.feedback)
