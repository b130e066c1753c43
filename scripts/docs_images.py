"""Regenerate the README's pictures from a synthetic lineage: docs/plot.png and docs/tui.svg.

    .venv/bin/python scripts/docs_images.py [--out docs] [--generations 120]

The lineage comes from evolver.tui.synthetic (Store API, fixed clock and seed), so the images
change only when the views do. Nothing is read from or written to a real state directory.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from evolver.store import Store
from evolver.tui import synthetic
from evolver.tui.data import load_lineage
from evolver.tui.plot import plot_accuracy

REPO = Path(__file__).resolve().parents[1]


def tui_svg(db: Path, size: tuple[int, int] = (150, 42)) -> str:
    """The TUI on `db`, the current generation selected, as Textual exports a screenshot."""
    from evolver.tui.app import EvolverApp

    async def go() -> str:
        app = EvolverApp(db, refresh_seconds=0)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await pilot.pause(0.2)
            return app.export_screenshot(title="evolver tui")

    return asyncio.run(go())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    ap.add_argument("--generations", type=int, default=200)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="evolver-docs-") as tmp:
        db = synthetic.build(Path(tmp) / "evolver.db", args.generations, running=True)
        with Store.open(db) as store:
            lin = load_lineage(store)
        plot = plot_accuracy(lin, args.out / "plot.png")
        svg = args.out / "tui.svg"
        svg.write_text(tui_svg(db))
    print(f"wrote {plot}\nwrote {svg}")


if __name__ == "__main__":
    main()
