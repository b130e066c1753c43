"""The Textual app, headless through its pilot: navigation, details, reflections, live refresh, and
pin / unpin / rollback behind the confirmation dialog, asserted in the store (pointer + event)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from textual.widgets import Static

from evolver.store import Store
from evolver.testing import synthetic
from evolver.tui.app import Confirm, EvolverApp

SIZE = (120, 40)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "evolver.db"
    synthetic.small(path).close()
    return path


def drive(app: EvolverApp, script: Callable[[Any], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            return await script(pilot)

    return asyncio.run(go())


def text_of(app: EvolverApp, selector: str) -> str:
    """What a Static shows, rendered as plain text."""
    from rich.console import Console

    console = Console(color_system=None, width=100, record=True, file=io.StringIO())
    console.print(app.query_one(selector, Static).content)
    return console.export_text()


def tree_gens(app: EvolverApp) -> list[int]:
    out, stack = [], [app.query_one("#lineage").root]  # type: ignore[attr-defined]
    while stack:
        node = stack.pop()
        if isinstance(node.data, int):
            out.append(node.data)
        stack.extend(node.children)
    return sorted(out)


def test_pin_through_the_dialog_records_the_event(db: Path, tmp_path: Path) -> None:
    app = EvolverApp(db, refresh_seconds=0)

    async def script(pilot: Any) -> str:
        assert app.selected == 3  # the current generation is selected at start
        assert "gen-0003  ★ current" in text_of(app, "#details")
        await pilot.press("up")  # the row above gen 3 is gen 2 (rejected, under gen 1)
        await pilot.pause()
        assert app.selected == 2
        assert "gen-0002  rejected" in text_of(app, "#details")
        await pilot.press("p")
        await pilot.pause()
        assert isinstance(app.screen, Confirm) and "Pin gen-0002?" in app.screen.question
        svg = app.export_screenshot()
        await pilot.press("y")
        await pilot.pause()
        assert not isinstance(app.screen, Confirm)
        assert app.lineage is not None and app.lineage.pinned == 2
        return svg

    svg = drive(app, script)
    (tmp_path / "tui.svg").write_text(svg)
    assert svg.startswith("<svg") and "gen-0002" in svg.replace("&#160;", " ")
    with Store.open(db) as s:
        assert s.pointer("pinned") == 2 and s.current_generation() == 2 and s.pointer("current") == 3
        ev = s.events(limit=1)[0]
        assert (ev.kind, ev.generation_id, ev.actor) == ("pinned", 2, "user")


def test_no_answers_change_nothing_then_unpin_and_rollback(db: Path) -> None:
    with Store.open(db) as s:
        n_events = len(s.events())
    app = EvolverApp(db, refresh_seconds=0)

    async def script(pilot: Any) -> None:
        await pilot.press("p", "n")  # declined: nothing happens
        await pilot.pause()
        with Store.open(db) as s:
            assert s.pointer("pinned") is None and len(s.events()) == n_events
        await pilot.press("u")  # nothing pinned: a notice, no dialog
        await pilot.pause()
        assert not isinstance(app.screen, Confirm)
        await pilot.press("p", "y", "u")
        await pilot.pause()
        assert isinstance(app.screen, Confirm) and "Unpin gen-0003?" in app.screen.question
        await pilot.press("y")
        await pilot.pause()
        await pilot.press("r")  # with the current one selected: back to the previous current (gen 1)
        await pilot.pause()
        assert isinstance(app.screen, Confirm) and "make gen-0001 current instead of gen-0003" in app.screen.question
        await pilot.press("y")
        await pilot.pause()

    drive(app, script)
    with Store.open(db) as s:
        kinds = [e.kind for e in reversed(s.events(limit=3))]
        assert kinds == ["pinned", "unpinned", "rolled_back"]
        assert s.pointer("pinned") is None and s.pointer("current") == 1
        g3 = s.generation(3)
        assert g3 is not None and g3.status == "rolled_back"


def test_a_refused_action_is_a_notice_not_a_crash(db: Path) -> None:
    app = EvolverApp(db, refresh_seconds=0)

    async def script(pilot: Any) -> list[str]:
        await pilot.press("down")  # gen 4: failed, can never be served
        await pilot.pause()
        assert app.selected == 4
        await pilot.press("p", "y")
        await pilot.pause()
        return [n.message for n in app._notifications]  # noqa: SLF001

    notes = drive(app, script)
    assert any("gen-0004 failed; a failed generation can never become current" in n for n in notes)
    with Store.open(db) as s:
        assert s.pointer("pinned") is None


def test_reflection_browser_and_filter(db: Path) -> None:
    app = EvolverApp(db, refresh_seconds=0)

    async def script(pilot: Any) -> tuple[int, int, str]:
        app.query_one("#right").active = "tab-reflections"  # type: ignore[attr-defined]
        await pilot.pause()
        table = app.query_one("#refl-table")
        total = table.row_count  # type: ignore[attr-defined]
        app.set_focus(table)
        await pilot.press("down")
        await pilot.pause()
        body = text_of(app, "#refl-body")
        await pilot.press("f")  # only the reflections that fixed the answer
        await pilot.pause()
        return total, table.row_count, body  # type: ignore[attr-defined]

    total, fixed, body = drive(app, script)
    with Store.open(db) as s:
        refl = s.reflections(3, "pool")
    assert total == len(refl) == 12
    assert fixed == sum(bool(r.success) for r in refl)
    assert "question arith-3-" in body


def test_live_refresh_shows_a_new_generation(db: Path) -> None:
    app = EvolverApp(db, refresh_seconds=0.1)

    async def script(pilot: Any) -> list[int]:
        assert 5 not in tree_gens(app)
        with Store.open(db) as s:  # the daemon, in another connection
            s.create_generation(5, 3, "tiny", "h5", "{}")
            s.phase_start(5, "generate")
        await pilot.pause(0.5)
        return tree_gens(app)

    assert 5 in drive(app, script)


def test_opens_on_empty_and_running_stores(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    Store.open(empty).close()
    running = tmp_path / "running.db"
    with Store.open(running) as s:
        s.create_generation(0, None, "tiny", "h0", "{}", status="running")
        s.phase_start(0, "evaluate")

    async def labels(pilot: Any) -> str:
        app = pilot.app
        return " ".join(str(n.label) for n in app.query_one("#lineage").root.children)

    assert "no generations yet" in drive(EvolverApp(empty, refresh_seconds=0), labels)
    assert "gen-0000 running" in drive(EvolverApp(running, refresh_seconds=0), labels)


def test_screenshot_renders_the_first_frame_and_exits(db: Path, tmp_path: Path, cli) -> None:  # noqa: ANN001
    (tmp_path / "evolver.toml").write_text(f'state_dir = "{db.parent}"\n')
    out = tmp_path / "shots" / "tui.svg"
    r = cli("--config", tmp_path / "evolver.toml", "tui", "--screenshot", out, "--size", "120x40")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == f"wrote {out}\n"
    svg = out.read_text().replace("&#160;", " ")
    assert svg.startswith("<svg") and "evolver tui" in svg
    assert "gen-0003" in svg and "★ current" in svg  # the tree, the current generation selected and shown
    bad = cli("--config", tmp_path / "evolver.toml", "tui", "--screenshot", out, "--size", "wide")
    assert bad.exit_code == 2 and "--size wide: expected COLUMNSxROWS" in bad.stderr
