"""`evolver init`: lay out a working directory from the shipped defaults."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from evolver.cli.common import JsonFlag, UsageError, console, emit_json, get_globals

DEFAULT_FILES = ("evolver.toml", "policies", "evals")


def init_dir(target: Path, force: bool = False) -> list[Path]:
    """Copy evolver.toml, policies/ and evals/ into `target` and make an empty state/."""
    from evolver.paths import defaults_dir

    src = defaults_dir()
    target.mkdir(parents=True, exist_ok=True)
    existing = [target / n for n in DEFAULT_FILES if (target / n).exists()]
    if existing and not force:
        raise UsageError(f"{existing[0]} already exists; use --force to overwrite")
    written: list[Path] = []
    for name in DEFAULT_FILES:
        s, d = src / name, target / name
        if s.is_dir():
            if d.exists():
                shutil.rmtree(d)
            shutil.copytree(s, d, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(s, d)
        written.append(d)
    (target / "state").mkdir(exist_ok=True)
    written.append(target / "state")
    return written


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init(
        ctx: typer.Context,
        directory: Path = typer.Argument(Path("."), help="Directory to set up (created if missing)."),
        force: bool = typer.Option(False, "--force", help="Overwrite existing files."),
        as_json: JsonFlag = False,
    ) -> None:
        """Write evolver.toml, policies/, evals/ and an empty state/ into DIRECTORY."""
        from evolver.logs import get_logger, setup_logging

        written = init_dir(directory, force)
        setup_logging(get_globals(ctx).log_level, directory / "state" / "logs")
        get_logger().info("init", directory=str(directory.resolve()), force=force)
        if as_json:
            emit_json({"directory": str(directory.resolve()), "written": [str(p) for p in written]})
            return
        out = console()
        for p in written:
            out.print(f"wrote {p}")
        out.print(f"next: cd {directory} && evolver run")
