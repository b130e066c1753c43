"""How fast the views open: empty store, one running generation, and a synthetic lineage of 1,000.

    .venv/bin/python bench/views.py                    # the full run (goal: every view < 1 s at 1,000)
    .venv/bin/python bench/views.py --generations 100 --json   # a smoke run

The synthetic store is written through the Store API (create_generation, phase_start/phase_finish,
put_dataset, put_eval_results, record_event, evolver.policy.actions for the rollbacks) by
evolver.testing.synthetic.build: every generation with six phases, three dataset snapshots, two
protocols on two benchmarks, training logs and a decision with its paired tests; reflections on
the last three. Each figure is the median of --repeat runs of: open the store, read what the view
needs, render it to an 80- (or 160-) column console. `cli lineage` is a whole `evolver lineage`
process, Python start-up included (`cli status`, another command's process, is the baseline);
`tui` is `evolver tui --screenshot` run in-process: the Textual app up to its first full frame
(Textual's own start-up included), exported as SVG.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from evolver.cli.lineage_view import read_lineage
from evolver.states import GenStatus, Stage
from evolver.store import Store
from evolver.store.detail import load_detail
from evolver.store.lineage import load_lineage
from evolver.store.watch import load_watch
from evolver.testing import synthetic
from evolver.views.generation import generation_view
from evolver.views.json import lineage_json
from evolver.views.lineage import lineage_view
from evolver.views.watch import watch_view

GOAL_S = 1.0


def render(renderable: object, width: int) -> str:
    console = Console(color_system=None, width=width, file=io.StringIO(), record=True)
    console.print(renderable)
    return console.export_text()


def timed(fn: Callable[[], object], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def with_store(db: Path, fn: Callable[[Store], object]) -> Callable[[], object]:
    def run() -> object:
        with Store.open(db) as s:
            return fn(s)
    return run


def config(db: Path) -> Path:
    """An evolver.toml whose state dir holds `db`."""
    path = db.parent / "evolver.toml"
    path.write_text(f'state_dir = "{db.parent}"\n')
    return path


def tui_open(db: Path) -> float:
    """Seconds `evolver tui --screenshot` takes in-process: the app up to its first frame with the tree and
    details filled, exported as SVG."""
    from typer.testing import CliRunner

    from evolver.cli.app import app

    args = ["--config", str(config(db)), "tui", "--screenshot", str(db.parent / "tui.svg"), "--size", "160x48"]
    t0 = time.perf_counter()
    out = CliRunner().invoke(app, args)
    if out.exit_code != 0:
        raise SystemExit(f"evolver tui --screenshot failed: {out.output}")
    return time.perf_counter() - t0


def cli(db: Path, command: str) -> float:
    """Wall time of a whole `evolver COMMAND` process on this store (Python start-up and imports included)."""
    cfg = config(db)
    exe = Path(sys.executable).with_name("evolver")
    t0 = time.perf_counter()
    out = subprocess.run([str(exe), "--config", str(cfg), command], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "COLUMNS": "80"})
    if out.returncode != 0:
        raise SystemExit(f"evolver {command} failed: {out.stderr}")
    return time.perf_counter() - t0


def measure(db: Path, repeat: int, finished: int | None) -> dict[str, float]:
    from evolver.views.plot import plot_accuracy

    out = {
        "lineage (80 cols, newest 50)": timed(with_store(db, lambda s: render(lineage_view(read_lineage(s, 50)), 80)),
                                              repeat),
        "lineage --all (160 cols)": timed(with_store(db, lambda s: render(lineage_view(load_lineage(s), last=None), 160)),
                                          repeat),
        "lineage --json": timed(with_store(db, lambda s: json.dumps(lineage_json(load_lineage(s)), default=str)), repeat),
        "watch frame": timed(with_store(db, lambda s: render(watch_view(load_watch(s, None)), 80)), repeat),
    }
    if finished is not None:
        out["show N"] = timed(with_store(db, lambda s: render(generation_view(load_detail(s, finished)), 100)), repeat)
        out["plot (png)"] = timed(with_store(db, lambda s: plot_accuracy(load_lineage(s), db.parent / "acc.png")), repeat)
    out["tui first frame"] = min(tui_open(db) for _ in range(max(1, repeat // 2)))
    out["cli lineage (process)"] = min(cli(db, "lineage") for _ in range(2))
    out["cli status (process, baseline)"] = min(cli(db, "status") for _ in range(2))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generations", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    args = ap.parse_args()
    import matplotlib  # noqa: F401  (imported once, outside the timings: ~1-2 s on a cold start)
    import textual.app  # noqa: F401

    with tempfile.TemporaryDirectory(prefix="evolver-views-") as tmp:
        root = Path(tmp)
        for name in ("empty", "running", "big"):
            (root / name).mkdir()
        Store.open(root / "empty" / "evolver.db").close()
        with Store.open(root / "running" / "evolver.db") as s:
            s.create_generation(0, None, "tiny", "h0", "{}", status=GenStatus.RUNNING)
            s.phase_start(0, Stage.EVALUATE)
        t0 = time.perf_counter()
        synthetic.build(root / "big" / "evolver.db", args.generations, running=True)
        build_s = time.perf_counter() - t0
        results = {
            "empty": measure(root / "empty" / "evolver.db", args.repeat, None),
            "one running": measure(root / "running" / "evolver.db", args.repeat, 0),
            f"{args.generations:,} generations": measure(root / "big" / "evolver.db", args.repeat, args.generations - 1),
        }
    if args.json:
        print(json.dumps({"build_s": build_s, "seconds": results}, indent=2))
        return
    cols = list(results)
    views = list(results[cols[-1]])
    t = Table(title=f"view open + render, ms (median of {args.repeat}; synthetic store built in {build_s:.1f} s)")
    t.add_column("view")
    for c in cols:
        t.add_column(c, justify="right")
    t.add_column(f"< {GOAL_S:g} s", justify="center")
    for v in views:
        big = results[cols[-1]].get(v)
        t.add_row(v, *[f"{1000 * results[c][v]:.0f}" if v in results[c] else "-" for c in cols],
                  "-" if big is None else "yes" if big < GOAL_S else "NO")
    Console().print(t)


if __name__ == "__main__":
    main()
