"""The long-running daemon: the lock, signals, and APScheduler 3.x driving cycles and housekeeping.

Signal handlers only set flags (work inside a handler is unsafe). The first SIGTERM/SIGINT asks
the current stage to stop at its next safe point, leaving it resumable; a second one exits at
once, which is still safe because every store write is a transaction and the kernel drops the
lock with the process.

The daemon gives up instead of looping for ever: a failure of generation 0 (the base model
cannot be evaluated), `daemon.max_consecutive_failures` failed generations in a row, or an error
no retry can mend (disk full, read-only storage, a store from a newer evolver) ends `run()` with
`RunResult.fatal` set to one line, and `evolver run` exits non-zero with it.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from evolver.backends.holder import BackendHolder
from evolver.config import ConfigError, LoadedConfig
from evolver.context import Progress, StageContext, Stopped, no_progress
from evolver.daemon.cycle import GenerationFailed, run_generation
from evolver.daemon.lock import StateLock
from evolver.errors import EvolverError
from evolver.logs import get_logger
from evolver.states import GenStatus, PointerName
from evolver.store import SchemaTooNewError, Store

PAUSE_POLL_S = 30.0  # while paused by a pin, look again this often
PERMANENT_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT)


@dataclass
class RunResult:
    generations: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    stopped: bool = False
    fatal: str | None = None  # why the daemon gave up; None when it finished or was stopped


def permanent(err: BaseException) -> bool:
    """Errors no retry can mend: full or read-only storage, a store from a newer evolver."""
    if isinstance(err, SchemaTooNewError):
        return True
    if isinstance(err, OSError) and err.errno in PERMANENT_ERRNOS:
        return True
    if isinstance(err, sqlite3.Error):
        text = str(err).lower()
        return any(w in text for w in ("disk is full", "readonly", "read-only", "malformed", "not a database"))
    cause = err.__cause__ or err.__context__
    return cause is not None and cause is not err and permanent(cause)


def _line(err: BaseException) -> str:
    return err.line if isinstance(err, EvolverError) else f"{type(err).__name__}: {err}"


class Daemon:
    def __init__(self, cfg: LoadedConfig, max_generations: int | None = None, progress: Progress | None = None,
                 backends: BackendHolder | None = None) -> None:
        self.cfg = cfg
        self.max_generations = max_generations
        self.progress = progress or no_progress
        self.stop = threading.Event()
        self.done = threading.Event()
        self.backends = backends or BackendHolder(cfg)
        self.result = RunResult()
        self.log = get_logger()
        self._signals = 0
        self._failures = 0  # consecutive failed generations
        self._busy = threading.Lock()  # one job at a time touches the model and the store's writer side
        self._sched: Any = None

    # -- signals -----------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals += 1
        if self._signals > 1:
            os._exit(128 + signum)  # the kernel drops the flock with the process
        self.stop.set()

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    # -- jobs --------------------------------------------------------------------------------
    def context(self, store: Store, generation: int = 0, parent: int | None = None) -> StageContext:
        return StageContext(self.cfg, store, generation, parent, self.backends, self.stop, self.progress)

    def _give_up(self, why: str) -> None:
        self.result.fatal = why
        self.log.info("daemon.gave_up", reason=why)  # `evolver run` prints it as its one error line
        self.done.set()

    def _rearm(self, delay: float = 0.0) -> None:
        if self.cfg.config.daemon.schedule == "continuous" and self._sched is not None:
            self._sched.modify_job("cycle", next_run_time=_now() + timedelta(seconds=delay))

    def cycle(self, store: Store) -> None:
        if self.stop.is_set() or self.done.is_set():
            return
        d = self.cfg.config.daemon
        if self.cfg.config.policy.while_pinned == "pause" and store.pointer(PointerName.PINNED) is not None:
            self.log.info("cycle.paused", reason="a generation is pinned and policy.while_pinned = 'pause'")
            self._rearm(PAUSE_POLL_S)
            return
        with self._busy:
            try:
                outcome = run_generation(self.context(store))
            except Stopped:
                self.result.stopped = True
                self.done.set()
                return
            except GenerationFailed as err:  # generation 0: nothing can evolve from a base that fails
                self._give_up(f"generation 0 (the base model) failed: {err.line}")
                return
            except Exception as err:  # logged, never swallowed: permanent ones end the daemon
                self.log.warning("cycle.failed", error=_line(err))
                self.log.info("cycle.traceback", exc_info=True)
                if permanent(err):
                    self._give_up(_line(err))
                    return
                self._failures += 1
                if self._failures >= d.max_consecutive_failures:
                    self._give_up(f"{self._failures} cycles failed in a row; last: {_line(err)}")
                    return
                if self.stop.wait(min(d.backoff_seconds * 2 ** (self._failures - 1), 3600.0)):
                    return
                self._rearm()
                return
            self.result.generations.append(outcome.generation)
            if outcome.failed:
                self.result.failed.append(outcome.generation)
                self._failures += 1
                if self._failures >= d.max_consecutive_failures:
                    self._give_up(f"{self._failures} generations failed in a row; last: {outcome.failed}")
                    return
            else:
                self._failures = 0
            if self.max_generations is not None and len(self.result.generations) >= self.max_generations:
                self.done.set()
            else:
                self._rearm()  # back to back, never stacked

    def reevaluate(self, store: Store) -> None:
        """Re-evaluate the current generation; roll back if it fell below its promotion-time score.

        The evaluation key covers the weights on disk (base and adapter), so anything that changed
        since the promotion is evaluated afresh; an adapter that no longer verifies is rolled away.
        """
        from evolver.artifacts import AdapterError
        from evolver.evaluation.run import evaluate, stored_report
        from evolver.policy.actions import promotion_scores, rollback
        from evolver.policy.decide import should_rollback
        from evolver.policy.rules import load_policy
        from evolver.states import EvalProtocol

        with self._busy:
            cur = store.pointer(PointerName.CURRENT)
            if cur is None or store.pointer(PointerName.PINNED) is not None:
                return
            g = store.generation(cur)
            if g is None or g.status == GenStatus.BASE:
                return
            ctx = self.context(store, cur)
            try:
                now: dict[str, dict[str, float]] = {}
                for suite in self.cfg.config.evaluation.benchmarks:
                    for unit, protos in stored_report(ctx, evaluate(ctx, suite, cur)).items():
                        now[unit] = dict(protos.get(EvalProtocol.STANDARD, {}))
            except AdapterError as err:  # the served adapter changed on disk: go back
                rollback(store, reason=f"re-evaluation: {err.line}", actor="daemon")
                return
            then = promotion_scores(store, cur)
            if then is None:
                return
            roll, reason = should_rollback(now, then, load_policy(self.cfg.resolve(self.cfg.config.policy.file)))
            self.log.info("reevaluate", generation=cur, rollback=roll, reason=reason)
            if roll:
                rollback(store, reason=reason, actor="daemon")

    def prune(self, store: Store) -> None:
        """Delete adapters of rejected generations beyond the retention count (rows stay)."""
        keep = self.cfg.config.daemon.keep_rejected_adapters
        rejected = [g for g in store.generations() if g.status == GenStatus.REJECTED and g.adapter_path]
        for g in rejected[: max(len(rejected) - keep, 0)]:
            path = Path(g.adapter_path or "")
            if path.exists() and g.id != store.current_generation():
                shutil.rmtree(path.parent if path.name in ("sft", "dpo") else path, ignore_errors=True)
                self.log.info("prune.adapter", generation=g.id, path=str(path))

    def backup(self, store: Store) -> Path:
        """A consistent copy of the store in `state/backups/`, safe while the daemon writes."""
        return store.backup(self.cfg.state_dir / "backups" / f"evolver-{time.strftime('%Y%m%d-%H%M%S')}.db")

    # -- main --------------------------------------------------------------------------------
    def trigger(self) -> Any:
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        d = self.cfg.config.daemon
        if d.schedule == "continuous":
            return IntervalTrigger(days=3650)  # each cycle re-arms the next one when it ends
        if d.schedule == "interval":
            return IntervalTrigger(minutes=d.interval_minutes)
        try:
            return CronTrigger.from_crontab(d.cron)
        except ValueError as err:
            raise ConfigError(f"{self.cfg.path or 'config'}: daemon.cron: expected a crontab (5 fields), got"
                              f" {d.cron!r} ({err})") from None

    def run(self, signals: bool = True) -> RunResult:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        lock = StateLock(self.cfg.state_dir)
        lock.acquire()
        try:
            if signals:
                self.install_signals()
            trigger = self.trigger()
            with Store.open(self.cfg.state_dir / "evolver.db") as store:
                self._schedule(store, trigger, BackgroundScheduler(
                    executors={"default": ThreadPoolExecutor(1)},
                    job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}))
        finally:
            self.backends.close()
            lock.release()
        return self.result

    def _schedule(self, store: Store, trigger: Any, sched: Any) -> None:
        d = self.cfg.config.daemon
        sched.add_job(self.cycle, trigger, args=[store], id="cycle", next_run_time=_now())
        sched.add_job(self.reevaluate, "interval", hours=d.reeval_hours, args=[store], id="reeval")
        sched.add_job(self.prune, "interval", hours=1, args=[store], id="prune")
        sched.add_job(self.backup, "interval", hours=d.backup_hours, args=[store], id="backup")
        self._sched = sched
        sched.start()
        try:
            while not self.done.is_set():
                if self.stop.wait(0.2):
                    # let the running job reach its safe point, bounded by stop_timeout_s
                    clean = self._busy.acquire(timeout=d.stop_timeout_s)
                    self.result.stopped = True
                    if not clean:  # no safe point in time: every write is a transaction, so exit now
                        self.log.error("stop.forced", timeout_s=d.stop_timeout_s)
                        os._exit(1)
                    break
        finally:
            sched.shutdown(wait=False)


def _now() -> datetime:
    return datetime.now(timezone.utc)
