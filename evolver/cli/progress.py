"""How `evolver run` (and `eval --generation`) show progress: bars on a terminal, lines in a log.

Stages report through the context's `progress(label, done, total, **counts)` (counts such as
`tokens` written so far or a training `loss`). On a terminal that drives Rich bars; anywhere else
(a log file, CI, `nohup`, systemd's journal) it becomes structured log lines on stderr: one when a
task starts, one when it ends, and between them a heartbeat at most every `every` seconds with the
counts and rates, so `make run > log 2>&1` shows each phase moving.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

HEARTBEAT_S = 30.0
# Console lines of a run without a terminal: the daemon's phase events and these progress lines.
RUN_EVENTS = ("phase.", "generation.", "progress", "cycle.", "daemon.", "reevaluate", "prune.", "stop.")


@dataclass
class _Task:
    total: int
    started: float
    beat: float
    done: int = 0
    beat_done: int = 0  # `done` at the last heartbeat (rates are since then)
    tokens: float = 0.0
    counts: dict[str, Any] = field(default_factory=dict)


class LineProgress:
    """`progress(label, done, total, **counts)` as log lines: start, heartbeats (<= one per `every` s), done."""

    def __init__(self, log: Any, every: float = HEARTBEAT_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.log, self.every, self.clock = log, every, clock
        self.tasks: dict[str, _Task] = {}
        self.last_beat = clock()

    def __call__(self, label: str, done: int, total: int, **counts: Any) -> None:
        now = self.clock()
        task = self.tasks.get(label)
        if task is None or done < task.done:  # a new task, or the same label starting over
            task = self.tasks[label] = _Task(total, now, now, beat_done=done, tokens=float(counts.get("tokens", 0.0)))
            self.log.info("progress.start", task=label, total=total)
        rate = _rate(done - task.beat_done, now - task.beat)
        tokens_rate = _rate(float(counts.get("tokens", task.tokens)) - task.tokens, now - task.beat)
        task.done, task.total, task.counts = done, total, counts
        if done >= total:
            self.log.info(
                "progress.done",
                task=label,
                done=done,
                total=total,
                seconds=round(now - task.started, 1),
                **_shown(counts),
            )
            del self.tasks[label]
            return
        if now - self.last_beat >= self.every and now > task.beat:  # a task's first call is its start line
            extra = {"per_s": rate} if "tokens" not in counts else {"per_s": rate, "tokens_per_s": tokens_rate}
            self.log.info("progress", task=label, done=done, total=total, **extra, **_shown(counts))
            task.beat, task.beat_done, task.tokens, self.last_beat = now, done, float(counts.get("tokens", 0.0)), now


def _rate(delta: float, seconds: float) -> float:
    return round(delta / seconds, 2) if seconds > 0 else 0.0


def _shown(counts: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in counts.items()}


class BarProgress:
    """`progress(...)` as Rich bars (one per label), with the latest counts (loss, tokens) beside each."""

    def __init__(self, console: Console) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bars = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            transient=True,
        )
        self.tasks: dict[str, Any] = {}

    def __call__(self, label: str, done: int, total: int, **counts: Any) -> None:
        info = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in counts.items())
        if label not in self.tasks:
            self.tasks[label] = self.bars.add_task(label, total=total, info=info)
        self.bars.update(self.tasks[label], completed=done, total=total, info=info)


class _Events(logging.Filter):
    """The run's own events, those the console handler does not show already (below `shown`): one line each."""

    def __init__(self, shown: int) -> None:
        super().__init__()
        self.shown = shown

    def filter(self, record: logging.LogRecord) -> bool:
        event = record.msg.get("event", "") if isinstance(record.msg, dict) else str(record.msg)
        return (
            record.levelno < self.shown and str(event).startswith(RUN_EVENTS) and not str(event).endswith(".traceback")
        )


@contextmanager
def run_progress(console: Console, force_lines: bool = False, quiet_logs: bool = False) -> Iterator[Any]:
    """The progress callable for a long command: bars on a terminal, else log lines on stderr.

    Without a terminal the daemon's phase events (info) reach stderr as well, one line each, unless
    `quiet_logs` says the console already shows info lines (--log-level info).
    """
    from evolver.logs import LogFile, console_handler, get_logger

    if console.is_terminal and not force_lines:
        bar = BarProgress(console)
        with bar.bars:
            yield bar
        return
    root = logging.getLogger("evolver")
    old_level = root.level
    handler = None
    if not quiet_logs:
        shown = min((h.level for h in root.handlers if not isinstance(h, LogFile)), default=logging.CRITICAL + 1)
        handler = console_handler(logging.INFO, stream=console.file)
        handler.addFilter(_Events(shown))
        root.addHandler(handler)
        root.setLevel(min(root.level or logging.INFO, logging.INFO))
    try:
        yield LineProgress(get_logger())
    finally:
        if handler is not None:
            root.removeHandler(handler)
        root.setLevel(old_level)
