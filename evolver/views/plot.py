"""`evolver plot`: accuracy across generations as a PNG (matplotlib, Agg; no display, no pyplot state).

Made to read at a glance: generations on integer ticks; one panel per evaluation unit (a suite,
`arith`, and each of its levels, `arith/5d`) when there are several; every candidate drawn with a
marker that says what became of it (promoted, rejected, failed, rolled back), so a lineage whose
candidates keep failing shows it plainly; the served line (the path to the current generation)
drawn through them.
"""

from __future__ import annotations

from pathlib import Path

from evolver.states import EvalProtocol, EventKind, GenStatus, gen_name
from evolver.store.lineage import Lineage

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
# status -> (marker, colour, size, label): how a candidate's acc@t2 is drawn
MARKS = {
    "promoted": ("*", COLORS[2], 90, "promoted"),
    GenStatus.REJECTED: ("X", COLORS[1], 45, "rejected candidate"),
    GenStatus.ROLLED_BACK: ("v", "magenta", 55, "rolled back"),
}


def units_for(lin: Lineage, benchmark: str | None) -> list[str]:
    """The panels: every unit, or the chosen suite with its levels (`arith`, `arith/4d`, ...)."""
    if benchmark is None:
        return lin.benchmarks
    return [u for u in lin.benchmarks if u == benchmark or u.startswith(benchmark + "/")] or [benchmark]


def _fate(lin: Lineage, gid: int) -> str | None:
    info = lin.generations[gid]
    if info.status == GenStatus.ROLLED_BACK:
        return GenStatus.ROLLED_BACK
    if gid != 0 and info.decision is not None and info.decision.kind in (EventKind.PROMOTED, EventKind.MANUAL_PROMOTE):
        return "promoted"
    if info.status == GenStatus.REJECTED or (info.decision is not None and info.decision.kind == EventKind.REJECTED):
        return GenStatus.REJECTED
    return None


def plot_accuracy(lin: Lineage, out: Path, benchmark: str | None = None, dpi: int = 110) -> Path:
    """Draw `accuracy_figure` into a PNG at `out`."""
    fig = accuracy_figure(lin, benchmark, dpi)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def accuracy_figure(lin: Lineage, benchmark: str | None = None, dpi: int = 110):  # noqa: ANN201 - a Figure
    """A panel per unit: acc@t1 and acc@t2 of every generation, the served line, each candidate's fate."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    units = units_for(lin, benchmark)
    fig = Figure(figsize=(10, 2.6 * max(1, len(units)) + 0.7), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(max(1, len(units)), 1, sharex=True, squeeze=False)[:, 0]
    ids = list(lin.generations)
    path = lin.path(lin.current) if lin.current is not None else []
    fates = {g: _fate(lin, g) for g in ids}
    failed = [g for g in ids if lin.generations[g].status == GenStatus.FAILED]
    for ax, unit in zip(axes, units or [None], strict=False):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if unit is None:
            ax.text(0.5, 0.5, "no evaluation results yet", ha="center", va="center", transform=ax.transAxes)
            continue

        def series(
            metric: str, gens: list[int], proto: str = EvalProtocol.STANDARD, u: str = unit
        ) -> tuple[list[int], list[float]]:
            pts = [(g, lin.generations[g].value(u, metric, proto)) for g in gens]
            return [g for g, v in pts if v is not None], [100 * v for _, v in pts if v is not None]

        for metric, color in (("acc@t1", COLORS[0]), ("acc@t2", COLORS[1])):
            xs, ys = series(metric, ids)
            ax.scatter(xs, ys, s=10, color=color, alpha=0.45, linewidths=0, label=f"{metric} (every generation)")
            px, py = series(metric, path)
            if px and ids[-1] > px[-1]:  # still served up to the newest generation
                px, py = [*px, ids[-1]], [*py, py[-1]]
            ax.step(px, py, where="post", color=color, linewidth=1.6, label=f"{metric} (served line)")
        xs, ys = series("acc@t2", ids, EvalProtocol.PAPER)
        if xs:
            ax.scatter(
                xs, ys, s=8, marker="+", color=COLORS[3], alpha=0.6, linewidths=0.8, label="acc@t2 (paper protocol)"
            )
        for fate, (marker, color, size, label) in MARKS.items():
            xs, ys = series("acc@t2", [g for g in ids if fates[g] == fate])
            if xs:
                ax.scatter(
                    xs,
                    ys,
                    s=size,
                    marker=marker,
                    color=color,
                    edgecolors="black",
                    linewidths=0.4,
                    zorder=5,
                    label=label,
                )
        if failed:
            lo = ax.get_ylim()[0]
            ax.scatter(failed, [lo] * len(failed), s=40, marker="|", color="black", zorder=5, label="failed (no model)")
        if lin.current is not None and lin.generations[lin.current].value(unit, "acc@t2") is not None:
            v = 100 * (lin.generations[lin.current].value(unit, "acc@t2") or 0.0)
            ax.annotate(
                f"{gen_name(lin.current)} (current)",
                (lin.current, v),
                xytext=(6, 8),
                textcoords="offset points",
                fontsize=8,
            )
        ax.set_ylabel(f"{unit}\naccuracy (%)")
        ax.grid(alpha=0.3)
    rejected = sum(1 for f in fates.values() if f == GenStatus.REJECTED)
    fig.suptitle(
        f"accuracy across {len(ids):,} generations ({rejected:,} rejected, {len(failed):,} failed)", fontsize=11
    )
    axes[-1].set_xlabel("generation")
    if units:
        handles, labels = [], []
        for ax in axes:  # one legend for all panels, with every kind of mark any panel drew
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        axes[0].legend(handles, labels, loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=7, ncols=4, frameon=False)
    height = fig.get_figheight()  # fixed margins: tight_layout costs a third of the time at 1,000 points
    fig.subplots_adjust(left=0.08, right=0.97, top=1 - 1.05 / height, bottom=0.55 / height, hspace=0.15)
    return fig
