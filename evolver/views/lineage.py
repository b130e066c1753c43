"""`evolver lineage`: the generations as a tree from the base down, one label per generation.

Lines pack their pieces to the width they are given: one line per generation on a wide terminal,
two or three at 80 columns, never a piece cut in half.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text
from rich.tree import Tree

from evolver.states import EvalProtocol, gen_name
from evolver.store.lineage import GenInfo, Lineage
from evolver.views.format import SPARK_WINDOW, Chips, badges, delta_style, evidence, minutes, pct, pts, sparkline
from evolver.views.tree import DEFAULT_LAST, Gap, Node, shown, windowed

SIZES = ("D+", "D±")  # the dataset snapshots a label counts


def lineage_view(lin: Lineage, benchmark: str | None = None, last: int | None = DEFAULT_LAST) -> RenderableType:
    """The generations as a tree from the base down; the newest `last` (None: all) and what leads to them."""
    n = len(lin.generations)
    if n == 0:
        return Text("no generations yet: start one with `evolver run`")
    benches = [benchmark] if benchmark else lin.benchmarks
    spark_bench = benches[0] if benches else None
    rng = _spark_range(lin, spark_bench)
    rows = windowed(lin, last)
    count = len(shown(rows))
    head = Text()
    head.append(f"lineage: {n:,} generation{'s' if n != 1 else ''}", style="bold")
    serving = "none yet" if lin.current is None else gen_name(lin.current) + (" (pinned)" if lin.pinned is not None else "")
    head.append(f" · serving {serving}")
    if lin.pinned is not None and lin.promoted is not None and lin.promoted != lin.pinned:
        head.append(f" · promoted {gen_name(lin.promoted)}")
    notes = ["main line flat, dead ends and side branches indented"]
    if spark_bench is not None:
        notes.append(f"spark: {spark_bench} acc@t2 along the path ({pct(rng[0])}..{pct(rng[1])})")
    if count < n:
        notes.append(f"showing {count:,} of {n:,} (--all for every one)")
    tree = Tree(Group(head, Chips([Text(x, style="dim") for x in notes], indent=0)), guide_style="dim")
    _add_rows(tree, rows, lin, benches, spark_bench, rng)
    return tree


def gap_text(g: Gap) -> Text:
    return Text(f"⋯ {g.count:,} generation{'s' if g.count != 1 else ''} ({gen_name(g.first)}..{gen_name(g.last)})"
                " not shown", style="dim italic")


def _add_rows(tree: Tree, rows: list[Node | Gap], lin: Lineage, benches: list[str], spark_bench: str | None,
              rng: tuple[float, float]) -> None:
    stack: list[tuple[Tree, list[Node | Gap]]] = [(tree, rows)]  # no recursion: side branches can nest deep
    while stack:
        parent, items = stack.pop()
        for row in items:
            if isinstance(row, Gap):
                parent.add(gap_text(row))
                continue
            child = parent.add(_gen_label(lin, row.gen, benches, spark_bench, rng))
            if row.nested:
                stack.append((child, row.nested))


def _gen_label(lin: Lineage, gid: int, benches: list[str], spark_bench: str | None, rng: tuple[float, float]) -> Chips:
    g = lin.generations[gid]
    parent = lin.parent(gid)
    head = Text(gen_name(gid), style="bold")
    head.append(" ")
    head.append_text(badges(lin, gid))
    pieces = [head]
    if spark_bench is not None:
        path = [lin.generations[p].value(spark_bench, "acc@t2") for p in lin.path(gid)][-SPARK_WINDOW:]
        if any(v is not None for v in path):
            pieces.append(Text(sparkline(path, *rng), style="cyan"))
    for b in benches:
        pieces.extend(_bench_pieces(g, parent, b))
    sizes = "  ".join(f"{k} {d.rows}" for k, d in g.datasets.items() if k in SIZES)
    if sizes:
        pieces.append(Text(sizes))
    if g.train_minutes is not None:
        pieces.append(Text(f"train {minutes(g.train_minutes)}"))
    run = g.running_phase
    if run is not None:
        pieces.append(Text(f"▶ {run.name}" + (f" (try {run.attempts})" if run.attempts > 1 else ""), style="bold cyan"))
    reason = g.reason
    return Chips(pieces, Text(reason, style="dim") if reason else None)


def _bench_pieces(g: GenInfo, parent: GenInfo | None, bench: str) -> list[Text]:
    """'arith t1 41.0 +1.0', 't2 52.0 +4.0 p=0.003', 'paper 50.1 +2.0' (deltas against the parent)."""
    t1, t2 = g.value(bench, "acc@t1"), g.value(bench, "acc@t2")
    paper = g.value(bench, "acc@t2", EvalProtocol.PAPER)
    if t1 is None and t2 is None and paper is None:
        return []

    def piece(label: str, metric: str, proto: str = EvalProtocol.STANDARD) -> Text:
        v = g.value(bench, metric, proto)
        old = parent.value(bench, metric, proto) if parent is not None else None
        out = Text(f"{label} {pct(v)}")
        d = pts(v, old)
        if d:
            out.append(f" {d}", style=delta_style(v, old))
        return out

    first = Text(f"{bench} ", style="bold")
    first.append_text(piece("t1", "acc@t1"))
    second = piece("t2", "acc@t2")
    test = g.decision.tests.get(bench) if g.decision is not None else None
    ev = evidence(test)
    if ev:
        second.append(f" {ev}", style="bold green" if test is not None and test.significant else "dim")
    out = [first, second]
    if paper is not None:
        out.append(piece("paper", "acc@t2", EvalProtocol.PAPER))
    return out


def _spark_range(lin: Lineage, bench: str | None) -> tuple[float, float]:
    if bench is not None and bench in lin.t2_range:
        return lin.t2_range[bench]
    vals = [v for g in lin.generations.values() if bench and (v := g.value(bench, "acc@t2")) is not None]
    return (min(vals), max(vals)) if vals else (0.0, 1.0)
