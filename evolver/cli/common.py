"""What every command shares: finding the config, opening the store, printing.

Commands raise `EvolverError`s (UsageError for bad input, exit 2; the rest exit 1); the CLI
turns them into one line and an exit code in exactly one place (`evolver.cli.app`).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from evolver.config import LoadedConfig, load_config
from evolver.errors import EvolverError, UsageError

__all__ = ["EvolverError", "Globals", "RuntimeFailure", "UsageError", "console", "emit_json", "find_config",
           "get_globals", "loaded_config", "open_store", "setup_logs"]


class RuntimeFailure(EvolverError):
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


def open_store(cfg: LoadedConfig, create: bool = True):  # noqa: ANN201 - a Store, imported lazily
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
