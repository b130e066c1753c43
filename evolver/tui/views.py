"""Views: pure functions from the plain data of `evolver.tui.data` to Rich renderables (and JSON).

No view touches the store, so each is tested by rendering with `Console(color_system=None,
width=80)` and reading the text. Lines pack their pieces to the width they are given: one line
per generation on a wide terminal, two or three at 80 columns, never a piece cut in half.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.progress_bar import ProgressBar
from rich.rule import Rule
from rich.segment import Segment
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from evolver.tui.data import (
    PAPER,
    SPARK_WINDOW,
    STANDARD,
    Gap,
    GenDetail,
    GenInfo,
    Lineage,
    Node,
    ReflectionRow,
    TestInfo,
    WatchInfo,
    default_keep,
    display_tree,
    gen_name,
    window,
)

DEFAULT_LAST = 50  # generations the lineage shows unless --all (plus what leads to them, and the current one)
PHASE_ORDER = ("generate", "harvest", "sft", "dpo", "evaluate", "decide")
SPARK = "▁▂▃▄▅▆▇█"
# Phase-detail keys shown elsewhere in `show` (the adapter in the header) or too long for a table cell.
DETAIL_SKIP = ("adapter_path", "adapter_sha256", "init_state_sha256", "sources", "init")
SPARK_LEN = SPARK_WINDOW
STYLES = {
    "current": "bold reverse green", "pinned": "bold reverse cyan", "promoted": "green", "rejected": "yellow",
    "rolled back": "magenta", "rolled_back": "magenta", "failed": "bold red", "running": "bold cyan",
    "evaluated": "blue", "base": "bold", "manual_promote": "green", "unpinned": "cyan", "note": "dim",
}


# -- small pieces ---------------------------------------------------------------------------------------

def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def pts(new: float | None, old: float | None) -> str:
    """The change in points, '+4.0'; empty when either side is missing."""
    return "" if new is None or old is None else f"{100 * (new - old):+.1f}"


def evidence(t: TestInfo | None) -> str:
    if t is None:
        return ""
    if t.p is not None:
        return f"p={t.p:.2g}"
    if t.ci is not None:
        return f"CI {t.ci[0]:+.1f}..{t.ci[1]:+.1f}"
    return ""


def sparkline(values: Sequence[float | None], lo: float, hi: float) -> str:
    """One block per value, scaled to lo..hi (a blank for a missing value)."""
    span = hi - lo
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        else:
            i = 0 if span <= 0 else round((v - lo) / span * (len(SPARK) - 1))
            out.append(SPARK[max(0, min(len(SPARK) - 1, i))])
    return "".join(out)


def minutes(m: float | None) -> str:
    if m is None:
        return "-"
    return f"{m:.1f} min" if m < 120 else f"{m / 60:.1f} h"


def clock(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def short(text: str | None, n: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


class Chips:
    """Pieces of text packed into as few lines as the width allows, then a last line cut to fit.

    A piece never breaks in the middle; a piece wider than the whole line is cut with an ellipsis.
    """

    def __init__(self, pieces: Iterable[Text], tail: Text | None = None, indent: int = 2) -> None:
        self.pieces = [p for p in pieces if p.plain]
        self.tail = tail if tail is not None and tail.plain else None
        self.indent = indent

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(8, options.max_width)
        lines: list[Text] = []
        line = Text()
        for piece in self.pieces:
            if line.plain.strip() and line.cell_len + 2 + piece.cell_len > width:
                lines.append(line)
                line = Text(" " * self.indent)
            if line.plain.strip():
                line.append("  ")
            line.append_text(piece)
        if line.plain.strip():
            lines.append(line)
        if self.tail is not None:
            lines.append(Text(" " * self.indent) + self.tail if lines else self.tail.copy())
        newline = Segment.line()
        for ln in lines:  # segments straight away: no wrapping pass, 3x faster over 1,000 labels
            ln.truncate(width, overflow="ellipsis")
            yield from ln.render(console)
            yield newline

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        widest = max([p.cell_len for p in self.pieces] + [8])
        total = sum(p.cell_len + 2 for p in self.pieces) + (self.tail.cell_len if self.tail else 0)
        return Measurement(min(widest, options.max_width), min(max(total, widest), options.max_width))


def _t(text: str, style: str = "") -> Text:
    return Text(text, style=style)


def badges(lin: Lineage, gid: int) -> Text:
    out = Text()
    for b in lin.badges(gid):
        if out.plain:
            out.append(" ")
        out.append(("★ " if b == "current" else "") + b, style=STYLES.get(b, ""))
    return out


# -- the lineage ---------------------------------------------------------------------------------------

def _bench_pieces(g: GenInfo, parent: GenInfo | None, bench: str, named: bool) -> list[Text]:
    """'arith t1 41.0 +1.0', 't2 52.0 +4.0 p=0.003', 'paper 50.1 +2.0' (deltas against the parent)."""
    t1, t2 = g.value(bench, "acc@t1"), g.value(bench, "acc@t2")
    paper = g.value(bench, "acc@t2", PAPER)
    if t1 is None and t2 is None and paper is None:
        return []

    def piece(label: str, metric: str, proto: str = STANDARD) -> Text:
        v = g.value(bench, metric, proto)
        old = parent.value(bench, metric, proto) if parent is not None else None
        out = Text(f"{label} {pct(v)}")
        d = pts(v, old)
        if d:
            out.append(f" {d}", style=_delta_style(v, old))
        return out

    first = Text(f"{bench} " if named else "", style="bold")
    first.append_text(piece("t1", "acc@t1"))
    second = piece("t2", "acc@t2")
    test = g.decision.tests.get(bench) if g.decision is not None else None
    ev = evidence(test)
    if ev:
        second.append(f" {ev}", style="bold green" if test is not None and test.significant else "dim")
    out = [first, second]
    if paper is not None:
        out.append(piece("paper", "acc@t2", PAPER))
    return out


def _delta_style(new: float | None, old: float | None) -> str:
    if new is None or old is None or abs(new - old) < 1e-12:
        return "dim"
    return "green" if new > old else "red"


def _spark_range(lin: Lineage, bench: str | None) -> tuple[float, float]:
    if bench is not None and bench in lin.t2_range:
        return lin.t2_range[bench]
    vals = [v for g in lin.generations.values() if bench and (v := g.value(bench, "acc@t2")) is not None]
    return (min(vals), max(vals)) if vals else (0.0, 1.0)


def _gen_label(lin: Lineage, gid: int, benches: list[str], spark_bench: str | None, rng: tuple[float, float]) -> Chips:
    g = lin.generations[gid]
    parent = lin.parent(gid)
    head = _t(gen_name(gid), "bold")
    head.append(" ")
    head.append_text(badges(lin, gid))
    pieces = [head]
    if spark_bench is not None:
        path = [lin.generations[p].value(spark_bench, "acc@t2") for p in lin.path(gid)][-SPARK_LEN:]
        if any(v is not None for v in path):
            pieces.append(_t(sparkline(path, *rng), "cyan"))
    for b in benches:
        pieces.extend(_bench_pieces(g, parent, b, named=True))
    sizes = "  ".join(f"{k} {d.rows}" for k, d in g.datasets.items() if k in ("D+", "D±"))
    if sizes:
        pieces.append(_t(sizes))
    if g.train_minutes is not None:
        pieces.append(_t(f"train {minutes(g.train_minutes)}"))
    run = g.running_phase
    if run is not None:
        pieces.append(_t(f"▶ {run.name}" + (f" (try {run.attempts})" if run.attempts > 1 else ""), "bold cyan"))
    reason = g.reason
    tail = _t(reason, "dim") if reason else None
    return Chips(pieces, tail)


def lineage_view(lin: Lineage, benchmark: str | None = None, last: int | None = DEFAULT_LAST) -> RenderableType:
    """The generations as a tree from the base down; the newest `last` (None: all) and what leads to them."""
    n = len(lin.generations)
    if n == 0:
        return Text("no generations yet: start one with `evolver run`")
    benches = [benchmark] if benchmark else lin.benchmarks
    spark_bench = benches[0] if benches else None
    rng = _spark_range(lin, spark_bench)
    rows = display_tree(lin)
    keep = default_keep(lin, last)
    if keep is not None:
        rows = window(rows, keep)
    shown = _count(rows)
    head = Text()
    head.append(f"lineage: {n:,} generation{'s' if n != 1 else ''}", style="bold")
    serving = "none yet" if lin.current is None else gen_name(lin.current) + (" (pinned)" if lin.pinned is not None else "")
    head.append(f" · serving {serving}")
    if lin.pinned is not None and lin.promoted is not None and lin.promoted != lin.pinned:
        head.append(f" · promoted {gen_name(lin.promoted)}")
    notes = ["main line flat, dead ends and side branches indented"]
    if spark_bench is not None:
        notes.append(f"spark: {spark_bench} acc@t2 along the path ({pct(rng[0])}..{pct(rng[1])})")
    if shown < n:
        notes.append(f"showing {shown:,} of {n:,} (--all for every one)")
    tree = Tree(Group(head, Chips([_t(x, "dim") for x in notes], indent=0)), guide_style="dim")
    _add_rows(tree, rows, lin, benches, spark_bench, rng)
    return tree


def _count(rows: list[Node | Gap]) -> int:
    total, stack = 0, list(rows)
    while stack:
        r = stack.pop()
        if isinstance(r, Node):
            total += 1
            stack.extend(r.nested)
    return total


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


def gap_text(g: Gap) -> Text:
    return Text(f"⋯ {g.count:,} generation{'s' if g.count != 1 else ''} ({gen_name(g.first)}..{gen_name(g.last)})"
                " not shown", style="dim italic")


def gen_json(lin: Lineage, gid: int, benchmark: str | None = None) -> dict[str, Any]:
    """One generation as the lineage and `show` JSON give it: metrics as fractions, deltas in points."""
    g = lin.generations[gid]
    parent = lin.parent(gid)
    nested = {b: protos for b, protos in g.metrics.items() if benchmark is None or b == benchmark}
    metrics = {b: {p: {m: v.value for m, v in ms.items()} for p, ms in protos.items()} for b, protos in nested.items()}
    deltas: dict[str, Any] = {}
    if parent is not None:
        for b, protos in metrics.items():
            for p, ms in protos.items():
                for m, v in ms.items():
                    old = parent.value(b, m, p)
                    if old is not None:
                        deltas.setdefault(b, {}).setdefault(p, {})[m] = round(100 * (v - old), 4)
    tests = g.decision.tests if g.decision is not None else {}
    return {
        "id": gid, "name": gen_name(gid), "parent": g.parent_id, "status": g.status, "badges": lin.badges(gid),
        "children": g.children, "created_at": g.created_at, "finished_at": g.finished_at,
        "adapter_sha256": g.adapter_sha256, "config_hash": g.config_hash, "metrics": metrics,
        "n": {b: {p: {m: v.n for m, v in ms.items()} for p, ms in protos.items()} for b, protos in nested.items()},
        "deltas_vs_parent": deltas,
        "tests": {b: {"test": t.test, "n": t.n, "p": t.p, "ci": list(t.ci) if t.ci else None,
                      "significant": t.significant} for b, t in tests.items() if benchmark is None or b == benchmark},
        "datasets": {k: {"rows": d.rows, "sha256": d.sha256, "source": d.source} for k, d in g.datasets.items()},
        "phases": {n: {"status": p.status, "attempts": p.attempts, "started_at": p.started_at,
                       "finished_at": p.finished_at, "minutes": p.minutes, "error": p.error}
                   for n, p in g.phases.items()},
        "train_minutes": g.train_minutes,
        "decision": None if g.decision is None else {"kind": g.decision.kind, "actor": g.decision.actor,
                                                     "ts": g.decision.ts, "reason": g.decision.reason},
        "reason": g.reason,
    }


def lineage_json(lin: Lineage, benchmark: str | None = None) -> dict[str, Any]:
    """The lineage's data, every generation (the tree's window is a display choice)."""
    bench = benchmark or (lin.benchmarks[0] if lin.benchmarks else None)
    out = []
    for gid in lin.generations:
        row = gen_json(lin, gid, benchmark)
        row["path_acc_t2"] = None if bench is None else [lin.generations[p].value(bench, "acc@t2") for p in lin.path(gid)]
        out.append(row)
    return {"current": lin.current, "promoted": lin.promoted, "pinned": lin.pinned, "latest": lin.latest,
            "benchmarks": [benchmark] if benchmark else lin.benchmarks, "spark_benchmark": bench,
            "generations": out}


# -- one generation -------------------------------------------------------------------------------------

def _section(title: str) -> Rule:
    return Rule(Text(title, style="bold"), align="left", style="dim")


def _grid() -> Table:
    t = Table.grid(padding=(0, 2))
    t.add_column(style="dim", no_wrap=True)
    t.add_column(overflow="fold")
    return t


def _value(v: Any) -> str:
    return v if isinstance(v, str) else repr(v)


def generation_view(d: GenDetail, benchmark: str | None = None) -> RenderableType:
    """`evolver show N`: everything about one generation, parent-relative where that helps."""
    g, lin = d.gen, d.lineage
    parts: list[RenderableType] = []
    title = Text(gen_name(g.id), style="bold")
    title.append("  ")
    title.append_text(badges(lin, g.id))
    parts.append(title)
    info = _grid()
    info.add_row("parent", "none (the base model)" if g.parent_id is None else gen_name(g.parent_id))
    info.add_row("created", clock(g.created_at))
    info.add_row("finished", clock(g.finished_at))
    info.add_row("adapter", g.adapter_sha256 or "none (base weights)")
    info.add_row("config", g.config_hash)
    if g.note:
        info.add_row("note", g.note)
    parts.append(info)

    parts.append(_section("config vs parent"))
    if d.parent is None:
        parts.append(Text("no parent: this is where the lineage starts", style="dim"))
    elif not d.config_diff:
        parts.append(Text(f"same config as {gen_name(d.parent.id)}", style="dim"))
    else:
        t = Table(box=None, pad_edge=False, show_edge=False)
        t.add_column("key", style="bold", overflow="fold")
        t.add_column(gen_name(d.parent.id), overflow="fold")
        t.add_column(gen_name(g.id), overflow="fold")
        for key, old, new in d.config_diff:
            t.add_row(key, _value(old), _value(new))
        parts.append(t)

    parts.append(_section("datasets"))
    if g.datasets:
        t = Table(box=None, pad_edge=False, show_edge=False)
        for c in ("kind", "rows", "sha256", "source"):
            t.add_column(c, justify="right" if c == "rows" else "left", overflow="fold")
        for ds in g.datasets.values():
            t.add_row(ds.kind, f"{ds.rows:,}", ds.sha256[:16], ds.source)
        parts.append(t)
    else:
        parts.append(Text("no dataset snapshots", style="dim"))

    parts.append(_section("phases and training"))
    parts.append(phases_table(g))
    for phase, logs in d.train_logs.items():
        losses = [r["loss"] for r in logs if r.get("loss") is not None]
        line = Text(f"{phase}: {len(logs)} logged steps", style="bold")
        if losses:
            line.append(f"  loss {losses[0]:.3g} → {losses[-1]:.3g}  ")
            line.append(sparkline(losses[-24:], min(losses), max(losses)), style="cyan")
        lr = logs[-1].get("learning_rate")
        if lr is not None:
            line.append(f"  lr {lr:.2g}")
        parts.append(line)

    parts.append(_section("evaluation"))
    parts.append(eval_table(g, d.parent, benchmark))

    parts.append(_section("decision"))
    if g.decision is None and not d.events:
        parts.append(Text("no decision yet", style="dim"))
    if g.decision is not None:
        e = g.decision
        line = Text(e.kind, style=STYLES.get(e.kind, "bold"))
        line.append(f" by {e.actor}, {clock(e.ts)}: ")
        line.append(e.reason)
        parts.append(line)
        for b, t in e.tests.items():
            if benchmark is None or b == benchmark:
                sig = "significant" if t.significant else "not significant"
                parts.append(Text(f"  {b}: {t.test} n={t.n} {evidence(t)} ({sig})", style="dim"))
    later = [e for e in d.events if g.decision is None or e.id != g.decision.id]
    for e in later:
        line = Text(f"{e.kind}", style=STYLES.get(e.kind, "bold"))
        line.append(f" by {e.actor}, {clock(e.ts)}: {e.reason}")
        parts.append(line)

    parts.append(_section("reflections (pool)"))
    parts.extend(reflections_block(d))
    return Group(*parts)


def phases_table(g: GenInfo) -> Table:
    t = Table(box=None, pad_edge=False, show_edge=False)
    for c in ("phase", "status", "tries", "started", "took", "detail"):
        t.add_column(c, overflow="fold", no_wrap=c != "detail")
    order = {n: i for i, n in enumerate(PHASE_ORDER)}
    for p in sorted(g.phases.values(), key=lambda p: order.get(p.name, len(order))):
        skip = DETAIL_SKIP + (("reason", "decision") if p.name == "decide" else ())  # quoted under "decision"
        detail = p.error or ", ".join(f"{k}={_brief(v)}" for k, v in p.detail.items()
                                      if k not in skip and v is not None and not isinstance(v, dict | list))
        t.add_row(p.name, Text(p.status, style=STYLES.get(p.status, "")), str(p.attempts), clock(p.started_at),
                  minutes(p.minutes), short(detail, 120))
    if not g.phases:
        t.add_row("-", "no phases yet", "", "", "", "")
    return t


def _brief(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, str) and len(v) > 16 and all(c in "0123456789abcdef" for c in v):
        return v[:12]
    return str(v)


def eval_table(g: GenInfo, parent: GenInfo | None, benchmark: str | None = None) -> RenderableType:
    if not g.results:
        return Text("not evaluated yet", style="dim")
    t = Table(box=None, pad_edge=False, show_edge=False)
    for c in ("benchmark", "protocol", "acc@t1", "Δ", "acc@t2", "Δ", "n", "test"):
        t.add_column(c, justify="left" if c in ("benchmark", "protocol", "test") else "right", no_wrap=True)
    tests = g.decision.tests if g.decision is not None else {}
    for b, protos in g.metrics.items():
        if benchmark is not None and b != benchmark:
            continue
        for proto in sorted(protos, key=lambda p: (p != STANDARD, p)):
            ms = protos[proto]
            t1, t2 = g.value(b, "acc@t1", proto), g.value(b, "acc@t2", proto)
            p1 = parent.value(b, "acc@t1", proto) if parent else None
            p2 = parent.value(b, "acc@t2", proto) if parent else None
            n = max((m.n for m in ms.values()), default=0)
            t.add_row(b, proto, pct(t1), Text(pts(t1, p1), style=_delta_style(t1, p1)), pct(t2),
                      Text(pts(t2, p2), style=_delta_style(t2, p2)), str(n),
                      evidence(tests.get(b)) if proto == STANDARD else "")
    return t


def _refl_cell(r: ReflectionRow | None) -> Text:
    if r is None:
        return Text("-", style="dim")
    out = Text(f"{r.instruction_id}", style="bold")
    out.append(f"  {r.question}\n", style="dim")
    out.append(short(r.text, 400))
    return out


def reflections_block(d: GenDetail) -> list[RenderableType]:
    st = d.reflections
    if st.total == 0:
        return [Text("no reflections", style="dim")]
    rate = 100 * st.fixed / max(st.total - st.unlinked, 1)
    head = Text(f"{st.total:,} reflections, {st.fixed:,} fixed the answer ({rate:.1f}% of those retried)")
    if st.unlinked:
        head.append(f", {st.unlinked:,} without a retry yet", style="dim")
    parts: list[RenderableType] = [head]
    top = [f"{iid} {fixed}/{n}" for iid, n, fixed in st.by_instruction[:6]]
    if top:
        parts.append(Chips([_t("fixes by instruction:", "dim"), *[_t(x) for x in top]], indent=2))
    if d.pairs:
        t = Table(show_lines=True, expand=True)
        t.add_column("fixed the answer", ratio=1, overflow="fold")
        t.add_column("did not fix it", ratio=1, overflow="fold")
        for good, bad in d.pairs:
            t.add_row(_refl_cell(good), _refl_cell(bad))
        parts.append(t)
    return parts


def generation_json(d: GenDetail, benchmark: str | None = None) -> dict[str, Any]:
    row = gen_json(d.lineage, d.gen.id, benchmark)
    row["phases"] = {n: {**row["phases"][n], "detail": p.detail} for n, p in d.gen.phases.items()}

    def refl(r: ReflectionRow | None) -> dict[str, Any] | None:
        return None if r is None else {"id": r.id, "instruction_id": r.instruction_id, "question": r.question,
                                       "text": r.text, "success": r.success, "attempt_id": r.attempt_id}

    row.update({
        "config_diff": [{"key": k, "parent": a, "value": b} for k, a, b in d.config_diff],
        "train_logs": d.train_logs,
        "events": [{"id": e.id, "ts": e.ts, "kind": e.kind, "actor": e.actor, "reason": e.reason,
                    "metrics": e.metrics} for e in d.events],
        "reflections": {"total": d.reflections.total, "fixed": d.reflections.fixed,
                        "unlinked": d.reflections.unlinked,
                        "by_instruction": [{"instruction_id": i, "n": n, "fixed": f}
                                           for i, n, f in d.reflections.by_instruction],
                        "samples": [{"fixed": refl(a), "not_fixed": refl(b)} for a, b in d.pairs]},
    })
    return row


# -- the live dashboard -------------------------------------------------------------------------------

def watch_view(w: WatchInfo) -> RenderableType:
    """One frame of `evolver watch`: what runs now, how fast, and what was decided lately."""
    head = Text("evolver watch", style="bold")
    head.append(f"  {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(w.now))}  ", style="dim")
    head.append(f"daemon running (pid {w.daemon_pid})" if w.daemon_pid else "daemon not running",
                style="green" if w.daemon_pid else "yellow")
    parts: list[RenderableType] = [head]
    if w.lineage_size == 0 or w.latest is None:
        parts.append(Text("no generations yet: start the daemon with `evolver run`", style="dim"))
        return Group(*parts)
    serving = "none yet" if w.current is None else gen_name(w.current) + (" (pinned)" if w.pinned is not None else "")
    parts.append(Text(f"{w.lineage_size:,} generations · serving {serving}"))
    g = w.latest
    line = Text(gen_name(g.id), style="bold")
    line.append(f" {g.status}", style=STYLES.get(g.status, ""))
    run = g.running_phase
    if run is not None:
        line.append(f" · phase {run.name}", style="bold cyan")
        if run.attempts > 1:
            line.append(f" (try {run.attempts})")
        if run.started_at is not None:
            line.append(f" · {minutes(max(0.0, w.now - run.started_at) / 60)} elapsed")
    parts.append(line)
    steps = Text("  ")
    order = {n: i for i, n in enumerate(PHASE_ORDER)}
    for name in sorted({*PHASE_ORDER, *g.phases}, key=lambda n: order.get(n, len(order))):
        p = g.phases.get(name)
        mark, style = ("·", "dim") if p is None else {
            "done": ("✓", "green"), "running": ("▶", "bold cyan"), "failed": ("✗", "red"),
            "skipped": ("–", "dim")}.get(p.status, ("?", ""))
        steps.append(f"{mark} {name}", style=style)
        if p is not None and p.minutes is not None:
            steps.append(f" {p.minutes:.1f}m", style="dim")
        steps.append("   ")
    parts.append(steps)
    pool = w.counts.get("pool")
    if w.pool_size and (pool or (run is not None and run.name == "generate")):
        done = pool[0] if pool else 0
        bar = Table.grid(padding=(0, 1))
        bar.add_column(no_wrap=True)
        bar.add_column(ratio=1)
        bar.add_column(no_wrap=True)
        bar.add_row("  pool", ProgressBar(total=w.pool_size, completed=min(done, w.pool_size)),
                    f"{done:,}/{w.pool_size:,} questions")
        parts.append(bar)
    if w.counts:
        t = Table(box=None, pad_edge=False, show_edge=False)
        for c in ("purpose", "questions", "attempts", "reflections"):
            t.add_column(c, justify="left" if c == "purpose" else "right")
        for purpose, (q, a, r) in sorted(w.counts.items()):
            t.add_row(purpose, f"{q:,}", f"{a:,}", f"{r:,}")
        parts.append(t)
    parts.append(Text(f"throughput {w.per_minute:.1f} attempts/min (last {w.span / 60:.0f} min)"))
    parts.append(_section("recent events"))
    if not w.events:
        parts.append(Text("none yet", style="dim"))
    for e in w.events:
        ev = Text(time.strftime("%m-%d %H:%M", time.localtime(e.ts)) + "  ", style="dim")
        ev.append(f"{e.kind:<14}", style=STYLES.get(e.kind, ""))
        ev.append(f" {gen_name(e.generation_id):<9} ")
        ev.append(e.reason)
        ev.no_wrap, ev.overflow = True, "ellipsis"
        parts.append(ev)
    return Group(*parts)
