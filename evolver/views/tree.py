"""The lineage as the views draw it: the main line flat, side branches indented, and a window of the
newest generations with gaps for what it leaves out.

Layout, not queries: a view that draws a window asks `window_ids` which generations it needs and
has the store fill only those (`evolver.store.lineage.lineage_skeleton` + `fill_lineage`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evolver.store.lineage import Lineage
from evolver.views.format import SPARK_WINDOW

DEFAULT_LAST = 50  # generations the lineage shows unless --all (plus what leads to them, and the current one)


@dataclass
class Node:
    """One generation in the display tree; `nested` holds its side branches and dead ends, in id order."""

    gen: int
    nested: list[Node | Gap] = field(default_factory=list)


@dataclass(frozen=True)
class Gap:
    """Generations left out of a window (`count` of them, ids `first`..`last`)."""

    count: int
    first: int
    last: int


def display_tree(lin: Lineage) -> list[Node | Gap]:
    """The lineage as a list of top-level rows.

    One child continues on its parent's level (the main line), so a chain of 1,000 promotions is
    a flat list, not 1,000 levels of indentation: the child on the way to the current generation,
    else the child with descendants that holds the newest generation. The other children are
    indented under their parent: dead ends (rejected or failed candidates, the running one) as
    single rows, side branches (e.g. the line a rollback left) as their own flat chains.
    """
    gens = lin.generations
    newest: dict[int, int] = {}
    holds_current: dict[int, bool] = {}
    for gid in sorted(gens, reverse=True):  # children have larger ids than parents
        kids = [k for k in gens[gid].children if k in newest]
        newest[gid] = max([gid, *(newest[k] for k in kids)])
        holds_current[gid] = gid == lin.current or any(holds_current[k] for k in kids)
    for gid in gens:  # anything a descending pass missed (a child with a smaller id than its parent)
        newest.setdefault(gid, gid)
        holds_current.setdefault(gid, gid == lin.current)

    def chain(start: int) -> list[Node | Gap]:
        out: list[Node | Gap] = []
        g: int | None = start
        seen: set[int] = set()
        while g is not None and g not in seen:
            seen.add(g)
            kids = sorted(gens[g].children)
            branches = [k for k in kids if gens[k].children or holds_current[k]]
            main = max(branches, key=lambda k: (holds_current[k], newest[k])) if branches else None
            nested: list[Node | Gap] = []
            for k in kids:
                if k != main:
                    nested.extend(chain(k) if gens[k].children else [Node(k)])
            out.append(Node(g, nested))
            g = main
        return out

    roots = [g for g, info in gens.items() if info.parent_id is None or info.parent_id not in gens]
    rows: list[Node | Gap] = []
    for r in roots:
        rows.extend(chain(r))
    return rows


def window(rows: list[Node | Gap], keep: set[int]) -> list[Node | Gap]:
    """Only rows whose generation is in `keep` or that lead to one; runs left out become one Gap each."""
    out: list[Node | Gap] = []
    dropped: list[int] = []

    def flush() -> None:
        if dropped:
            out.append(Gap(len(dropped), min(dropped), max(dropped)))
            dropped.clear()

    for row in rows:
        if isinstance(row, Gap):
            flush()
            out.append(row)
            continue
        nested = window(row.nested, keep)
        if row.gen in keep or any(isinstance(n, Node) for n in nested):
            flush()
            out.append(Node(row.gen, nested))
        else:
            dropped.extend(_ids(row))
    flush()
    return out


def _ids(node: Node) -> list[int]:
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        out.append(n.gen)
        stack.extend(x for x in n.nested if isinstance(x, Node))
    return out


def shown(rows: list[Node | Gap]) -> list[int]:
    """The generations the rows draw (gaps left out), nested ones included."""
    out: list[int] = []
    stack = list(rows)
    while stack:
        r = stack.pop()
        if isinstance(r, Node):
            out.append(r.gen)
            stack.extend(r.nested)
    return out


def default_keep(lin: Lineage, last: int | None) -> set[int] | None:
    """The newest `last` generations plus the current, pinned and promoted ones; None means all."""
    if last is None or len(lin.generations) <= last:
        return None
    ids = list(lin.generations)
    keep = set(ids[-last:])
    keep.update(g for g in (lin.current, lin.pinned, lin.promoted) if g is not None)
    return keep


def windowed(lin: Lineage, last: int | None) -> list[Node | Gap]:
    """The display tree cut to the newest `last` generations (None: every one)."""
    rows = display_tree(lin)
    keep = default_keep(lin, last)
    return rows if keep is None else window(rows, keep)


def window_ids(skeleton: Lineage, last: int | None) -> set[int] | None:
    """The generations whose numbers a newest-`last` window draws: its rows, their parents (the deltas)
    and the sparkline's ancestors. None: the window draws every generation."""
    if default_keep(skeleton, last) is None:
        return None
    need: set[int] = set()
    for gid in shown(windowed(skeleton, last)):
        need.update(skeleton.path(gid)[-(SPARK_WINDOW + 1):])
    return need
