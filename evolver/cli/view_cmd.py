"""`evolver lineage|show|watch|tui|plot`: read-only faces over the store (the TUI's pin/unpin/rollback aside).

Everything heavy (textual, matplotlib) is imported inside the command bodies, so `evolver --help`
stays instant. Data comes from the store's read side (evolver.store.lineage, .detail, .watch),
rendering from evolver.views.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import typer

from evolver.cli.common import JsonFlag, RuntimeFailure, UsageError, console, emit_json, loaded_config, open_reader


def _lineage(ctx: typer.Context, benchmark: str | None, last: int | None = None) -> Any:
    """The lineage (an empty one when there is no store yet); `last`: only what the newest-`last` window draws.
    An unknown --benchmark is a usage error."""
    from evolver.cli.lineage_view import read_lineage
    from evolver.store.lineage import Lineage

    cfg = loaded_config(ctx)
    store = open_reader(cfg)
    if store is None:
        return Lineage({}, None, None, None, time.time())
    try:
        lin = read_lineage(store, last)
    finally:
        store.close()
    check_benchmark(lin, benchmark)
    return lin


def check_benchmark(lin: Any, benchmark: str | None) -> None:
    known = lin.benchmarks
    if benchmark is not None and known and benchmark not in known:
        raise UsageError(f"--benchmark {benchmark}: no evaluation results for it (known: {', '.join(known)})")


def _size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if m is None or int(m[1]) < 20 or int(m[2]) < 10:
        raise UsageError(f"--size {text}: expected COLUMNSxROWS, at least 20x10 (e.g. 150x42)")
    return int(m[1]), int(m[2])


def register(app: typer.Typer) -> None:
    @app.command("lineage")
    def lineage(
        ctx: typer.Context,
        as_json: JsonFlag = False,
        benchmark: str | None = typer.Option(None, "--benchmark", "-b", help="Only this benchmark's numbers."),
        show_all: bool = typer.Option(False, "--all", help="Every generation, not only the newest."),
        last: int = typer.Option(50, "--last", min=1, help="Show the newest N generations (and what leads to them)."),
    ) -> None:
        """The generations as a tree: status, acc@t1/acc@t2 with deltas and p-values, D+/D±, training time, reason.

        The main line (each promoted generation's continuing child) stays at one level; rejected or
        failed candidates and side branches are indented under their parent. Unless --all, only the
        newest --last generations are drawn, with the current one and the rows leading to them; the
        rest are folded into "⋯ N generations not shown" lines. --json always lists every generation,
        on one line (pipe it through `jq` to read it).
        """
        from evolver.views.json import lineage_json
        from evolver.views.lineage import lineage_view

        lin = _lineage(ctx, benchmark, None if as_json or show_all else last)
        if as_json:  # compact: C-speed encoding (1,000 generations pretty-printed take 0.5 s and 60k lines)
            emit_json(lineage_json(lin, benchmark), compact=True)
            return
        console().print(lineage_view(lin, benchmark, None if show_all else last))

    @app.command("show")
    def show(
        ctx: typer.Context,
        gen: int = typer.Argument(..., min=0, help="Generation id."),
        as_json: JsonFlag = False,
        benchmark: str | None = typer.Option(None, "--benchmark", "-b", help="Only this benchmark's numbers."),
        samples: int = typer.Option(3, "--samples", min=0, help="Reflection pairs to show (fixed vs not)."),
    ) -> None:
        """One generation in full: config changes, datasets, training, evaluation, decision, reflections."""
        from evolver.store.detail import load_detail
        from evolver.views.generation import generation_view
        from evolver.views.json import generation_json

        def body() -> Any:
            cfg = loaded_config(ctx)
            store = open_reader(cfg)
            if store is None:
                raise RuntimeFailure(f"{cfg.state_dir / 'evolver.db'}: no store yet (run `evolver run` first)")
            try:
                detail = load_detail(store, gen, samples)  # GenerationNotFound: a one-line error, exit 1
            finally:
                store.close()
            check_benchmark(detail.lineage, benchmark)
            return detail

        detail = body()
        if as_json:
            emit_json(generation_json(detail, benchmark))
            return
        console().print(generation_view(detail, benchmark))

    @app.command("watch")
    def watch(
        ctx: typer.Context,
        once: bool = typer.Option(False, "--once", help="Print one frame and exit."),
        interval: float = typer.Option(2.0, "--interval", min=0.2, help="Seconds between polls."),
        as_json: JsonFlag = False,
    ) -> None:
        """A live dashboard while the daemon runs: generation, phase, progress, throughput, recent events.

        With --json, one snapshot as JSON (what the dashboard would draw) and exit.
        """
        from evolver.daemon.lock import holder
        from evolver.store.watch import load_watch
        from evolver.views.watch import watch_view

        cfg = loaded_config(ctx)

        def info() -> Any:
            store = open_reader(cfg)  # re-checked each poll: the daemon may create it meanwhile
            try:
                return load_watch(store, holder(cfg.state_dir))
            finally:
                if store is not None:
                    store.close()

        def frame() -> Any:
            return watch_view(info())

        if as_json:
            emit_json({"watch": _plain(info())})
            return
        out = console()
        if once:
            out.print(frame())
            return
        from rich.live import Live

        try:
            with Live(frame(), console=out, refresh_per_second=4, screen=False) as live:
                while True:
                    time.sleep(interval)
                    live.update(frame())
        except KeyboardInterrupt:
            pass

    @app.command("tui")
    def tui(
        ctx: typer.Context,
        refresh: float = typer.Option(2.0, "--refresh", min=0.0, help="Seconds between store polls (0: off)."),
        benchmark: str | None = typer.Option(None, "--benchmark", "-b", help="Benchmark for the tree's acc@t2."),
        screenshot: Path | None = typer.Option(
            None, "--screenshot", help="Render the first frame headless into this SVG file and exit (no terminal needed)."),
        size: str = typer.Option("150x42", "--size", help="With --screenshot: the terminal size, COLUMNSxROWS."),
        as_json: JsonFlag = False,
    ) -> None:
        """Interactive lineage: arrows to move, p pin, u unpin, r rollback (each confirmed), a all, q quit.

        With --screenshot, the first frame (the current generation selected) is rendered headless into
        an SVG file and the command exits: for docs, bug reports and benchmarks.
        """
        cfg = loaded_config(ctx)
        db = cfg.state_dir / "evolver.db"
        if not db.exists():
            raise RuntimeFailure(f"{db}: no store yet (run `evolver run` first)")
        frame = _size(size) if screenshot is not None else None  # a bad --size fails before textual loads
        from evolver.tui.app import EvolverApp

        if screenshot is None or frame is None:
            if as_json:
                raise UsageError("tui --json needs --screenshot (the interactive app has no JSON)")
            EvolverApp(db, refresh_seconds=refresh, benchmark=benchmark).run()
            return
        svg = EvolverApp(db, refresh_seconds=0, benchmark=benchmark).first_frame(frame)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_text(svg, encoding="utf-8")
        _wrote(screenshot, as_json)

    @app.command("plot")
    def plot(
        ctx: typer.Context,
        out: Path | None = typer.Option(None, "--out", "-o", help="PNG file (default: STATE/plots/accuracy.png)."),
        benchmark: str | None = typer.Option(None, "--benchmark", "-b", help="Only this benchmark."),
        as_json: JsonFlag = False,
    ) -> None:
        """acc@t1 and acc@t2 across generations as a PNG: a panel per suite and level, every candidate
        marked (promoted, rejected, failed, rolled back), the served line drawn through them."""

        def body() -> Path:
            from evolver.views.plot import plot_accuracy

            cfg = loaded_config(ctx)
            lin = _lineage(ctx, benchmark)
            if not lin.generations:
                raise RuntimeFailure(f"{cfg.state_dir / 'evolver.db'}: no generations to plot yet")
            target = out if out is not None else cfg.state_dir / "plots" / "accuracy.png"
            return plot_accuracy(lin, target, benchmark)

        _wrote(body(), as_json)


def _wrote(path: Path, as_json: bool) -> None:
    if as_json:
        emit_json({"wrote": str(path)})
    else:
        typer.echo(f"wrote {path}")


def _plain(obj: Any) -> Any:
    """A dataclass tree (the watch snapshot) as JSON-ready values."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k) if not isinstance(k, tuple) else "/".join(map(str, k)): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj
