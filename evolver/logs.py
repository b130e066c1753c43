"""structlog set-up: JSON lines to `state/logs/evolver.jsonl` plus a readable console.

Configured once per process by the CLI; library code only calls `structlog.get_logger()`.
The file rotates by size (`logs.max_mb`, `logs.backups`: evolver.jsonl.1, .2, ...), so a daemon
that runs for weeks keeps a bounded log.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from typing import IO

import structlog

from evolver.levels import LEVELS

__all__ = ["LEVELS", "console_handler", "get_logger", "setup_logging"]


def console_handler(level: int, stream: IO[str] | None = None) -> logging.Handler:
    """Readable lines (`timestamp [level] event key=value ...`) on stderr; colours only on a terminal."""
    out = stream or sys.stderr
    ch = logging.StreamHandler(out)
    ch.setLevel(level)
    ch.setFormatter(structlog.stdlib.ProcessorFormatter(
        processor=structlog.dev.ConsoleRenderer(colors=out.isatty())))
    return ch


def setup_logging(level: str = "info", log_dir: Path | None = None, console: bool = True,
                  max_bytes: int = 0, backups: int = 0) -> None:
    """`level` is the console's; the JSON file always keeps info and above (debug too when asked).
    `max_bytes` > 0 rotates the file at that size, keeping `backups` old ones."""
    lvl = getattr(logging, level.upper())
    handlers: list[logging.Handler] = []
    unwritable: OSError | None = None
    if log_dir is not None:
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            fh = LogFile(log_dir / "evolver.jsonl", maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        except OSError as err:  # a read-only or full state folder: readers still work, the console still logs
            unwritable = err
        else:
            fh.setLevel(min(lvl, logging.INFO))
            fh.setFormatter(structlog.stdlib.ProcessorFormatter(processor=structlog.processors.JSONRenderer()))
            handlers.append(fh)
    if console:
        handlers.append(console_handler(lvl))
    root = logging.getLogger("evolver")
    for old in root.handlers:  # a second set-up in one process (tests) must not leak open files
        old.close()
    root.handlers[:] = handlers
    root.setLevel(min([lvl] + [h.level for h in handlers]))
    root.propagate = False
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    if unwritable is not None:
        get_logger().warning("log.file_unavailable", path=str(log_dir), error=unwritable.strerror or str(unwritable))


class LogFile(logging.handlers.RotatingFileHandler):
    """The JSON log file. A write that fails (a full disk) is reported once, in one line on stderr,
    instead of logging's traceback per record; the store, not the log, must not lose a row."""

    reported = False

    def handleError(self, record: logging.LogRecord) -> None:
        if not self.reported:
            self.reported = True
            err = sys.exc_info()[1]
            sys.stderr.write(f"evolver: warning: cannot write {self.baseFilename} ({err}); log lines may be lost\n")


def get_logger(**bind: object) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger("evolver").bind(**bind)
