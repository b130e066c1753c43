"""Suites carry what a chat model needs (an answer instruction, worked examples), and rows may come from `datasets`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evolver.reflection.prompts import reflect_prompt, trial_prompt
from evolver.tasks.rows import DataError
from evolver.tasks.suites import SuiteError, load_manifest


def _suite(folder: Path, manifest: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.toml").write_text(manifest)
    return folder / "manifest.toml"


def test_instruction_and_worked_examples_open_every_prompt(tmp_path: Path) -> None:
    rows = [{"id": "q1", "question": "Which is a fruit?\nA. apple\nB. stone", "answer": "a"}]
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = _suite(tmp_path / "s", 'name = "mc"\nformat = "logiqa"\ndata = "d.jsonl"\n'
                  'instruction = "Pick the right option. End with Finish[letter]."\n'
                  '[[examples]]\nquestion = "Which is blue?\\nA. sky\\nB. grass"\nsolution = "The sky is blue. Finish[a]"\n')
    task = load_manifest(path).task()
    item = task.load("test")[0]
    trial = trial_prompt(task.answer_format, item.text)
    assert trial.startswith("Pick the right option. End with Finish[letter].\n\nQuestion: Which is blue?")
    assert "Solution: The sky is blue. Finish[a]\n(END OF EXAMPLES)\n" in trial
    assert trial.endswith("Question: Which is a fruit?\nA. apple\nB. stone\nSolution:")
    assert "answer" not in trial.lower().split("(end of examples)")[1]  # the gold never enters a prompt
    refl = reflect_prompt(task.answer_format, item.text, "Finish[b]", "", "Find the error.")
    assert refl.startswith(task.answer_format) and "Failed solution: Finish[b]" in refl
    plain = load_manifest(_suite(tmp_path / "p", 'name = "mc"\nformat = "logiqa"\ndata = "d.jsonl"\n')).task()
    assert "(END OF EXAMPLES)" not in plain.answer_format  # a suite without them keeps the format's own line


def test_generated_tasks_keep_their_own_format(tmp_path: Path) -> None:
    path = _suite(tmp_path / "a", 'name = "a"\ntask = "evolver.world.task:ArithTask"\ninstruction = "x"\n')
    with pytest.raises(SuiteError, match="a generated task keeps its own format"):
        load_manifest(path)


def test_rows_from_a_datasets_save_to_disk_folder(tmp_path: Path) -> None:
    import datasets

    rows = {"question": ["What is 2 + 3?", "What is 10 - 4?"], "answer": ["2 + 3 = 5\n#### 5", "#### 6"]}
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "s" / "gsm-disk"))
    path = _suite(tmp_path / "s", 'name = "g"\nformat = "gsm8k"\n[datasets]\npath = "gsm-disk"\n')
    suite = load_manifest(path)
    items = suite.task().load("test")
    assert [(i.id, i.gold) for i in items] == [("1", "5"), ("2", "6")]
    assert suite.task().score(items[0], "2 + 3 = 5. Finish[5]").correct
    one = tmp_path / "one"
    datasets.Dataset.from_dict(rows).save_to_disk(str(one / "flat"))
    flat = load_manifest(_suite(one, 'name = "g"\nformat = "gsm8k"\n[datasets]\npath = "flat"\n'))
    assert len(flat.task().load("test")) == 2
    with pytest.raises(DataError, match="no 'train' split"):
        flat.task().load("train")
    gone = load_manifest(_suite(tmp_path / "x", 'name = "g"\nformat = "gsm8k"\n[datasets]\npath = "nowhere"\n'))
    with pytest.raises(DataError, match=r"nowhere not found \(a `datasets` save_to_disk folder\)"):
        gone.task().load("test")
    with pytest.raises(SuiteError, match="exactly one of `id`"):
        load_manifest(_suite(tmp_path / "y", 'name = "g"\nformat = "gsm8k"\n[datasets]\nid = "a/b"\npath = "p"\n'))


def test_new_worked_examples_make_a_new_evaluation_key(tmp_path: Path) -> None:
    """Cached evaluations are keyed by everything that changes an answer; a suite's worked examples open
    every prompt, so editing them must evaluate again instead of reusing the old scores."""
    from evolver.config import load_config
    from evolver.evaluation.identity import eval_identity, eval_key
    from evolver.reflection.instructions import default_pool

    rows = [{"id": "q1", "question": "Which is a fruit?\nA. apple\nB. stone", "answer": "a"}]
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "evolver.toml").write_text("")
    cfg = load_config(tmp_path / "evolver.toml")
    keys = []
    for solution in ("Finish[a]", "Finish[b]", "Finish[b]"):
        task = load_manifest(_suite(tmp_path / "s", 'name = "mc"\nformat = "logiqa"\ndata = "d.jsonl"\n'
                                    f'[[examples]]\nquestion = "Which is blue?\\nA. sky\\nB. grass"\n'
                                    f'solution = "{solution}"\n')).task()
        items = task.load("test")
        keys.append(eval_key(eval_identity(cfg, "mc", items, "base", None, default_pool()[0], "cpu",
                                           task.answer_format)))
    assert keys[0] != keys[1] and keys[1] == keys[2]
