"""`evolver config show|check`."""

from __future__ import annotations

from pathlib import Path

import typer

from evolver.cli.common import console, emit_json, find_config, get_globals


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
        """Validate a config file; exit 2 with one line naming the key on error."""
        from evolver.config import load_config

        path = file or find_config(get_globals(ctx).config_path)
        cfg = load_config(path)
        console().print(f"{cfg.path or 'built-in defaults'}: config is well-formed")
