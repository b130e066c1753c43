"""The embedded world: question generation, splits, scorer, corpus habits, tokenizer, shipped model."""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
from pathlib import Path

import pytest

from evolver.config.schema import ModelConfig
from evolver.models import ModelLoadError, load_causal_lm, load_tokenizer
from evolver.reflection.instructions import default_pool
from evolver.reflection.prompts import reflect_prompt, retry_prompt, trial_prompt
from evolver.world import base_model_path
from evolver.world.corpus import examples, fault_kind, gold_faults, make_example, misread, run_chain, slipped
from evolver.world.task import (
    ArithTask,
    Question,
    Step,
    as_first_trial,
    content_hash,
    gold_steps,
    is_held_out,
    make_questions,
    parse_answer,
    parse_question,
    question_text,
    render_retry,
    render_solution,
)
from evolver.world.tokenizer import template_texts


@pytest.fixture(scope="module")
def task() -> ArithTask:
    return ArithTask()


def test_questions_are_deterministic_and_distinct(task: ArithTask) -> None:
    a, b = task.load("train", 300), ArithTask().load("train", 300)
    assert [(i.id, i.text, i.gold) for i in a] == [(i.id, i.text, i.gold) for i in b]
    assert len({i.text for i in a}) == 300
    assert ArithTask(seed=1).load("train", 50)[0].text != a[0].text
    assert [i.text for i in task.load("train", 100)] == [i.text for i in a[:100]]


def test_splits_are_large_and_disjoint_including_the_corpus(task: ArithTask) -> None:
    train = {content_hash(i.text) for i in task.load("train")}
    test = task.load("test")
    assert len(train) >= 20_000 and len(test) >= 500
    held = {content_hash(i.text) for i in test}
    assert not held & train
    corpus_questions = {content_hash(ex.trial_doc.split("\nQuestion: ")[1].split("\n")[0]) for ex in examples(0, 3000)}
    assert len(corpus_questions) == 3000 and not held & corpus_questions


def test_scorer_correct_perturbed_unparseable(task: ArithTask) -> None:
    item = task.load("test", 1)[0]
    good = render_solution(gold_steps(parse_question(item.text)))
    v = task.score(item, good)
    assert v.correct and v.reason == "correct" and v.answer == item.gold
    assert task.score(item, f"... Finish[ {' '.join(item.gold)} ]  tail").correct
    wrong = str(int(item.gold) + 10)
    v = task.score(item, good.replace(f"Finish[{item.gold}]", f"Finish[{wrong}]"))
    assert not v.correct and v.reason == "wrong" and "first at place 2." in v.feedback
    assert item.gold not in v.feedback
    v = task.score(item, " 1: 2+3+0=5; and then I stopped")
    assert (v.correct, v.reason, v.answer) == (False, "unparsed", None)
    assert parse_answer("Finish[]") is None


def test_corpus_errors_are_systematic_and_retries_follow_reflections() -> None:
    rng = random.Random(0)
    pool = default_pool()
    # 7+8 always trips the 'big' habit when it fires; the reflection that names it fixes the retry.
    fires = [True] * 4
    q = Question("1870", "1180")
    steps = run_chain(q, fires)
    assert steps[1].s == 7 + 8 + 0 - 1
    assert gold_faults(q, steps) == [(1, "big")]
    stats = {"good_all": [0, 0], "lazy": [0, 0]}
    for q in make_questions(5, False, 400):
        ex = make_example(rng, q, pool)
        if ex.quality in stats:
            stats[ex.quality][0] += 1
            stats[ex.quality][1] += bool(ex.retry_correct)
    assert stats["good_all"][1] == stats["good_all"][0] > 0
    assert stats["lazy"][1] == 0 and stats["lazy"][0] > stats["good_all"][0]


def _steps(text: str) -> list[str]:
    return re.findall(r"\d+: \d\+\d\+\d=\d\d", text)


def test_errors_keep_carries_and_a_retry_only_edits_named_steps() -> None:
    # A slip is off by one within its decade, so the carry into the next column stays right;
    # a drop that would change the carry (0+9 with a carry in) is not a habit.
    assert slipped(Step(3, 6, 0, 9), up=True).s == 8 and slipped(Step(3, 7, 0, 10), up=False).s == 11
    assert fault_kind(Step(0, 9, 1, 10)) is None and fault_kind(Step(0, 8, 1, 9)) == "drop"
    slipped_steps = copied = 0
    for ex in (e for e in examples(3, 3000) if e.retry_doc):
        t1 = _steps(ex.trial_doc.split("\nSolution:", 1)[1])
        gold_chain = gold_steps(parse_question(ex.trial_doc.split("\nQuestion: ")[1].split("\n")[0]))
        gold = [st.text(i + 1) for i, st in enumerate(gold_chain)]
        assert [int(s[-2]) for s in t1[:-1]] == [int(s[-2]) for s in gold[:-1]]  # carries as in gold
        refl = ex.retry_doc.rsplit("\nReflection:", 1)[1].split("\nSolution:")[0]
        named = {int(i) - 1 for i in re.findall(r"(\d+): \d\+\d\+\d=\d\d should be", refl)}
        body = ex.retry_doc.rsplit("\nSolution: ", 1)[1].split(". Finish[")[0].split("; ")
        assert [e.split()[0] for e in body] == [str(i) for i in range(1, len(t1) + 1)]
        for i, (a, edit) in enumerate(zip(t1, body)):
            _, how, written = edit.split()
            assert (how == "fixed") == (i in named)  # the edit says which steps the reflection named
            if how == "kept":
                assert written == a.split()[1]  # an unnamed step is kept as written, even when it is wrong
                copied += a != gold[i]
            else:  # a named step is restated as the reflection corrected it
                assert f"{a} should be {written}" in refl and written == gold[i].split()[1]
        slipped_steps += sum(a != g and fault_kind(st) is None for a, g, st in zip(t1, gold, gold_chain))
    assert copied > 100 and slipped_steps > 20


def test_documents_use_the_shared_templates() -> None:
    ex = next(e for e in examples(0, 200) if e.retry_doc)
    q = ex.trial_doc.split("\nQuestion: ")[1].split("\n")[0]
    assert ex.trial_doc.startswith(trial_prompt(ArithTask.answer_format, q))
    prompt, reflection = ex.reflect_doc.rsplit("\nReflection:", 1)
    assert ex.retry_doc.startswith(retry_prompt(prompt + "\nReflection:", reflection))
    failed = ex.trial_doc.split("\nSolution:", 1)[1]
    instruction = prompt.split("\nInstruction: ")[1]
    fb = prompt.split("Verdict: incorrect. ")[1].split("\n")[0]
    assert prompt + "\nReflection:" == reflect_prompt(ArithTask.answer_format, q, failed, fb, instruction)
    # every reflection first copies the feedback's place, so naming the step is a local decision
    for e in (e for e in examples(0, 200) if e.reflect_doc):
        place = e.reflect_doc.split("first at place ")[1].split(".")[0]
        reflection = e.reflect_doc.rsplit("\nReflection:", 1)[1]
        assert f"The first wrong digit is at place {place}. " in reflection
        # only a good reflection corrects steps: restating one cannot fix it by accident
        assert ("should be" in reflection) == e.quality.startswith("good")
        if e.quality != "lazy":  # a walk copies every step of the failed solution, in order
            failed_steps = _steps(e.reflect_doc.split("\nFailed solution:")[1].split("\n")[0])
            walked = re.findall(r"(\d+: \d\+\d\+\d=\d\d) (?:ok|should be)", reflection)
            assert walked == failed_steps


def _shipped() -> Path:
    folder = base_model_path()
    if not (folder / "config.json").is_file():
        pytest.skip("no shipped world model yet")
    return folder


def test_tokenizer_round_trips_templates_without_unknowns() -> None:
    tok = load_tokenizer(str(_shipped()))
    assert tok.padding_side == "left" and tok.pad_token and tok.eos_token
    ex = next(e for e in examples(5, 100) if e.retry_doc)
    for text in [*template_texts(), ex.trial_doc, ex.retry_doc, *(i.text for i in default_pool())]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
        assert tok.unk_token_id is None or tok.unk_token_id not in ids


def test_shipped_model_loads_offline_and_matches_meta(monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _shipped()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    meta = json.loads((folder / "meta.json").read_text())
    assert hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest() == meta["weights_sha256"]
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 15_000_000
    lm = load_causal_lm(str(folder), ModelConfig(device="cpu"))
    tok = load_tokenizer(str(folder))
    assert type(lm).__name__ == "LlamaForCausalLM"
    enc = tok([trial_prompt(ArithTask.answer_format, "1234 + 4321")], return_tensors="pt", add_special_tokens=False)
    out = lm.generate(**enc, max_new_tokens=60, do_sample=False, pad_token_id=tok.pad_token_id)
    text = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    answer = parse_answer(text)  # the world's format is learned: steps, then Finish[number]
    assert answer is not None and 4 <= len(answer) <= 5 and text.lstrip().startswith("1: 4+1+0=05;")


def test_missing_or_corrupt_model_folder_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="model folder not found"):
        load_causal_lm(str(tmp_path / "nope"), ModelConfig(device="cpu"))
    folder = _shipped()
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="cannot load model"):
        load_causal_lm(str(broken), ModelConfig(device="cpu"))
    (broken / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_causal_lm(str(broken), ModelConfig(device="cpu"))



def test_pretraining_rows_hold_whole_documents() -> None:
    """No document is split across rows: a retry cut from its question would teach invented digits."""
    from evolver.world.corpus import documents
    from evolver.world.pretrain import _blocks

    tok = load_tokenizer(str(_shipped()))
    docs = list(documents(3, 120))
    data, targets, n_tokens = _blocks(list(docs), tok, 512, seed=3)
    eos, pad = tok.eos_token_id, tok.pad_token_id
    found: list[str] = []
    for row, lab in zip(data.tolist(), targets.tolist()):
        assert row[0] != pad  # every row starts at a document's first token
        end = len(row) - next(i for i, t in enumerate(reversed(row)) if t != pad)
        assert row[end - 1] == eos and all(t == -100 for t in lab[end:])
        start = 0
        for i in [i for i in range(end) if row[i] == eos]:
            found.append(tok.decode(row[start:i]))
            start = i + 1
    assert sorted(found) == sorted(d for d, _ in docs)
    assert n_tokens == sum(len(tok(d, add_special_tokens=False)["input_ids"]) + 1 for d, _ in docs)
    # a retry document's prompt carries no loss; its trial 2 and EOS do
    retry = next(d for d, p in docs if p)
    row_i = next(i for i, r in enumerate(data.tolist()) if tok.decode(r).find(retry[:200]) >= 0)
    assert (targets[row_i] != -100).sum() < (data[row_i] != pad).sum()


def test_bases_are_levels_with_their_own_tables() -> None:
    """Base 9 writes 7+8 as 16, base 6 has 3-5 as its big digits; items carry their level; the base level keeps
    its questions and ids."""
    q = parse_question("6160 + 5550 (base 9)")
    assert q == Question("6160", "5550", 9) and q.text == "6160 + 5550 (base 9)"
    chain = gold_steps(q)
    assert [st.equation for st in chain] == ["0+0+0=00", "6+5+0=12", "1+5+1=07", "6+5+0=12"]
    assert render_solution(chain).endswith("Finish[12720]")
    with pytest.raises(ValueError, match="beyond base 9"):
        parse_question("6190 + 5550 (base 9)")
    assert fault_kind(Step(3, 4, 0, 7, 6)) == "big" and fault_kind(Step(3, 4, 0, 7, 10)) is None
    assert fault_kind(Step(3, 3, 0, 6, 6)) is None  # 3+3 = 10 in base 6: one less would lose the carry
    items = ArithTask(bases=[10, 9, 6]).load("test", 3)
    assert [i.meta["level"] for i in items] == ["b10"] * 3 + ["b9"] * 3 + ["b6"] * 3
    assert [(i.id, i.text) for i in items[:3]] == [(i.id, i.text) for i in ArithTask().load("test", 3)]
    for it in items:
        assert ArithTask().score(it, render_solution(gold_steps(parse_question(it.text)))).correct
    with pytest.raises(ValueError, match="bases"):
        ArithTask(bases=[11])


def test_a_misread_keeps_the_carry_and_a_good_reflection_restates_the_question_digits() -> None:
    rng = random.Random(1)
    for st in gold_steps(Question("4739", "5862")):
        m = misread(rng, st)
        assert m is not None and (m.a, m.b) != (st.a, st.b) and m.s == m.a + m.b + m.c
        assert (m.s >= 10) == (st.s >= 10)
    named = misreads = 0
    for ex in examples(2, 2000):
        if ex.reflect_doc and "Plan: read each digit from the question." in ex.reflect_doc:
            misreads += 1
        if ex.quality == "good_all" and ex.retry_correct:
            named += 1
    assert misreads > 10 and named > 100


def test_a_correct_retry_is_the_first_trial_it_amounts_to() -> None:
    chain = gold_steps(Question("1870", "1180"))
    retry = render_retry(chain, {1})
    assert " 2 fixed 7+8+0=15;" in retry and as_first_trial(retry) == render_solution(chain)


def test_the_pretraining_corpus_covers_every_level_the_shipped_suite_holds() -> None:
    """A level the generation-0 model was never shown is a new table to invent, not a rung to climb: every
    base of the shipped arith suite is in the corpus mix, and the shipped weights were trained on that mix."""
    import tomllib

    from evolver.paths import defaults_dir
    from evolver.world.corpus import BASE_MIX

    bases = tomllib.loads((defaults_dir() / "evals" / "arith" / "manifest.toml").read_text())["options"]["bases"]
    assert set(bases) <= set(BASE_MIX) and abs(sum(BASE_MIX.values()) - 1) < 1e-9
    meta = json.loads((_shipped() / "meta.json").read_text())
    assert {int(b): s for b, s in meta["config"]["mix"].items()} == BASE_MIX
    tok = load_tokenizer(str(_shipped()))
    for it in ArithTask(bases=bases).load("test", 5):
        ids = tok(trial_prompt(ArithTask.answer_format, it.text), add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id is None or tok.unk_token_id not in ids


def test_a_level_with_fewer_questions_than_a_split_asks_gives_all_it_has() -> None:
    """Base 4 has 36,864 pairs of 4-digit numbers: its train side is every pair outside the held-out bucket
    (fewer than TRAIN_SIZE), drawn without end-less rejection, and still disjoint from its test side."""
    from evolver.world.task import TRAIN_SIZE, _numeral

    train = ArithTask(bases=[4]).load("train")
    test = ArithTask(bases=[4]).load("test")
    every = [question_text(_numeral(x, 4), _numeral(y, 4), 4) for x in range(64, 256) for y in range(64, 256)]
    expected = {t for t in every if not is_held_out(t)}
    assert len(train) == len(expected) < TRAIN_SIZE and {i.text for i in train} == expected
    assert len(test) == 1000 and not {i.text for i in test} & expected
