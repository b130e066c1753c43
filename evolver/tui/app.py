"""`evolver tui`: the lineage as a keyboard-driven tree, a details pane, a reflection browser, live refresh,
and pin / unpin / rollback behind a confirmation dialog; `evolver tui --screenshot` renders its first frame.

The actions call evolver.policy.actions (pin, unpin, rollback), the same code the CLI runs, so each
is one transaction that moves a pointer and appends an event with actor "user". The app reads the
store through its read side (evolver.store.lineage, .detail, .watch), re-reads only when
`store_version` changes, and draws with evolver.views.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.pilot import Pilot
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Header, Label, Static, TabbedContent, TabPane, Tree

from evolver.states import gen_name
from evolver.store import Store
from evolver.store.detail import ReflectionRow, load_detail, load_reflections
from evolver.store.lineage import Lineage, fill_lineage, lineage_skeleton
from evolver.store.watch import store_version
from evolver.views.format import badges, pct, pts
from evolver.views.generation import generation_view
from evolver.views.tree import DEFAULT_LAST, Gap, Node, window_ids, windowed

ACTOR = "user"


class Confirm(ModalScreen[bool]):
    """Yes / no before anything that changes what is served."""

    DEFAULT_CSS = """
    Confirm { align: center middle; }
    #dialog { width: 64; height: auto; border: thick $warning; background: $surface; padding: 1 2; }
    #question { width: 100%; margin-bottom: 1; }
    #buttons { width: 100%; height: auto; align-horizontal: right; }
    #buttons Button { margin-left: 2; }
    """
    BINDINGS = [Binding("y", "answer(True)", "yes"), Binding("n,escape", "answer(False)", "no")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, id="question")
            with Horizontal(id="buttons"):
                yield Button("Yes (y)", variant="warning", id="yes")
                yield Button("No (n)", variant="primary", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


def node_label(lin: Lineage, gid: int, bench: str | None) -> Text:
    """One line per generation: name, state, acc@t2 with its change against the parent."""
    g = lin.generations[gid]
    out = Text(gen_name(gid), style="bold")
    out.append(" ")
    out.append_text(badges(lin, gid))
    if bench is not None:
        v = g.value(bench, "acc@t2")
        if v is not None:
            parent = lin.parent(gid)
            out.append(f"  t2 {pct(v)}")
            d = pts(v, parent.value(bench, "acc@t2") if parent else None)
            if d:
                out.append(f" {d}", style="green" if d.startswith("+") and d != "+0.0" else "red" if d.startswith("-")
                           else "dim")
    run = g.running_phase
    if run is not None:
        out.append(f"  ▶ {run.name}", style="bold cyan")
    return out


class EvolverApp(App[None]):
    """Browse the lineage; pin, unpin and roll back with a confirmation."""

    TITLE = "evolver"
    CSS = """
    #lineage { width: 46%; min-width: 36; border-right: solid $primary-darken-2; }
    #right { width: 1fr; }
    #refl-table { height: 45%; }
    #refl-text { height: 1fr; padding: 0 1; }
    #details { padding: 0 1; }
    """
    BINDINGS = [
        Binding("q", "quit", "quit"),
        Binding("p", "pin", "pin"),
        Binding("u", "unpin", "unpin"),
        Binding("r", "rollback", "rollback"),
        Binding("a", "toggle_all", "all/last"),
        Binding("f", "cycle_filter", "fixed/not"),
        Binding("g", "reload", "refresh"),
    ]

    def __init__(self, db: Path, refresh_seconds: float = 2.0, last: int | None = DEFAULT_LAST,
                 benchmark: str | None = None) -> None:
        super().__init__()
        self.db = Path(db)
        self.refresh_seconds = refresh_seconds
        self.last = last
        self.benchmark = benchmark
        self.store: Store | None = None
        self.lineage: Lineage | None = None
        self.version: tuple | None = None
        self.selected: int | None = None
        self.filter: bool | None = None  # reflections: None all, True fixed, False not fixed
        self.reflection_rows: dict[str, ReflectionRow] = {}

    # -- layout ----------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield Tree("lineage", id="lineage")
            with TabbedContent(id="right"):
                with TabPane("Details", id="tab-details"), VerticalScroll():
                    yield Static("", id="details")
                with TabPane("Reflections", id="tab-reflections"):
                    yield DataTable(id="refl-table", cursor_type="row", zebra_stripes=True)
                    with VerticalScroll(id="refl-text"):
                        yield Static("", id="refl-body")
        yield Footer()

    def on_mount(self) -> None:
        self.store = Store.open(self.db)
        table = self.query_one("#refl-table", DataTable)
        table.add_columns("id", "instruction", "question", "fixed?", "reflection")
        self.reload()
        if self.refresh_seconds > 0:
            self.set_interval(self.refresh_seconds, self.poll)

    def on_unmount(self) -> None:
        if self.store is not None:
            self.store.close()

    def first_frame(self, size: tuple[int, int]) -> str:
        """Run headless at `size` (columns, rows) up to the first full frame, the current generation
        selected and its details shown, and return that frame as SVG; the app exits after it."""
        frame: list[str] = []

        async def shoot(pilot: Pilot[None]) -> None:
            await pilot.pause()  # mounted, tree built
            await pilot.pause()  # the cursor moved to the selected generation, details drawn
            frame.append(self.export_screenshot(title="evolver tui"))
            self.exit()

        self.run(headless=True, size=size, auto_pilot=shoot)
        if not frame:
            raise RuntimeError("the TUI stopped before drawing its first frame")
        return frame[0]

    # -- data ------------------------------------------------------------------------------------------
    def poll(self) -> None:
        """Timer: re-read only when the store changed (the daemon wrote a phase, a result or an event)."""
        if self.store is not None and store_version(self.store) != self.version:
            self.reload()

    def reload(self) -> None:
        assert self.store is not None
        self.version = store_version(self.store)
        skeleton = lineage_skeleton(self.store)
        self.lineage = fill_lineage(self.store, skeleton, window_ids(skeleton, self.last))
        self._build_tree()
        self._show_details()
        if self.query_one(TabbedContent).active == "tab-reflections":
            self._fill_reflections()

    def _bench(self) -> str | None:
        assert self.lineage is not None
        return self.benchmark or (self.lineage.benchmarks[0] if self.lineage.benchmarks else None)

    def _build_tree(self) -> None:
        lin = self.lineage
        assert lin is not None
        tree = self.query_one("#lineage", Tree)
        tree.clear()
        n = len(lin.generations)
        tree.root.set_label(Text(f"lineage · {n:,} generations", style="bold"))
        tree.root.expand()
        if n == 0:
            tree.root.add_leaf(Text("no generations yet: start one with `evolver run`", style="dim"))
            self.selected = None
            return
        rows = windowed(lin, self.last)
        bench = self._bench()
        if self.selected is None or self.selected not in lin.generations:
            self.selected = lin.current if lin.current is not None else lin.latest
        target = None
        stack: list[tuple[object, list[Node | Gap]]] = [(tree.root, rows)]
        while stack:
            parent, items = stack.pop()
            for row in items:
                if isinstance(row, Gap):
                    parent.add_leaf(Text(f"⋯ {row.count:,} not shown ({gen_name(row.first)}..{gen_name(row.last)}); a: all",
                                         style="dim italic"), data=None)  # type: ignore[attr-defined]
                    continue
                label = node_label(lin, row.gen, bench)
                if row.nested:
                    node = parent.add(label, data=row.gen, expand=True)  # type: ignore[attr-defined]
                    stack.append((node, row.nested))
                else:
                    node = parent.add_leaf(label, data=row.gen)  # type: ignore[attr-defined]
                if row.gen == self.selected:
                    target = node
        if target is not None:
            self.call_after_refresh(self._move_to, target)

    def _move_to(self, node: object) -> None:
        tree = self.query_one("#lineage", Tree)
        tree.move_cursor(node)  # type: ignore[arg-type]

    def _show_details(self) -> None:
        details = self.query_one("#details", Static)
        if self.store is None or self.selected is None:
            details.update("no generation selected")
            return
        details.update(generation_view(load_detail(self.store, self.selected), self.benchmark))

    def _fill_reflections(self) -> None:
        table = self.query_one("#refl-table", DataTable)
        table.clear()
        self.query_one("#refl-body", Static).update("")
        self.reflection_rows = {}
        if self.store is None or self.selected is None:
            return
        rows = load_reflections(self.store, self.selected, self.filter)
        self.reflection_rows = {str(r.id): r for r in rows}
        for r in rows:
            fixed = "-" if r.success is None else "yes" if r.success else "no"
            table.add_row(str(r.id), r.instruction_id, r.question, fixed, r.text[:60].replace("\n", " "), key=str(r.id))

    # -- events ----------------------------------------------------------------------------------------
    @on(Tree.NodeHighlighted, "#lineage")
    def _highlighted(self, event: Tree.NodeHighlighted) -> None:
        gid = event.node.data
        if isinstance(gid, int) and gid != self.selected:
            self.selected = gid
            self._show_details()
            if self.query_one(TabbedContent).active == "tab-reflections":
                self._fill_reflections()

    @on(TabbedContent.TabActivated)
    def _tab(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "tab-reflections":
            self._fill_reflections()

    @on(DataTable.RowHighlighted, "#refl-table")
    def _refl_highlighted(self, event: DataTable.RowHighlighted) -> None:
        r = self.reflection_rows.get(event.row_key.value or "")
        if r is None:
            return
        head = Text(f"{r.instruction_id}  question {r.question}  ", style="bold")
        head.append("fixed the answer" if r.success else "did not fix it" if r.success is False else "no retry yet",
                    style="green" if r.success else "red" if r.success is False else "dim")
        self.query_one("#refl-body", Static).update(Text.assemble(head, "\n\n", r.text))

    # -- actions ---------------------------------------------------------------------------------------
    def action_reload(self) -> None:
        self.reload()

    def action_toggle_all(self) -> None:
        self.last = DEFAULT_LAST if self.last is None else None
        self.reload()

    def action_cycle_filter(self) -> None:
        self.filter = True if self.filter is None else False if self.filter else None
        label = {None: "all reflections", True: "reflections that fixed the answer",
                 False: "reflections that did not"}[self.filter]
        self.notify(label)
        self._fill_reflections()

    def _confirm(self, question: str, do: Callable[[Store], str]) -> None:
        def answered(yes: bool | None) -> None:
            if not yes or self.store is None:
                return
            from evolver.policy.actions import PolicyActionError

            try:
                message = do(self.store)
            except PolicyActionError as err:
                self.notify(str(err), severity="error", timeout=8)
                return
            self.notify(message)
            self.reload()

        self.push_screen(Confirm(question), answered)

    def action_pin(self) -> None:
        from evolver.policy.actions import pin

        gid = self.selected
        if gid is None:
            return
        self._confirm(f"Pin {gen_name(gid)}? It is served whatever the policy decides, until you unpin.",
                      lambda s: f"pinned {gen_name(gid)}" if pin(s, gid, f"{gen_name(gid)} pinned from the TUI", ACTOR)
                      else f"{gen_name(gid)} was already pinned")

    def action_unpin(self) -> None:
        from evolver.policy.actions import unpin

        lin = self.lineage
        if lin is None or lin.pinned is None:
            self.notify("nothing is pinned")
            return
        self._confirm(f"Unpin {gen_name(lin.pinned)}? {gen_name(lin.promoted)} (promoted) is served again.",
                      lambda s: f"unpinned {gen_name(unpin(s, 'unpinned from the TUI', ACTOR))}")

    def action_rollback(self) -> None:
        from evolver.policy.actions import previous_current, rollback

        lin = self.lineage
        if lin is None or self.store is None or lin.promoted is None:
            self.notify("nothing is current; there is nothing to roll back", severity="warning")
            return
        to = self.selected if self.selected not in (None, lin.promoted) else None
        target = to if to is not None else previous_current(self.store)
        if target is None:
            self.notify(f"{gen_name(lin.promoted)} has no earlier current generation to roll back to",
                        severity="warning")
            return

        def do(s: Store) -> str:
            frm, dst = rollback(s, to=to, reason=f"rolled back from the TUI to {gen_name(target)}", actor=ACTOR)
            return f"rolled back {gen_name(frm)} -> {gen_name(dst)}"

        self._confirm(f"Roll back: make {gen_name(target)} current instead of {gen_name(lin.promoted)}?", do)
