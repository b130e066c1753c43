"""The small pieces every view uses: numbers as percentages and points, sparklines, times, state
styles and badges, and `Chips`, text pieces packed to the width they are given."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.rule import Rule
from rich.segment import Segment
from rich.text import Text

from evolver.states import EventKind, GenStatus, PointerName
from evolver.store.lineage import Lineage, TestInfo

SPARK = "▁▂▃▄▅▆▇█"
SPARK_WINDOW = 12  # ancestors a row's sparkline reaches back to
# One style per state name: pointers (badges), generation statuses, phase statuses and event kinds share words.
STYLES = {
    PointerName.CURRENT: "bold reverse green", PointerName.PINNED: "bold reverse cyan",
    GenStatus.PROMOTED: "green", GenStatus.REJECTED: "yellow", GenStatus.ROLLED_BACK: "magenta",
    GenStatus.FAILED: "bold red", GenStatus.RUNNING: "bold cyan", GenStatus.EVALUATED: "blue", GenStatus.BASE: "bold",
    EventKind.MANUAL_PROMOTE: "green", EventKind.UNPINNED: "cyan", EventKind.NOTE: "dim",
    EventKind.ADAPTER_REFUSED: "bold red",
}


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def pts(new: float | None, old: float | None) -> str:
    """The change in points, '+4.0'; empty when either side is missing."""
    return "" if new is None or old is None else f"{100 * (new - old):+.1f}"


def delta_style(new: float | None, old: float | None) -> str:
    if new is None or old is None or abs(new - old) < 1e-12:
        return "dim"
    return "green" if new > old else "red"


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


def section(title: str) -> Rule:
    return Rule(Text(title, style="bold"), align="left", style="dim")


def badge_label(state: str) -> str:
    """How a state reads as a badge: words, not identifiers ('rolled_back' -> 'rolled back'), the current one starred."""
    return ("★ " if state == PointerName.CURRENT else "") + state.replace("_", " ")


def badges(lin: Lineage, gid: int) -> Text:
    """A generation's badges ('★ current pinned', 'rejected'), each in its state's style."""
    out = Text()
    for b in lin.badges(gid):
        if out.plain:
            out.append(" ")
        out.append(badge_label(b), style=STYLES.get(b, ""))
    return out


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
