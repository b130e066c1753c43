"""What every command shares: finding the config, opening the store, printing.

Commands raise `EvolverError`s (UsageError for bad input, exit 2; the rest exit 1); the CLI
turns them into one line and an exit code in exactly one place (`evolver.cli.app`).

Output options are shared, not copied (sqlite-utils' `output_options`): every command takes the same
`--json` flag (`JsonFlag`) and prints its document through `emit_json`, which stamps it with
`schema_version`; errors under `--json` are documents of the same kind.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from evolver.errors import EvolverError, UsageError

if TYPE_CHECKING:
    from evolver.config import LoadedConfig
    from evolver.store.reader import ReadStore

__all__ = ["SCHEMA_VERSION", "EvolverError", "Globals", "JsonFlag", "RuntimeFailure", "UsageError", "console",
           "emit_json", "find_config", "get_globals", "loaded_config", "open_reader", "open_store", "setup_logs"]

# The version of every JSON document the CLI prints; raised when a field changes meaning or goes away.
SCHEMA_VERSION = 1

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document (with schema_version) on stdout.")]


class RuntimeFailure(EvolverError):
    """A command that could not do its job (exit 1)."""


@dataclass
class Globals:
    config_path: Path | None
    log_level: str
    overrides: list[str] = field(default_factory=list)  # --set KEY=VALUE, in order


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
    """The config a command runs on: its own --config if it has one, else the global one, else the usual
    search; then the environment (EVOLVER_*) and the global --set overrides on top."""
    from evolver.config import load_config

    g = get_globals(ctx)
    return load_config(find_config(explicit or g.config_path), g.overrides)


def open_store(cfg: LoadedConfig, create: bool = True):  # noqa: ANN201 - a Store, imported lazily
    """Open the store of a config's state dir (None when `create` is false and there is none yet)."""
    from evolver.store import Store

    db = cfg.state_dir / "evolver.db"
    if not create and not db.exists():
        return None
    return Store.open(db)


def open_reader(cfg: LoadedConfig) -> ReadStore | None:
    """The store read-only over sqlite3 alone (no sqlalchemy: read commands start fast); None before the first run."""
    from evolver.store.reader import ReadStore

    db = cfg.state_dir / "evolver.db"
    return ReadStore.open(db) if db.exists() else None


def setup_logs(ctx: typer.Context, cfg: LoadedConfig) -> None:
    """Console logs at --log-level; JSON lines to state/logs/evolver.jsonl once the state dir exists.

    A read command on a folder that was never set up must not leave a state/ behind.
    """
    from evolver.logs import setup_logging

    state_dir = cfg.state_dir
    logs = cfg.config.logs
    setup_logging(get_globals(ctx).log_level, state_dir / "logs" if state_dir.is_dir() else None,
                  max_bytes=int(logs.max_mb * 2**20), backups=logs.backups)


def console() -> Console:
    return Console(highlight=False)


def document(data: dict[str, Any]) -> dict[str, Any]:
    """`data` as a versioned document: `schema_version` first."""
    return {"schema_version": SCHEMA_VERSION, **data}


def emit_json(data: dict[str, Any], compact: bool = False) -> None:
    """Print one JSON document on stdout; `compact` for big ones (one line, C-speed encoding)."""
    if compact:
        sys.stdout.write(json.dumps(document(data), separators=(",", ":"), default=str) + "\n")
    else:
        sys.stdout.write(json.dumps(document(data), indent=2, default=str) + "\n")
