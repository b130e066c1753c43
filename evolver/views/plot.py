"""`evolver plot`: accuracy across generations as a PNG (matplotlib, Agg; no display, no pyplot state)."""

from __future__ import annotations

from pathlib import Path

from evolver.states import EventKind, EvalProtocol, GenStatus, gen_name
from evolver.store.lineage import Lineage

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")


def plot_accuracy(lin: Lineage, out: Path, benchmark: str | None = None, dpi: int = 110) -> Path:
    """One panel per benchmark: acc@t1 and acc@t2 of every generation (dots), the line of served models
    (the path to the current generation), promotions (stars), rollbacks and failures marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    benches = [benchmark] if benchmark else lin.benchmarks
    fig = Figure(figsize=(10, 2.8 * max(1, len(benches)) + 0.6), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(max(1, len(benches)), 1, sharex=True, squeeze=False)[:, 0]
    path = lin.path(lin.current) if lin.current is not None else []
    promoted = [g for g, info in lin.generations.items()
                if info.decision is not None and info.decision.kind in (EventKind.PROMOTED, EventKind.MANUAL_PROMOTE) and g != 0]
    rolled = [g for g, info in lin.generations.items() if info.status == GenStatus.ROLLED_BACK]
    failed = [g for g, info in lin.generations.items() if info.status == GenStatus.FAILED]
    for ax, bench in zip(axes, benches or [None], strict=False):
        if bench is None:
            ax.text(0.5, 0.5, "no evaluation results yet", ha="center", va="center", transform=ax.transAxes)
            continue

        def series(metric: str, ids: list[int], proto: str = EvalProtocol.STANDARD,
                   b: str = bench) -> tuple[list[int], list[float]]:
            pts = [(g, lin.generations[g].value(b, metric, proto)) for g in ids]
            xs = [g for g, v in pts if v is not None]
            return xs, [100 * v for _, v in pts if v is not None]

        ids = list(lin.generations)
        for metric, color, label in (("acc@t1", COLORS[0], "acc@t1"), ("acc@t2", COLORS[1], "acc@t2")):
            xs, ys = series(metric, ids)
            ax.scatter(xs, ys, s=8, color=color, alpha=0.25, linewidths=0, label=f"{label} (every generation)")
            px, py = series(metric, path)
            if px and ids[-1] > px[-1]:  # still served up to the newest generation
                px, py = [*px, ids[-1]], [*py, py[-1]]
            ax.step(px, py, where="post", color=color, linewidth=1.6, label=f"{label} (served line)")
        xs, ys = series("acc@t2", ids, EvalProtocol.PAPER)
        if xs:
            ax.scatter(xs, ys, s=6, marker="x", color=COLORS[3], alpha=0.35, linewidths=0.6, label="acc@t2 (paper protocol)")
        xs, ys = series("acc@t2", promoted)
        ax.scatter(xs, ys, s=60, marker="*", color=COLORS[2], edgecolors="black", linewidths=0.4, zorder=5,
                   label="promoted")
        xs, ys = series("acc@t2", rolled)
        if xs:
            ax.scatter(xs, ys, s=50, marker="v", color="magenta", zorder=5, label="rolled back")
        if failed:
            lo = ax.get_ylim()[0]
            ax.scatter(failed, [lo] * len(failed), s=14, marker="|", color="black", alpha=0.6, label="failed")
        if lin.current is not None and lin.generations[lin.current].value(bench, "acc@t2") is not None:
            v = 100 * (lin.generations[lin.current].value(bench, "acc@t2") or 0.0)
            ax.annotate(f"{gen_name(lin.current)} (current)", (lin.current, v), xytext=(6, 8),
                        textcoords="offset points", fontsize=8)
        ax.set_ylabel(f"{bench} accuracy (%)")
        ax.grid(alpha=0.3)
    fig.suptitle(f"accuracy across {len(lin.generations):,} generations", fontsize=11)
    axes[-1].set_xlabel("generation")
    if benches:
        axes[0].legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=7, ncols=4, frameon=False)
    height = fig.get_figheight()  # fixed margins: tight_layout costs a third of the time at 1,000 points
    fig.subplots_adjust(left=0.07, right=0.95, top=1 - 0.95 / height, bottom=0.55 / height, hspace=0.12)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out
