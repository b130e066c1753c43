"""Promotion policy: paired statistics, pure decisions, pointer actions on a real store, and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from evolver.cli.app import app
from evolver.policy import (
    BenchmarkScores,
    Decision,
    Policy,
    PolicyActionError,
    PolicyFileError,
    PolicyInputError,
    Scores,
    adopt_base,
    apply,
    decide,
    is_pinned,
    load_policy,
    manual_promote,
    pin,
    promote,
    promotion_scores,
    reject,
    rollback,
    scores_from_store,
    should_rollback,
    unpin,
)
from evolver.policy.stats import bootstrap_ci, mcnemar, pair
from evolver.store import Store

REPO = Path(__file__).resolve().parents[1]
DEFAULT = Policy()


# -- helpers -------------------------------------------------------------------------------------
def outcomes(n: int, both: int, cand_only: int, inc_only: int) -> tuple[dict[str, bool], dict[str, bool]]:
    """Paired per-question outcomes with the given counts (the rest wrong on both sides)."""
    cand, inc = {}, {}
    for i in range(n):
        k = f"q{i}"
        cand[k] = i < both + cand_only
        inc[k] = i < both or both + cand_only <= i < both + cand_only + inc_only
    return cand, inc


def side(gen: int, outs: dict[str, bool], t1: float, status: str = "evaluated", bench: str = "arith",
         **extra: float) -> Scores:
    acc = sum(outs.values()) / len(outs)
    return Scores(gen, status, {bench: BenchmarkScores({"acc@t1": t1, "acc@t2": acc, **extra}, outs)})


def mkgen(store: Store, gid: int, status: str = "evaluated", sha: str | None = None,
          metrics: dict[str, float] | None = None) -> None:
    store.create_generation(gid, gid - 1 if gid else None, "tiny", "cfg", "{}", status=status,
                            adapter_path=f"adapters/gen-{gid:04d}" if sha else None, adapter_sha256=sha)
    if metrics:
        store.put_eval_results(gid, "arith", "standard", "cfg", {m: (v, 400) for m, v in metrics.items()})


def good_decision(gen: int, inc: int | None = 0) -> Decision:
    return Decision("promote", "test: better", gen, inc, "default", {"arith": {"acc@t2": 0.7}})


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "state" / "evolver.db")
    mkgen(s, 0, status="base", metrics={"acc@t1": 0.44, "acc@t2": 0.52})
    mkgen(s, 1, sha="a" * 64, metrics={"acc@t1": 0.44, "acc@t2": 0.70})
    mkgen(s, 2, sha="b" * 64, metrics={"acc@t1": 0.44, "acc@t2": 0.80})
    mkgen(s, 3, status="failed", sha=None)
    mkgen(s, 4, status="running", sha="d" * 64)
    mkgen(s, 5, status="evaluated", sha="e" * 64)  # status says evaluated but no results were stored
    yield s
    s.close()


# -- stats ---------------------------------------------------------------------------------------
def test_mcnemar_hand_computed_cases() -> None:
    c, i = outcomes(40, 20, 10, 0)
    r = mcnemar(c, i)
    assert (r.paired.n, r.paired.cand_only, r.paired.inc_only) == (40, 10, 0)
    assert r.p == pytest.approx(2 / 2**10)  # 2 * P(X <= 0), X ~ Bin(10, 1/2)
    assert mcnemar(*outcomes(30, 10, 3, 1)).p == pytest.approx(2 * (1 + 4) / 16)  # 0.625
    assert mcnemar(*outcomes(30, 10, 5, 5)).p == 1.0  # balanced discordance
    assert mcnemar(*outcomes(30, 30, 0, 0)).p == 1.0  # no discordant pairs at all


def test_mcnemar_matches_scipy_binomtest() -> None:
    stats = pytest.importorskip("scipy.stats")
    for b, c in [(1, 0), (7, 2), (2, 7), (13, 13), (31, 12), (150, 118), (1500, 1400)]:
        n = b + c + 50
        got = mcnemar(*outcomes(n, 25, b, c)).p
        want = stats.binomtest(b, b + c, 0.5, alternative="two-sided").pvalue
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-300), (b, c, got, want)


def test_only_keys_on_both_sides_are_paired() -> None:
    cand = {"a": True, "b": True, "c": False, "only-cand": True}
    inc = {"a": True, "b": False, "c": True, "only-inc": False}
    pr = pair(cand, inc)
    assert (pr.n, pr.both, pr.cand_only, pr.inc_only) == (3, 1, 1, 1)
    assert bootstrap_ci(cand, inc).paired.n == 3


def test_bootstrap_ci_is_seeded_and_agrees_with_index_resampling() -> None:
    c, i = outcomes(400, 180, 40, 15)  # +6.25 pts
    a = bootstrap_ci(c, i, alpha=0.05, n_boot=4000, seed=7)
    assert a == bootstrap_ci(c, i, alpha=0.05, n_boot=4000, seed=7)
    assert a.low < a.paired.diff < a.high and a.low > 0
    # the multinomial shortcut against plain resampling of question indices
    d = np.array([int(c[k]) - int(i[k]) for k in c])
    rng = np.random.default_rng(1)
    naive = d[rng.integers(0, len(d), size=(4000, len(d)))].mean(axis=1)
    lo, hi = np.quantile(naive, [0.025, 0.975])
    assert abs(lo - a.low) < 0.006 and abs(hi - a.high) < 0.006
    same = bootstrap_ci(*outcomes(100, 50, 0, 0))
    assert (same.low, same.high) == (0.0, 0.0)


# -- decide --------------------------------------------------------------------------------------
def test_significantly_better_candidate_is_promoted() -> None:
    c, i = outcomes(400, 200, 60, 10)  # 65.0 vs 52.5
    d = decide(side(2, c, 0.44), side(1, i, 0.44), DEFAULT)
    assert d.kind == "promote"
    assert d.reason.startswith("acc@t2 +12.5 pts on arith (52.5 -> 65.0, n=400, p=")
    assert d.reason.endswith("< 0.05), no regression")
    assert d.deltas["arith"]["acc@t2"] == pytest.approx(12.5)
    assert d.tests["arith"]["p"] < 1e-8 and d.incumbent == 1


def test_insignificant_or_small_gain_is_rejected() -> None:
    c, i = outcomes(40, 20, 4, 1)  # +7.5 pts but only 5 discordant questions
    d = decide(side(2, c, 0.4), side(1, i, 0.4), DEFAULT)
    assert d.kind == "reject" and "is not significant" in d.reason and "p=0.38 >= 0.05" in d.reason
    c, i = outcomes(4000, 2000, 130, 100)  # +0.75 pts, significant at n=4000 but under the margin
    d = decide(side(2, c, 0.4), side(1, i, 0.4), DEFAULT)
    assert d.kind == "reject" and "below the 1-pt margin" in d.reason


def test_regression_and_t1_drop_reject() -> None:
    c, i = outcomes(400, 200, 60, 10)
    worse_t1 = decide(side(2, c, 0.40), side(1, i, 0.44), DEFAULT)  # acc@t1 -4 pts
    assert worse_t1.kind == "reject"
    assert worse_t1.reason == "regression: acc@t1 -4.0 pts on arith exceeds t1_max_drop 1 (44.0 -> 40.0)"
    assert decide(side(2, c, 0.435), side(1, i, 0.44), DEFAULT).kind == "promote"  # -0.5 pt is tolerated
    other = decide(side(2, c, 0.44, faithful=0.50), side(1, i, 0.44, faithful=0.60), DEFAULT)
    assert other.kind == "reject" and "faithful -10.0 pts on arith exceeds max_regression 2" in other.reason
    strict = load_policy(REPO / "policies" / "strict.toml")
    assert decide(side(2, c, 0.4375), side(1, i, 0.44), strict).kind == "reject"  # strict: no drop at all
    # a regression on a second suite rejects a big gain on the first
    c2, i2 = outcomes(400, 200, 0, 20)
    cand = Scores(2, "evaluated", {"arith": side(2, c, 0.44).benchmarks["arith"],
                                   "logic": side(2, c2, 0.5).benchmarks["arith"]})
    inc = Scores(1, "evaluated", {"arith": side(1, i, 0.44).benchmarks["arith"],
                                  "logic": side(1, i2, 0.5).benchmarks["arith"]})
    d = decide(cand, inc, DEFAULT)
    assert d.kind == "reject" and "acc@t2 -5.0 pts on logic exceeds max_regression" in d.reason


def test_failed_or_unevaluated_candidates_are_refused() -> None:
    c, i = outcomes(400, 200, 60, 10)
    for status, text in [("failed", "gen-0002 failed; a failed generation is never promoted"),
                         ("running", "gen-0002 is 'running', not evaluated")]:
        d = decide(side(2, c, 0.44, status=status), side(1, i, 0.44), DEFAULT)
        assert d.kind == "reject" and d.reason.startswith(text)
    d = decide(Scores(2, "evaluated", {}), side(1, i, 0.44), DEFAULT)
    assert d.kind == "reject" and "no evaluation results" in d.reason
    no_outcomes = Scores(2, "evaluated", {"arith": BenchmarkScores({"acc@t1": 0.44, "acc@t2": 0.9})})
    d = decide(no_outcomes, side(1, i, 0.44), DEFAULT)
    assert d.kind == "reject" and "n=0" in d.reason  # aggregate gain without paired evidence is not enough


def test_bootstrap_test_bonferroni_and_first_generation() -> None:
    boot = Policy(test="bootstrap", n_boot=2000, seed=3)
    c, i = outcomes(400, 200, 60, 10)
    d = decide(side(2, c, 0.44), side(1, i, 0.44), boot)
    assert d.kind == "promote" and "95% CI +" in d.reason and d.tests["arith"]["ci"][0] > 0
    assert d == decide(side(2, c, 0.44), side(1, i, 0.44), boot)  # reproducible
    # p = 0.041: significant alone, not at 0.05 / 2 with a second (flat) suite
    c1, i1 = outcomes(200, 100, 15, 5)
    assert mcnemar(c1, i1).p == pytest.approx(0.0414, abs=1e-3)
    flat_c, flat_i = outcomes(200, 100, 0, 0)
    cand = Scores(2, "evaluated", {"arith": BenchmarkScores({"acc@t2": 0.575}, c1),
                                   "logic": BenchmarkScores({"acc@t2": 0.5}, flat_c)})
    inc = Scores(1, "evaluated", {"arith": BenchmarkScores({"acc@t2": 0.525}, i1),
                                  "logic": BenchmarkScores({"acc@t2": 0.5}, flat_i)})
    assert decide(Scores(2, "evaluated", {"arith": cand.benchmarks["arith"]}),
                  Scores(1, "evaluated", {"arith": inc.benchmarks["arith"]}), DEFAULT).kind == "promote"
    d = decide(cand, inc, DEFAULT)
    assert d.kind == "reject" and ">= 0.025 (0.05/2 benchmarks)" in d.reason
    assert decide(side(2, c, 0.44), None, DEFAULT).kind == "reject"
    assert decide(side(2, c, 0.44), None, Policy(first_generation="promote")).kind == "promote"
    with pytest.raises(PolicyInputError, match="arith.acc@t2 = 1.5"):
        decide(Scores(2, "evaluated", {"arith": BenchmarkScores({"acc@t2": 1.5}, c)}), side(1, i, 0.44), DEFAULT)


def test_should_rollback_uses_tolerance() -> None:
    then = {"arith": {"acc@t2": 0.80, "acc@t1": 0.44}}
    yes, why = should_rollback({"arith": {"acc@t2": 0.77}}, then, DEFAULT)
    assert yes and why == "acc@t2 on arith fell 3.0 pts since promotion (80.0 -> 77.0), beyond the 2-pt tolerance"
    no, why = should_rollback({"arith": {"acc@t2": 0.79}}, then, DEFAULT)
    assert not no and "within the 2-pt tolerance" in why
    assert should_rollback({"logic": {"acc@t2": 0.1}}, then, DEFAULT)[0] is False


# -- actions on a store --------------------------------------------------------------------------
def test_promote_moves_pointer_and_records_event(store: Store) -> None:
    assert adopt_base(store) and not adopt_base(store)
    assert store.current_generation() == 0
    c, i = outcomes(400, 200, 80, 8)
    d = decide(scores_from_store(store, 1, {"arith": c}), scores_from_store(store, 0, {"arith": i}), DEFAULT)
    assert d.kind == "promote", d.reason
    assert apply(store, 1, d)
    assert store.current_generation() == 1 and store.generation(1).status == "promoted"
    e = store.events(limit=1)[0]
    assert (e.kind, e.generation_id, e.actor, e.reason) == ("promoted", 1, "policy", d.reason)
    m = json.loads(e.metrics)
    assert m["deltas"]["arith"]["acc@t2"] == pytest.approx(18.0) and m["current"] == {"from": 0, "to": 1}
    assert m["adapter"]["sha256"] == "a" * 64
    assert promotion_scores(store, 1) == {"arith": {"acc@t1": 0.44, "acc@t2": 0.70}}
    store.put_eval_results(1, "arith", "paper", "cfg", {"acc@t2": (0.99, 400)})  # another protocol is not mixed in
    assert scores_from_store(store, 1).benchmarks["arith"].metrics["acc@t2"] == 0.70
    # a rejection is recorded, the candidate marked, the pointer untouched
    bad = decide(scores_from_store(store, 2, {"arith": i}), scores_from_store(store, 1, {"arith": c}), DEFAULT)
    assert bad.kind == "reject"
    assert not apply(store, 2, bad)
    assert store.current_generation() == 1 and store.generation(2).status == "rejected"
    assert store.events(limit=1)[0].kind == "rejected"
    with pytest.raises(PolicyActionError, match="needs a 'promote' decision"):
        promote(store, 2, bad)


def test_pin_is_honoured_over_auto_promotion(store: Store) -> None:
    adopt_base(store)
    assert pin(store, 1) and not pin(store, 1) and is_pinned(store)
    assert not promote(store, 2, good_decision(2))
    assert store.current_generation() == 1 and store.pointer("current") == 0
    e = store.events(limit=1)[0]
    assert e.kind == "rejected" and e.reason.startswith("pinned to gen-0001, current stays gen-0000")
    with pytest.raises(PolicyActionError, match="gen-0001 is pinned; unpin before rolling back"):
        rollback(store)
    assert unpin(store) == 1 and unpin(store) is None and not is_pinned(store)
    assert store.current_generation() == 0
    assert [e.kind for e in reversed(store.events())] == ["promoted", "pinned", "rejected", "unpinned"]


def test_rollback_restores_exactly_the_previous_adapter(store: Store) -> None:
    adopt_base(store)
    promote(store, 1, good_decision(1, 0))
    promoted_sha = json.loads(store.events(limit=1)[0].metrics)["adapter"]["sha256"]
    promote(store, 2, good_decision(2, 1))
    assert store.generation(store.current_generation()).adapter_sha256 == "b" * 64
    assert rollback(store, reason="acc@t2 fell") == (2, 1)
    cur = store.generation(store.current_generation())
    assert cur.id == 1 and cur.adapter_sha256 == promoted_sha == "a" * 64
    assert cur.adapter_path == "adapters/gen-0001"
    assert store.generation(2).status == "rolled_back" and cur.status == "promoted"
    e = store.events(limit=1)[0]
    assert (e.kind, e.generation_id, e.reason) == ("rolled_back", 2, "acc@t2 fell")
    assert json.loads(e.metrics)["adapter"]["sha256"] == "a" * 64
    assert rollback(store) == (1, 0)  # again: skips the rolled-away gen 2, back to the base
    assert store.current_generation() == 0 and store.generation(0).status == "base"
    with pytest.raises(PolicyActionError, match="no earlier current generation"):
        rollback(store)
    assert rollback(store, to=2) == (0, 2)  # an explicit target may be a rolled-away one
    assert store.generation(store.current_generation()).adapter_sha256 == "b" * 64


def test_failed_or_unevaluated_never_become_current(store: Store) -> None:
    adopt_base(store)
    before = [e.id for e in store.events()]
    for gid, why in [(3, "failed; a failed generation can never become current"),
                     (4, "is 'running', not evaluated"), (5, "has no evaluation results"), (9, "does not exist")]:
        for act in (lambda: promote(store, gid, good_decision(gid)), lambda: pin(store, gid),
                    lambda: rollback(store, to=gid), lambda: manual_promote(store, gid, "because")):
            with pytest.raises(PolicyActionError, match=why):
                act()
    assert store.pointer("current") == 0 and store.pointer("pinned") is None
    assert [e.id for e in store.events()] == before


def test_events_are_append_only_with_reasons_and_atomic(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    adopt_base(store)
    snapshots = []
    for act in (lambda: promote(store, 1, good_decision(1)), lambda: pin(store, 2), lambda: unpin(store),
                lambda: manual_promote(store, 2, "operator override"), lambda: rollback(store),
                lambda: reject(store, 3, Decision("reject", "gen-0003 failed", 3, 1, "default"))):
        act()
        snapshots.append([(e.id, e.ts, e.kind, e.generation_id, e.reason, e.metrics) for e in reversed(store.events())])
    for earlier, later in zip(snapshots, snapshots[1:]):
        assert later[:len(earlier)] == earlier and len(later) == len(earlier) + 1
    final = snapshots[-1]
    assert [r[2] for r in final] == ["promoted", "promoted", "pinned", "unpinned", "manual_promote", "rolled_back",
                                     "rejected"]
    assert all(r[4] for r in final) and store.generation(3).status == "failed"
    manual = json.loads(final[4][5])
    assert final[4][4] == "operator override" and manual["deltas"]["arith"]["acc@t2"] == pytest.approx(10.0)
    # the pointer and its event commit together: a failing event write leaves the pointer alone
    monkeypatch.setattr(store, "record_event", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk full")))
    with pytest.raises(RuntimeError):
        manual_promote(store, 2, "again")
    assert store.pointer("current") == 1 and store.generation(2).status == "rolled_back"


# -- policy files and CLI ------------------------------------------------------------------------
def test_shipped_policies_load_and_bad_files_give_one_line(tmp_path: Path) -> None:
    default, strict = load_policy(REPO / "policies" / "default.toml"), load_policy(REPO / "policies" / "strict.toml")
    assert (default.margin, default.alpha, default.primaries, default.first_generation) == (1.0, 0.05, ("acc@t2", "acc@t1"), "base")
    assert (strict.alpha, strict.max_regression, strict.t1_max_drop) == (0.01, 0.0, 0.0) and strict.margin > default.margin
    cases = {"margin = -1": "margin: expected", 'test = "ttest"': "test: expected", "alpah = 0.1": "alpah: unknown key",
             "alpha = 1.5": "alpha: expected", "margin = ": "invalid TOML", 'benchmarks = ["a", "a"]': "twice"}
    for text, want in cases.items():
        f = tmp_path / "p.toml"
        f.write_text(text + "\n")
        with pytest.raises(PolicyFileError) as err:
            load_policy(f)
        msg = str(err.value)
        assert msg.startswith(str(f)) and want in msg and "\n" not in msg, msg
    with pytest.raises(PolicyFileError, match="policy file not found"):
        load_policy(tmp_path / "missing.toml")


def test_cli_pin_promote_rollback_events(tmp_path: Path, store: Store) -> None:
    adopt_base(store)
    cfg = tmp_path / "evolver.toml"
    cfg.write_text('state_dir = "state"\n[policy]\nfile = "strict.toml"\n')
    (tmp_path / "strict.toml").write_text((REPO / "policies" / "strict.toml").read_text())
    runner = CliRunner()

    def run(*args: str):  # noqa: ANN202
        return runner.invoke(app, ["--config", str(cfg), *args])

    r = run("promote", "1", "--reason", "looks better to me")
    assert r.exit_code == 0 and r.stdout == "promoted gen-0001 (manual): looks better to me\n"
    r = run("promote", "2")
    assert r.exit_code == 0 and store.current_generation() == 2
    r = run("pin", "1")
    assert r.exit_code == 0 and r.stdout.startswith("pinned gen-0001") and store.current_generation() == 1
    r = run("rollback")
    assert r.exit_code == 1 and r.stderr == "evolver: error: gen-0001 is pinned; unpin before rolling back\n"
    r = run("unpin")
    assert r.exit_code == 0 and r.stdout == "unpinned gen-0001; serving gen-0002\n"
    r = run("rollback")
    assert r.exit_code == 0 and r.stdout == f"rolled back gen-0002 -> gen-0001 (adapter {'a' * 12})\n"
    for args, code, text in [(("pin", "3"), 1, "gen-0003 failed"), (("promote", "4"), 1, "not evaluated"),
                             (("rollback", "--to", "9"), 1, "gen-0009 does not exist"), (("pin", "abc"), 2, ""),
                             (("promote", "2", "--reason", " "), 2, "--reason must not be empty")]:
        r = run(*args)
        assert r.exit_code == code and text in r.stderr, (args, r.stderr)
        if code == 1:
            assert r.stderr.count("\n") == 1
    r = run("events", "--json", "--limit", "3")
    rows = json.loads(r.stdout)["events"]
    assert [x["kind"] for x in rows] == ["pinned", "unpinned", "rolled_back"] and rows[-1]["reason"] == "rolled back by hand"
    r = run("events")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 6 and "manual_promote" in r.stdout
    r = run("policy", "check")
    assert r.exit_code == 0 and "policy 'strict' is well-formed" in r.stdout
    (tmp_path / "bad.toml").write_text("margin = 'x'\n")
    r = run("policy", "check", str(tmp_path / "bad.toml"))
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "bad.toml: margin: expected" in r.stderr


def test_several_primary_metrics_promote_on_either_and_split_alpha() -> None:
    """primary = ["acc@t2", "acc@t1"]: a solver that gets much better at the first try is promoted even when
    acc@t2 stands still; the paired tests are split over benchmarks x metrics."""
    n = 400
    inc_t2 = {q: q < 370 for q in range(n)}
    inc_t1 = {q: q < 260 for q in range(n)}
    cand_t1 = {q: q < 360 for q in range(n)}
    cand = Scores(2, "evaluated", {"arith": BenchmarkScores({"acc@t1": 0.9, "acc@t2": 0.925}, inc_t2,
                                                            {"acc@t2": inc_t2, "acc@t1": cand_t1})})
    inc = Scores(1, "promoted", {"arith": BenchmarkScores({"acc@t1": 0.65, "acc@t2": 0.925}, inc_t2,
                                                          {"acc@t2": inc_t2, "acc@t1": inc_t1})})
    only_t2 = Policy(primary="acc@t2")
    assert not decide(cand, inc, only_t2).promote  # acc@t2 +0.0: nothing to see on the one metric
    both = Policy(primary=["acc@t2", "acc@t1"])
    d = decide(cand, inc, both)
    assert d.promote and d.reason.startswith("acc@t1 +25.0 pts on arith") and "0.05/2 metrics" in d.reason
    assert set(d.tests) == {"arith", "arith acc@t1"} and d.tests["arith acc@t1"]["alpha"] == 0.025
    with pytest.raises(ValueError, match="distinct"):
        Policy(primary=["acc@t1", "acc@t1"])
