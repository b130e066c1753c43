"""`evolver run`: the daemon in the foreground (systemd-friendly), with live progress.

Exit codes: 0 when the generations asked for are done or a stop was requested; 1 when the
daemon gave up or could not start (generation 0 failed, too many failed generations in a row, a
full disk, a read-only state folder, a damaged or emptied store, a store from a newer evolver),
with one line naming the root cause; 2 for a config it cannot run; 128 + N when a second signal N
ended it at once (resumable all the same).
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from evolver.cli.common import JsonFlag, RuntimeFailure, console, emit_json, get_globals, loaded_config, setup_logs
from evolver.config import ConfigError


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        ctx: typer.Context,
        generations: int | None = typer.Option(None, "--generations", "-n", min=1,
                                               help="Stop after this many generations (default: run until stopped)."),
        config: Path | None = typer.Option(None, "--config", "-c",
                                           help="Config file; same as `evolver --config FILE run` (systemd units read better)."),
        as_json: JsonFlag = False,
    ) -> None:
        """Evolve: generate → harvest → SFT → DPO → evaluate → decide, generation after generation.

        Progress: bars on a terminal; otherwise (a log file, CI, systemd) one line per phase and task start
        and end on stderr, and a heartbeat at most every 30 s with counts, rates, training step and loss.
        """
        from rich.console import Console

        from evolver.cli.progress import run_progress
        from evolver.daemon.runner import Daemon

        cfg = loaded_config(ctx, config)
        from evolver.preflight import check_references

        problems = check_references(cfg)
        if problems:  # one line each, exit 2, before anything is written
            raise ConfigError("\n".join(problems))
        setup_logs(ctx, cfg)
        out = console() if not as_json else Console(stderr=True, highlight=False)  # stdout: the document alone
        t0 = time.time()
        out.print(f"evolver: state in {cfg.state_dir}; stop with Ctrl-C (twice to exit at once)")
        console_info = get_globals(ctx).log_level in ("debug", "info")  # phase lines already reach the console
        with run_progress(Console(stderr=True, highlight=False), quiet_logs=console_info) as progress:
            result = Daemon(cfg, generations, progress).run()
        if result.fatal:
            raise RuntimeFailure(f"gave up after {len(result.generations)} generation(s): {result.fatal}")
        if as_json:
            emit_json({"generations": result.generations, "failed": result.failed, "stopped": result.stopped,
                       "minutes": round((time.time() - t0) / 60, 2)})
            return
        out.print(f"{'stopped' if result.stopped else 'finished'} after {len(result.generations)} generation(s) "
                  f"in {(time.time() - t0) / 60:.1f} min")
        from evolver.cli.lineage_view import print_lineage

        print_lineage(cfg, out)
        out.print("next: evolver status · evolver lineage · evolver show N · evolver tui")

