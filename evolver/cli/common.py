"""What every command shares: finding the config, opening the store, printing, and exit codes.

Errors become one line and an exit code here, and only here (0 ok, 1 runtime failure, 2 usage/config).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from evolver.config import ConfigError, LoadedConfig, load_config

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input from the user (exit 2)."""


class RuntimeFailure(Exception):
    """A command that could not do its job (exit 1)."""


@dataclass
class Globals:
    config_path: Path | None
    log_level: str


def find_config(explicit: Path | None) -> Path | None:
    if explicit is not None:
        return explicit
    env = os.environ.get("EVOLVER_CONFIG")
    if env:
        return Path(env)
    local = Path.cwd() / "evolver.toml"
    return local if local.is_file() else None


def get_globals(ctx: typer.Context) -> Globals:
    root = ctx.find_root()
    obj = root.obj
    if not isinstance(obj, Globals):
        obj = Globals(None, "warning")
    return obj


def loaded_config(ctx: typer.Context, explicit: Path | None = None) -> LoadedConfig:
    """The config a command runs on: its own --config if it has one, else the global one, else the usual search."""
    return load_config(find_config(explicit or get_globals(ctx).config_path))


def open_store(cfg: LoadedConfig, create: bool = True):
    """Open the store of a config's state dir (None when `create` is false and there is none yet)."""
    from evolver.store import Store

    db = cfg.state_dir / "evolver.db"
    if not create and not db.exists():
        return None
    return Store.open(db)


def setup_logs(ctx: typer.Context, cfg: LoadedConfig) -> None:
    """Console logs at --log-level; JSON lines to state/logs/evolver.jsonl once the state dir exists.

    A read command on a folder that was never set up must not leave a state/ behind.
    """
    from evolver.logs import setup_logging

    state_dir = cfg.state_dir
    setup_logging(get_globals(ctx).log_level, state_dir / "logs" if state_dir.is_dir() else None)


def console() -> Console:
    return Console(highlight=False)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def fail(message: str, code: int = EXIT_RUNTIME, as_json: bool = False) -> NoReturn:
    if as_json:
        emit_json({"error": "usage" if code == EXIT_USAGE else "runtime", "message": message})
    else:
        sys.stderr.write(f"evolver: error: {message}\n")
    raise typer.Exit(code)


def run_guarded(fn, *args, as_json: bool = False, **kwargs):  # noqa: ANN001, ANN201
    """Call a command body, mapping known errors to one line and an exit code."""
    from evolver.store import SchemaTooNewError, StoreError

    try:
        return fn(*args, **kwargs)
    except (ConfigError, UsageError) as err:
        fail(str(err), EXIT_USAGE, as_json)
    except (StoreError, SchemaTooNewError, RuntimeFailure, FileNotFoundError) as err:
        fail(str(err), EXIT_RUNTIME, as_json)
