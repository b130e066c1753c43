"""Regenerate the README's pictures from a synthetic lineage: docs/plot.png and docs/tui.svg.

    .venv/bin/python scripts/docs_images.py [--out docs] [--generations 200]

The lineage comes from evolver.testing.synthetic (Store API, fixed clock and seed), so the images
change only when the views do. Nothing is read from or written to a real state directory. The
TUI picture is what `evolver tui --screenshot` writes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from evolver.store import Store
from evolver.store.lineage import load_lineage
from evolver.testing import synthetic
from evolver.views.plot import plot_accuracy

REPO = Path(__file__).resolve().parents[1]
TUI_SIZE = "150x42"


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
        config = Path(tmp) / "evolver.toml"
        config.write_text(f'state_dir = "{tmp}"\n')
        svg = args.out / "tui.svg"
        subprocess.run([sys.executable, "-m", "evolver", "--config", str(config), "tui", "--screenshot", str(svg),
                        "--size", TUI_SIZE], check=True, stdout=subprocess.DEVNULL)
    print(f"wrote {plot}\nwrote {svg}")


if __name__ == "__main__":
    main()
