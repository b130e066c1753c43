"""`evolver config show|check`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from evolver.cli.common import console, emit_json, find_config, get_globals
from evolver.errors import EXIT_USAGE


def register(app: typer.Typer) -> None:
    cfg_app = typer.Typer(help="Show or validate the configuration.", no_args_is_help=True)
    app.add_typer(cfg_app, name="config")

    @cfg_app.command("show")
    def show(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Print the effective configuration (defaults filled in)."""
        from evolver.config import load_config, to_toml

        cfg = load_config(find_config(get_globals(ctx).config_path))
        if as_json:
            emit_json(cfg.config.model_dump(mode="json"))
        else:
            print(f"# effective config from {cfg.path or 'built-in defaults'}\n" + to_toml(cfg.config), end="")

    @cfg_app.command("check")
    def check(ctx: typer.Context, file: Path | None = typer.Argument(None, help="Config file to validate.")) -> None:
        """Validate a config file and what it refers to (model, policy, suites, instructions, cron, sizes).

        Exit 2 with one line per problem, naming the file, the key and the value.
        """
        from evolver.config import load_config
        from evolver.preflight import check_references

        path = file or find_config(get_globals(ctx).config_path)
        cfg = load_config(path)
        problems = check_references(cfg)
        for line in problems:
            sys.stderr.write(f"evolver: error: {line}\n")
        if problems:
            raise typer.Exit(EXIT_USAGE)
        console().print(f"{cfg.path or 'built-in defaults'}: config is well-formed")
