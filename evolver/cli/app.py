"""The `evolver` command. Heavy imports (torch, trl, sqlalchemy, textual, matplotlib) live inside
command bodies, so `--help` and the read commands start in a fraction of a second.

Errors are caught here and only here: an `EvolverError` from any command becomes one line on
stderr (or `{"schema_version", "error", "message", "problems"}` on stdout under `--json`, bad flags
included) and its exit code. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from evolver import __version__
from evolver.cli.common import Globals, emit_json
from evolver.errors import EXIT_USAGE, EvolverError
from evolver.levels import LEVELS


# typer vendors click; its usage errors (bad flag, bad value) share BadParameter's base class.
_UsageError = typer.BadParameter.__mro__[1]


class EvolverGroup(TyperGroup):
    """The root group: runs a command and maps its EvolverError to one line and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        as_json = "--json" in ctx.args
        try:
            return super().invoke(ctx)
        except EvolverError as err:
            lines = [ln for ln in str(err).splitlines() if ln.strip()] or [err.line]
            if as_json:
                emit_json({"error": err.kind, "message": lines[0], "problems": lines})
            else:  # one line per problem (a config check can find several)
                sys.stderr.writelines(f"evolver: error: {ln}\n" for ln in lines)
            raise typer.Exit(err.exit_code) from None
        except _UsageError as err:  # a bad flag or argument: click's own message, as JSON when asked
            if not as_json:
                raise
            emit_json({"error": "usage", "message": err.format_message(), "problems": [err.format_message()]})
            raise typer.Exit(EXIT_USAGE) from None


app = typer.Typer(
    name="evolver",
    cls=EvolverGroup,
    help="Evolve a small language model generation after generation by learning from its own reflections.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module defines `register(app)`; one line per face keeps the grammar in one place.
COMMAND_MODULES = (
    "init_cmd",
    "config_cmd",
    "status_cmd",
    "world_cmd",
    "policy_cmd",
    "run_cmd",
    "data_cmd",
    "eval_cmd",
    "serve_cmd",
    "view_cmd",
    "env_cmd",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"evolver {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    config: Path | None = typer.Option(None, "--config", "-c", help="Config file (default: $EVOLVER_CONFIG or ./evolver.toml)."),
    overrides: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help=(
        "Override one config key for this command (repeatable; over the file and EVOLVER_* variables),"
        " e.g. --set training.dpo.beta=0.05. The value is read as TOML when it is TOML, else as text.")),
    log_level: str = typer.Option("warning", "--log-level", help=f"Console log level: {', '.join(LEVELS)}."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print evolver's version and exit (`evolver env` for the whole stack)."),
) -> None:
    if log_level not in LEVELS:
        raise typer.BadParameter(f"expected one of {', '.join(LEVELS)}, got {log_level!r}", param_hint="--log-level")
    ctx.obj = Globals(config, log_level, list(overrides))


for _name in COMMAND_MODULES:
    importlib.import_module(f"evolver.cli.{_name}").register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
