"""Lineage, show, watch and plot views: pure renderables read as text at 80 and 160 columns.

Stores are built in tmp_path through the Store API and evolver.policy.actions (no model). The
1,000-generation store is built once for the module (lean: training phases and one protocol).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from evolver.policy.actions import pin
from evolver.store import Store
from evolver.store.detail import GenerationNotFound, config_diff, load_detail
from evolver.store.lineage import GenInfo, Lineage, fill_lineage, lineage_skeleton, load_lineage
from evolver.store.watch import load_watch
from evolver.testing import synthetic
from evolver.views.format import sparkline
from evolver.views.generation import generation_view
from evolver.views.json import generation_json, lineage_json
from evolver.views.lineage import lineage_view
from evolver.views.tree import Gap, Node, display_tree, window, window_ids
from evolver.views.watch import watch_view


def render(renderable: object, width: int = 80) -> str:
    console = Console(color_system=None, width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


@pytest.fixture
def small(tmp_path: Path):  # noqa: ANN201
    s = synthetic.small(tmp_path / "small.db")
    yield s
    s.close()


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.build(tmp_path_factory.mktemp("big") / "evolver.db", 1000, running=True, lean=True)


def load_window(store: Store, last: int) -> Lineage:
    """What the CLI and the TUI read for a newest-`last` window: the skeleton, filled where the window draws."""
    lin = lineage_skeleton(store)
    return fill_lineage(store, lin, window_ids(lin, last))


def running_store(path: Path) -> Store:
    store = Store.open(path, clock=synthetic.Clock())
    store.create_generation(0, None, "tiny", "h0", "{}", status="running")
    store.phase_start(0, "evaluate")
    return store


# -- lineage ----------------------------------------------------------------------------------------------

def test_lineage_of_an_empty_store(tmp_path: Path) -> None:
    with Store.open(tmp_path / "e.db") as s:
        lin = load_lineage(s)
    assert lin.generations == {} and lin.current is None
    assert render(lineage_view(lin)).strip() == "no generations yet: start one with `evolver run`"
    assert lineage_json(lin)["generations"] == []


def test_lineage_at_80_columns_shows_numbers_deltas_tests_and_reasons(small: Store) -> None:
    text = render(lineage_view(load_lineage(small)), 80)
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert "lineage: 5 generations · serving gen-0003" in text
    # gen 1: t2 45.0 against the base's 40.0, with the decision's p-value; D+/D± sizes; sft + dpo minutes
    assert "gen-0001 promoted" in text
    assert "arith t1 31.0 +1.0  t2 45.0 +5.0 p=0.003" in text
    assert "D+ 13  D± 6  train 9.0 min" in text
    assert "gen-0001: arith acc@t2 up (p=0.003)" in text
    assert "gen-0002 rejected" in text and "t2 44.0 -1.0 p=0.41" in text
    assert "gen-0003 ★ current" in text and "paper 47.0 +3.0" in text
    assert "gen-0004 failed" in text and "gen-0004 generate: RuntimeError: out of memory" in text


def test_lineage_main_line_is_flat_and_dead_ends_are_indented(small: Store) -> None:
    lines = render(lineage_view(load_lineage(small)), 160).splitlines()
    head = {ln.split("gen-")[1][:4]: ln[: ln.index("gen-")] for ln in lines if "── gen-" in ln}
    assert head["0000"] == head["0001"] == "├── " and head["0003"] == "└── "  # one level: the main line
    assert head["0002"].endswith("└── ") and len(head["0002"]) == 8  # rejected child, nested under gen 1
    assert len(head["0004"]) == 8  # the failed child of the current generation
    # wide: a generation's numbers share one line with its name
    one = next(ln for ln in lines if "gen-0001 promoted" in ln)
    assert "t2 45.0 +5.0 p=0.003  paper 44.0  D+ 13" in one  # the base has no paper result: no delta


def test_window_loader_draws_what_the_full_load_draws(small: Store) -> None:
    full, win = load_lineage(small), load_window(small, 2)
    assert render(lineage_view(win, last=2), 80) == render(lineage_view(full, last=2), 80)
    assert "⋯" in render(lineage_view(win, last=2), 80)
    assert win.benchmarks == full.benchmarks == ["arith"] and win.t2_range == full.t2_range


def test_lineage_sparkline_follows_the_path(small: Store) -> None:
    lin = load_lineage(small)
    assert lin.path(3) == [0, 1, 3]
    text = render(lineage_view(lin), 160)
    row = next(ln for ln in text.splitlines() if "── gen-0003" in ln)
    assert sparkline([0.40, 0.45, 0.48], 0.40, 0.48) in row  # spark over base -> 1 -> 3, scaled to the lineage
    assert sparkline([0.0, 0.5, 1.0], 0.0, 1.0) == "▁▅█"
    assert sparkline([None, 1.0], 0.0, 1.0) == " █"


def test_pin_badge_and_json(small: Store) -> None:
    pin(small, 1, "hold", "user")
    lin = load_lineage(small)
    assert lin.current == 1 and lin.promoted == 3 and lin.badges(1) == ["current", "pinned"]
    assert lin.badges(3) == ["promoted"]
    text = render(lineage_view(lin), 80)
    assert "serving gen-0001 (pinned) · promoted gen-0003" in text
    data = lineage_json(lin)
    assert data["current"] == 1 and data["pinned"] == 1
    g1 = next(g for g in data["generations"] if g["id"] == 1)
    assert g1["metrics"]["arith"]["standard"]["acc@t2"] == pytest.approx(0.45)
    assert g1["deltas_vs_parent"]["arith"]["standard"]["acc@t2"] == pytest.approx(5.0)
    assert g1["tests"]["arith"]["p"] == pytest.approx(0.003) and g1["tests"]["arith"]["significant"] is True
    assert g1["datasets"]["D+"]["rows"] == 13 and g1["train_minutes"] == pytest.approx(9.0)
    assert g1["path_acc_t2"] == [pytest.approx(0.40), pytest.approx(0.45)]


def test_display_tree_keeps_the_branch_with_the_current_generation_on_the_main_line() -> None:
    def g(i: int, parent: int | None) -> GenInfo:
        return GenInfo(i, parent, "promoted", 0.0, None, None, None, "h")

    # 0 -> 1 -> 2 -> 3 (rolled away from), then 1 -> 4 -> 5 (current)
    gens = {i: g(i, p) for i, p in ((0, None), (1, 0), (2, 1), (3, 2), (4, 1), (5, 4))}
    for x in gens.values():
        if x.parent_id is not None:
            gens[x.parent_id].children.append(x.id)
    rows = display_tree(Lineage(gens, 5, 5, None, 0.0))
    assert [r.gen for r in rows if isinstance(r, Node)] == [0, 1, 4, 5]
    side = rows[1].nested
    assert side == [Node(2, [Node(3)])]  # the old branch, indented under 1 (3, a dead end, under 2)
    win = window(rows, {5})
    assert isinstance(win[0], Gap) and win[0].count == 5 and [n.gen for n in win if isinstance(n, Node)] == [5]


def test_views_on_one_running_generation(tmp_path: Path) -> None:
    with running_store(tmp_path / "r.db") as s:
        lin = load_lineage(s)
        text = render(lineage_view(lin), 80)
        assert "gen-0000 running" in text and "▶ evaluate" in text and "serving none yet" in text
        detail = render(generation_view(load_detail(s, 0)), 80)
        assert "not evaluated yet" in detail and "no decision yet" in detail and "no reflections" in detail
        watch = render(watch_view(load_watch(s, None, now=s.clock() + 90)), 80)
    assert "gen-0000 running · phase evaluate · 1.5 min elapsed" in watch
    assert "daemon not running" in watch and "recent events" in watch


def test_views_on_1000_generations(big: Path) -> None:
    with Store.open(big) as s:
        lin = load_lineage(s)
        windowed = load_window(s, 50)
        detail = load_detail(s, 999)
        w = load_watch(s, None)
    # the window loader reads only what the newest 50 rows show, and draws exactly the same tree
    assert sum(bool(g.results) for g in windowed.generations.values()) < 200
    assert render(lineage_view(windowed, last=50), 80) == render(lineage_view(lin, last=50), 80)
    assert len(lin.generations) == 1001 and lin.latest == 1000
    text = render(lineage_view(lin), 80)
    heads = [ln for ln in text.splitlines() if "── gen-" in ln]
    assert 50 <= len(heads) <= 80, len(heads)  # the newest 50 plus the rows leading to them
    assert "not shown" in text and "(--all for every one)" in text
    assert f"gen-{lin.current:04d} ★ current" in text and "gen-1000 running" in text
    everything = render(lineage_view(lin, last=None), 160)
    assert sum("── gen-" in ln for ln in everything.splitlines()) == 1001
    assert len(lineage_json(lin)["generations"]) == 1001
    shown = render(generation_view(detail), 80)
    assert "gen-0999" in shown and "fixed the answer" in shown
    assert "phase generate" in render(watch_view(w), 80)


def test_tui_opens_on_1000_generations(big: Path) -> None:
    import asyncio

    from evolver.tui.app import EvolverApp

    async def go() -> tuple[int, int | None]:
        app = EvolverApp(big, refresh_seconds=0)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            tree = app.query_one("#lineage")
            return len(list(_walk(tree.root))), app.selected  # type: ignore[attr-defined]

    nodes, selected = asyncio.run(go())
    assert 50 <= nodes <= 90
    with Store.open(big) as s:
        assert selected == s.current_generation()


def _walk(node):  # noqa: ANN001, ANN202
    for child in node.children:
        yield child
        yield from _walk(child)


# -- show -------------------------------------------------------------------------------------------------

def test_show_one_generation_in_full(small: Store) -> None:
    d = load_detail(small, 3)
    text = render(generation_view(d), 100)
    assert "gen-0003  ★ current" in text
    assert "parent    gen-0001" in text
    assert "training.sft.learning_rate  0.0001    0.0002" in text  # config vs parent
    assert d.gen.datasets["D+"].sha256[:16] in text
    assert "sft: 4 logged steps  loss 2 → 0.5" in text
    assert "arith      standard    33.0  +2.0    48.0  +3.0  100  p=0.02" in text
    assert "promoted by policy" in text and "gen-0003: arith acc@t2 up (p=0.02)" in text
    assert "12 reflections" in text and "fixed the answer" in text and "did not fix it" in text
    fixed, not_fixed = d.pairs[0]
    assert fixed is not None and fixed.success is True and fixed.instruction_id in text
    assert not_fixed is not None and not_fixed.success is False
    if fixed is not None and not_fixed is not None and fixed.attempt_id == not_fixed.attempt_id:
        assert fixed.question == not_fixed.question
    data = generation_json(d)
    assert data["config_diff"] == [{"key": "training.sft.learning_rate", "parent": 1e-4, "value": 2e-4}]
    assert data["reflections"]["total"] == 12 and data["reflections"]["samples"][0]["fixed"]["success"] is True
    assert [e["kind"] for e in data["events"]] == ["promoted"]


def test_show_base_and_failed_and_missing(small: Store) -> None:
    base = render(generation_view(load_detail(small, 0)), 80)
    assert "no parent: this is where the lineage starts" in base and "the base model" in base
    failed = render(generation_view(load_detail(small, 4)), 80)
    assert "gen-0004  failed" in failed and "RuntimeError: out of memory" in failed
    with pytest.raises(GenerationNotFound, match=r"gen-0042 does not exist \(the store has gen-0000..gen-0004\)"):
        load_detail(small, 42)


def test_config_diff_names_added_and_removed_keys() -> None:
    assert config_diff({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "d": 3}}) == [("a.c", 2, "(unset)"), ("a.d", "(unset)", 3)]
    assert config_diff(None, {"a": 1}) == []


# -- commands ---------------------------------------------------------------------------------------------

@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "evolver.toml").write_text("")
    (tmp_path / "state").mkdir()
    synthetic.small(tmp_path / "state" / "evolver.db").close()
    return tmp_path / "evolver.toml"


def test_cli_lineage_show_watch_plot(cli, project: Path) -> None:  # noqa: ANN001
    r = cli("--config", project, "lineage")
    assert r.exit_code == 0 and "gen-0003 ★ current" in r.stdout
    data = json.loads(cli("--config", project, "lineage", "--json", "--benchmark", "arith").stdout)
    assert [g["id"] for g in data["generations"]] == [0, 1, 2, 3, 4]
    bad = cli("--config", project, "lineage", "--benchmark", "nope")
    assert bad.exit_code == 2 and "--benchmark nope: no evaluation results for it (known: arith)" in bad.stderr
    shown = cli("--config", project, "show", "3", "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["decision"]["kind"] == "promoted"
    missing = cli("--config", project, "show", "9")
    assert missing.exit_code == 1 and "gen-0009 does not exist" in missing.stderr
    w = cli("--config", project, "watch", "--once")
    assert w.exit_code == 0 and "5 generations · serving gen-0003" in w.stdout
    out = project.parent / "acc.png"
    p = cli("--config", project, "plot", "--out", out)
    assert p.exit_code == 0, p.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_cli_views_without_a_store(cli, tmp_path: Path) -> None:  # noqa: ANN001
    (tmp_path / "evolver.toml").write_text("")
    conf = tmp_path / "evolver.toml"
    assert "no generations yet" in cli("--config", conf, "lineage").stdout
    assert "no generations yet" in cli("--config", conf, "watch", "--once").stdout
    assert cli("--config", conf, "show", "0").exit_code == 1
    assert cli("--config", conf, "plot").exit_code == 1
    assert not (tmp_path / "state").exists()  # read commands leave nothing behind


def test_help_does_not_import_textual_or_matplotlib() -> None:
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom evolver.cli.app import app\n"
            "r = CliRunner().invoke(app, ['--help'])\nassert r.exit_code == 0, r.output\n"
            "assert 'lineage' in r.output and 'tui' in r.output, r.output\n"
            "print(','.join(m for m in ('textual', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_units_with_levels_are_listed_as_they_are(small: Store, tmp_path: Path) -> None:
    """A suite's levels are units of their own ('arith/5d'): every view lists them, none breaks on the '/'."""
    small.put_eval_results(3, "arith/5d", "standard", "e", {"acc@t1": (0.20, 40), "acc@t2": (0.35, 40)})
    small.put_eval_results(1, "arith/5d", "standard", "e", {"acc@t1": (0.10, 40), "acc@t2": (0.30, 40)})
    lin = load_lineage(small)
    assert lin.benchmarks == ["arith", "arith/5d"]
    text = render(lineage_view(lin), 160)
    assert "arith/5d t1 20.0 +10.0  t2 35.0 +5.0" in text
    assert "arith/5d   standard    20.0  +10.0    35.0  +5.0   40" in render(generation_view(load_detail(small, 3)), 100)
    g3 = next(g for g in lineage_json(lin, "arith/5d")["generations"] if g["id"] == 3)
    assert g3["metrics"] == {"arith/5d": {"standard": {"acc@t1": 0.20, "acc@t2": 0.35}}}
    from evolver.views.plot import plot_accuracy

    assert plot_accuracy(lin, tmp_path / "acc.png").stat().st_size > 10_000


def test_show_prints_the_parse_rate_when_an_evaluation_stored_one(small: Store) -> None:
    small.put_eval_results(3, "bb-mix/object_counting", "standard", "e",
                           {"acc@t1": (0.25, 40), "acc@t2": (0.30, 40), "parse_rate": (0.925, 40)})
    text = render(generation_view(load_detail(small, 3)), 120)
    header = next(line for line in text.splitlines() if "benchmark" in line and "protocol" in line)
    assert "parsed" in header
    assert "bb-mix/object_counting  standard    25.0" in text and "92.5" in text
