"""The batched reflect loop on a tiny real model: completeness, resumption, seeds, no leakage."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from evolver.backends.base import Sampling
from evolver.backends.transformers_backend import TransformersBackend
from evolver.config import load_config
from evolver.config.schema import ModelConfig
from evolver.backends.holder import BackendHolder
from evolver.context import StageContext, Stopped
from evolver.stages import harvest
from evolver.reflection.engine import LoopSpec, run_loop, uniform_picker
from evolver.reflection.instructions import default_pool
from evolver.store import Store
from evolver.tasks.base import Item, Verdict


class HashTask:
    """A verifier with a fixed rule (an output is 'correct' when its hash is divisible by 3).

    Real verification on a random model would mark everything wrong; this rule exercises both paths.
    """

    name = "hashy"
    answer_format = "Answer with Finish[x]."

    def load(self, split: str = "test", limit: int | None = None) -> list[Item]:
        items = [Item(id=str(i), text=f"{i} + {i * 7 % 13}", gold=str(i + i * 7 % 13), split=split) for i in range(12)]
        return items[:limit]

    def score(self, item: Item, output: str) -> Verdict:
        ok = int(hashlib.sha256(output.encode()).hexdigest(), 16) % 3 == 0
        return Verdict(correct=ok, answer=output[-5:], reason="correct" if ok else "wrong")


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from evolver.testing.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def backend(tiny_model_dir: Path) -> TransformersBackend:
    return TransformersBackend(str(tiny_model_dir), ModelConfig(), batch_size=5)


def _spec(chunk: int = 512, k: int = 3, rounds: int = 2) -> LoopSpec:
    pool = default_pool()
    return LoopSpec(purpose="pool", k=k, max_rounds=rounds, trial=Sampling(0.7, 0.95, 12),
                    reflect=Sampling(0.9, 0.95, 12), pick=uniform_picker(pool, 7, 1), seed=7,
                    instructions={i.id: i for i in pool}, chunk=chunk)


def _run(store: Store, backend, spec: LoopSpec, stop_after: int | None = None):  # noqa: ANN001, ANN202
    task = HashTask()
    store.create_generation(1, None, "tiny", "h", "{}")
    ids = store.upsert_questions({"source": task.name, "external_id": it.id, "text": it.text, "gold": it.gold}
                                 for it in task.load())
    items = {ids[it.id]: it for it in task.load()}
    calls = {"n": 0}

    def check() -> None:
        calls["n"] += 1
        if stop_after is not None and calls["n"] > stop_after:
            raise Stopped("test stop")

    return run_loop(store, backend, task, items, 1, "gen-0000", None, spec, check_stop=check)


def _texts(store: Store) -> tuple[list, list]:
    a = sorted((x.question_id, x.trial, x.branch, x.prompt, x.output, x.correct) for x in store.attempts(1, "pool"))
    r = sorted((x.attempt_id, x.branch, x.instruction_id, x.prompt, x.text, x.success) for x in store.reflections(1, "pool"))
    return a, r


def test_loop_fills_store_and_rerun_adds_nothing(tmp_path: Path, backend) -> None:  # noqa: ANN001
    store = Store.open(tmp_path / "e.db")
    _run(store, backend, _spec())
    attempts, refl = _texts(store)
    t1 = [a for a in attempts if a[1] == 1]
    assert len(t1) == 12
    failed = [a for a in t1 if not a[5]]
    assert failed, "the rule should fail some trial-1 outputs"
    round1 = [r for r in store.reflections(1, "pool") if store.attempt(r.attempt_id).trial == 1]
    assert len(round1) == 3 * len(failed)
    assert all(r.next_attempt_id is not None and r.success is not None for r in store.reflections(1, "pool"))
    before = store.counts()
    _run(store, backend, _spec())
    assert store.counts() == before


def test_prompts_stored_as_sent_without_their_outputs(tmp_path: Path, backend) -> None:  # noqa: ANN001
    store = Store.open(tmp_path / "e.db")
    _run(store, backend, _spec())
    for a in store.attempts(1, "pool"):
        assert a.prompt.endswith("\nSolution:")
        if len(a.output.strip()) > 3:
            assert a.output not in a.prompt
    for r in store.reflections(1, "pool"):
        assert r.prompt.endswith("\nReflection:")
        assert "Finish[" not in r.prompt.split("Question:")[1].split("Failed solution:")[0]  # gold never shown
        if len(r.text.strip()) > 3:
            assert r.text not in r.prompt
        nxt = store.attempt(r.next_attempt_id)
        assert nxt.prompt.startswith(r.prompt)  # the retry prompt nests the exact reflection prompt


def test_resume_and_batching_do_not_change_samples(tmp_path: Path, backend, tiny_model_dir: Path) -> None:  # noqa: ANN001
    full = Store.open(tmp_path / "full.db")
    _run(full, backend, _spec(chunk=512))
    cut = Store.open(tmp_path / "cut.db")
    other = TransformersBackend(str(tiny_model_dir), ModelConfig(), batch_size=2)
    with pytest.raises(Stopped):
        _run(cut, other, _spec(chunk=4), stop_after=4)
    assert 0 < cut.counts()["attempts"] < full.counts()["attempts"]
    _run(cut, other, _spec(chunk=4))
    assert _texts(cut)[0] == _texts(full)[0]
    assert [r[1:] for r in _texts(cut)[1]] == [r[1:] for r in _texts(full)[1]]


def test_harvest_snapshots(tmp_path: Path, backend) -> None:  # noqa: ANN001
    cfg_path = tmp_path / "evolver.toml"
    cfg_path.write_text("[reflection]\npairs_per_question = 2\n")
    store = Store.open(tmp_path / "e.db")
    _run(store, backend, _spec(rounds=1))
    cfg = load_config(cfg_path)
    ctx = StageContext(cfg, store, 1, None, BackendHolder(cfg, lambda _cfg: backend))
    detail = harvest.run(ctx).detail
    refl = store.reflections(1, "pool")
    assert detail["D+"]["rows"] == sum(bool(r.success) for r in refl)
    assert detail["D-"]["rows"] == sum(not r.success for r in refl)
    dplus = store.dataset_rows(store.find_dataset(1, "D+").id)
    for row in dplus:
        assert row["retry_prompt"].startswith(row["reflect_prompt"])
    pairs = store.dataset_rows(store.find_dataset(1, "D±").id)
    per_q: dict[int, int] = {}
    for p in pairs:
        per_q[p["question_id"]] = per_q.get(p["question_id"], 0) + 1
        assert p["chosen"] != p["rejected"] or p["chosen_id"] != p["rejected_id"]
    assert all(v <= 2 for v in per_q.values())
    again = harvest.run(ctx).detail
    assert again == {k: v for k, v in detail.items()}
    assert store.counts()["datasets"] == len(detail)
