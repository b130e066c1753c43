"""The generate + harvest phases end to end on the embedded world's real base model (slow, one test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evolver.backends.holder import BackendHolder
from evolver.context import StageContext
from evolver.stages import generate, harvest
from evolver.store import Store
from evolver.world import base_model_path

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (base_model_path() / "config.json").is_file(), reason="no shipped world model")]


def test_generate_phase_on_the_world_fills_the_store_once(world_config) -> None:  # noqa: ANN001
    cfg = world_config("[reflection]\npool_size = 200\nk = 2\n[generation]\nbatch_size = 100\n")
    store = Store.open(cfg.state_dir / "evolver.db")
    store.create_generation(0, None, "embedded", "h", "{}", status="base")
    store.create_generation(1, 0, "embedded", "h", "{}")
    ctx = StageContext(cfg, store, 1, 0, BackendHolder(cfg))
    detail = generate.run(ctx).detail
    snap = harvest.run(ctx).detail
    attempts = store.attempts(1, "pool")
    t1 = [a for a in attempts if a.trial == 1]
    assert len(t1) == 200 == detail["questions"]
    wrong = [a for a in t1 if not a.correct]
    refl = store.reflections(1, "pool")
    assert len(refl) == 2 * len(wrong)
    assert all(r.next_attempt_id is not None for r in refl)
    assert sum(a.reason != "unparsed" for a in t1) >= 0.95 * len(t1)
    # sampled (temperature 0.8), generation 0 can use a reflection: a fifth of its wrong answers or more are fixed
    assert detail["solved"] - detail["acc@t1"] >= 0.2 * (1 - detail["acc@t1"])
    for kind in ("D+", "D-", "D±", "Dpref", "T1"):
        assert store.find_dataset(1, kind) is not None, kind
    assert snap["D+"]["rows"] == sum(bool(r.success) for r in refl)
    assert snap["D+"]["rows"] > 0
    before = store.counts()
    generate.run(ctx)
    harvest.run(ctx)
    assert store.counts() == before
    ctx.backends.close()


def test_generation_zero_held_out_greedy(tmp_path: Path, repo_root: Path) -> None:
    """The held-out split through `evolver eval`: acc@t1 in 25-65 %, parse >= 95 %. Greedy, generation 0
    is lazy (a reflect -> correct round is worth under 3 points): the reflection skill must be learned,
    from the reflections it samples (docs/experiments.md)."""
    import json

    from typer.testing import CliRunner

    from evolver.cli.app import app
    from evolver.evaluation.outcomes import purpose

    (tmp_path / "evals").symlink_to(repo_root / "evals")
    (tmp_path / "policies").symlink_to(repo_root / "policies")
    (tmp_path / "evolver.toml").write_text('state_dir = "state"\n[generation]\nbatch_size = 100\n')
    with Store.open(tmp_path / "state" / "evolver.db") as s:
        s.create_generation(0, None, "embedded", "h", "{}", status="base")
    r = CliRunner().invoke(app, ["-c", str(tmp_path / "evolver.toml"), "eval", "--generation", "0", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)["results"]["arith"]["arith"]["standard"]
    assert 0.25 <= res["acc@t1"] <= 0.65
    assert res["acc@t1"] <= res["acc@t2"] < res["acc@t1"] + 0.03
    with Store.open(tmp_path / "state" / "evolver.db") as s:
        key = s.evaluation(0, "arith").key
        t1 = [a for a in s.attempts(0, purpose("arith", "standard", key)) if a.trial == 1]
    assert len(t1) >= 500 and res["parse_rate"] >= 0.95
