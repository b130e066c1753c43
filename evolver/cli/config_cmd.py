"""`evolver config show|check`."""

from __future__ import annotations

from pathlib import Path

import typer

from evolver.cli.common import JsonFlag, console, emit_json, find_config, get_globals
from evolver.config import ConfigError


def register(app: typer.Typer) -> None:
    cfg_app = typer.Typer(help="Show or validate the configuration.", no_args_is_help=True)
    app.add_typer(cfg_app, name="config")

    @cfg_app.command("show")
    def show(ctx: typer.Context, as_json: JsonFlag = False,
             sources: bool = typer.Option(False, "--sources", help="Say where each value came from: default, the"
                                          " file, an EVOLVER_* variable or --set.")) -> None:
        """Print the effective configuration (defaults < evolver.toml < EVOLVER_* variables < --set) as TOML
        that loads again."""
        from evolver.config import load_config, to_toml

        g = get_globals(ctx)
        cfg = load_config(find_config(g.config_path), g.overrides)
        if as_json:
            emit_json({"path": str(cfg.path) if cfg.path else None, "config": cfg.config.model_dump(),
                       **({"sources": cfg.sources} if sources else {})})
            return
        notes = {k: f"from {v}" for k, v in cfg.sources.items()} if sources else None
        print(f"# effective config from {cfg.path or 'built-in defaults'}\n" + to_toml(cfg.config, notes=notes), end="")

    @cfg_app.command("check")
    def check(ctx: typer.Context, file: Path | None = typer.Argument(None, help="Config file to validate."),
              as_json: JsonFlag = False) -> None:
        """Validate every layer of the config (the file, EVOLVER_* variables, --set) and what it refers to
        (model, policy, suites, instructions, cron, trackers, sizes).

        Exit 2 with one line per problem, naming the file, the key and the value.
        """
        from evolver.config import load_config
        from evolver.preflight import check_references

        g = get_globals(ctx)
        cfg = load_config(file or find_config(g.config_path), g.overrides)
        problems = check_references(cfg)
        if problems:  # one line each (or one JSON error document), exit 2
            raise ConfigError("\n".join(problems))
        layers = sorted({v for v in cfg.sources.values()})
        if as_json:
            emit_json({"path": str(cfg.path) if cfg.path else None, "ok": True, "layers": layers})
            return
        console().print(f"{cfg.path or 'built-in defaults'}: config is well-formed (layers: {', '.join(layers)})")
