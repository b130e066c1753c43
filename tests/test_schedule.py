"""How much a generation trains: steps follow the data, capped; replayed snapshots are trained once."""

from __future__ import annotations

from typing import Any

from evolver.config.schema import DPOConfig, SFTConfig
from evolver.store import Store
from evolver.training.data import sft_set, window
from evolver.training.schedule import depth, plan


def test_steps_scale_with_the_data_and_stop_at_the_cap() -> None:
    sft = SFTConfig(epochs=2, batch_size=16, grad_accum=2, max_steps=0)  # no cap: the data decides
    assert [plan(rows, sft).max_steps for rows in (10, 32, 320, 3200)] == [1, 2, 20, 200]
    capped = sft.model_copy(update={"max_steps": 50})
    assert [plan(rows, capped).max_steps for rows in (320, 3200, 32000)] == [20, 50, 50]
    assert plan(100, DPOConfig(epochs=1, batch_size=8)).max_steps == 13
    growing = capped.model_copy(update={"add_steps": 20})  # STaR: the cap grows with the lineage's depth
    assert [plan(32000, growing, d).max_steps for d in (1, 2, 3)] == [50, 70, 90]
    assert [plan(320, growing, d).max_steps for d in (1, 3)] == [20, 20]  # the data still decides below the cap


def test_learning_rate_decays_with_depth_on_the_lineage(store: Store) -> None:
    sft = SFTConfig(learning_rate=1e-3)
    assert [plan(100, sft, d, 0.5).learning_rate for d in (1, 2, 3)] == [1e-3, 5e-4, 2.5e-4]
    floored = [plan(100, sft, d, 0.5, 0.2).learning_rate for d in (1, 2, 3, 4, 50)]  # a week-long lineage still learns
    assert floored == [1e-3, 5e-4, 2.5e-4, 2e-4, 2e-4]
    for g in range(4):
        store.create_generation(g, g - 1 if g else None, "b", "h", "{}")
    store.create_generation(9, 1, "b", "h", "{}")  # a second child of generation 1
    assert [depth(store, g) for g in (1, 2, 3, 9)] == [1, 2, 3, 2]


def _row(i: int, tag: str = "") -> dict[str, Any]:
    return {"question_id": i, "reflect_prompt": f"P{i}", "reflection": f" fix {i}{tag}", "trial2": f" ok {i}",
            "trial1_prompt": f"T{i}", "retry_prompt": f"P{i} fix {i}\nSolution:"}


def test_replay_trains_each_example_once(store: Store) -> None:
    for g in (0, 1, 2):
        store.create_generation(g, g - 1 if g else None, "b", "h", "{}")
    store.put_dataset(1, "D+", "harvest", [_row(i) for i in range(5)])
    store.put_dataset(2, "D+", "harvest", [_row(i) for i in range(3, 8)])  # rows 3 and 4 asked and fixed again
    store.put_dataset(2, "R1", "harvest", [{"question_id": 9, "prompt": "T9", "completion": " a"}] * 2)
    ts = sft_set(store, window(store, 2, 2), SFTConfig(data=["D+", "R1"]))
    assert ts.counts == {"D+": 10, "R1": 2} and ts.duplicates == 3
    assert len(ts.examples) == 9 and len({(e["prompt"], e["completion"]) for e in ts.examples}) == 9
    assert [s["generation"] for s in ts.sources if s["kind"] == "D+"] == [2, 1]
    alone = sft_set(store, window(store, 2, 1), SFTConfig(data=["D+"]))
    assert alone.duplicates == 0 and len(alone.examples) == 5
