"""structlog set-up: JSON lines to `state/logs/evolver.jsonl` plus a readable console.

Configured once per process by the CLI; library code only calls `structlog.get_logger()`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import structlog

LEVELS = ("debug", "info", "warning", "error")


def setup_logging(level: str = "info", log_dir: Path | None = None, console: bool = True) -> None:
    """`level` is the console's; the JSON file always keeps info and above (debug too when asked)."""
    lvl = getattr(logging, level.upper())
    handlers: list[logging.Handler] = []
    unwritable: OSError | None = None
    if log_dir is not None:
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            fh = LogFile(log_dir / "evolver.jsonl", encoding="utf-8")
        except OSError as err:  # a read-only or full state folder: readers still work, the console still logs
            unwritable = err
        else:
            fh.setLevel(min(lvl, logging.INFO))
            fh.setFormatter(structlog.stdlib.ProcessorFormatter(processor=structlog.processors.JSONRenderer()))
            handlers.append(fh)
    if console:
        ch = logging.StreamHandler(sys.stderr)
        ch.setLevel(lvl)
        ch.setFormatter(structlog.stdlib.ProcessorFormatter(
            processor=structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())))
        handlers.append(ch)
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


class LogFile(logging.FileHandler):
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
