"""`evolver watch`: one frame of the live dashboard: what runs now, how fast, and what was decided lately."""

from __future__ import annotations

import time

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from evolver.states import POOL_PURPOSE, STAGES, PhaseStatus, Stage, gen_name
from evolver.store.lineage import GenInfo
from evolver.store.watch import WatchInfo
from evolver.views.format import STYLES, minutes, section

MARKS = {PhaseStatus.DONE: ("✓", "green"), PhaseStatus.RUNNING: ("▶", "bold cyan"), PhaseStatus.FAILED: ("✗", "red"),
         PhaseStatus.SKIPPED: ("–", "dim")}


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
    parts.append(_steps(g))
    pool = w.counts.get(POOL_PURPOSE)
    if w.pool_size and (pool or (run is not None and run.name == Stage.GENERATE)):
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
    parts.append(section("recent events"))
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


def _steps(g: GenInfo) -> Text:
    """'✓ generate 15.0m   ▶ harvest   · sft ...': every stage in order, each with its mark."""
    steps = Text("  ")
    order = {n: i for i, n in enumerate(STAGES)}
    for name in sorted({*STAGES, *g.phases}, key=lambda n: order.get(n, len(order))):
        p = g.phases.get(name)
        mark, style = ("·", "dim") if p is None else MARKS.get(p.status, ("?", ""))
        steps.append(f"{mark} {name}", style=style)
        if p is not None and p.minutes is not None:
            steps.append(f" {p.minutes:.1f}m", style="dim")
        steps.append("   ")
    return steps

