"""The long-running daemon: the lock, signals, and APScheduler 3.x driving cycles and housekeeping.

Signal handlers only set flags (work inside a handler is unsafe). The first SIGTERM/SIGINT asks
the current stage to stop at its next safe point, leaving it resumable: between chunks, between
two decoding steps of a batch (the backend holds the stop flag), or by stopping the training
child. A second signal exits at once, which is still safe because every store write is a
transaction and the kernel drops the lock with the process.

Before it writes, the daemon checks the store (evolver.store.health: quick_check, the floor of
its history) and the served adapter (evolver.daemon.health); housekeeping repeats both
(integrity_check before each backup, the adapter hourly).

The daemon gives up instead of looping for ever: a failure of generation 0 (the base model
cannot be evaluated), `daemon.max_consecutive_failures` failed generations in a row, or an error
no retry can mend (disk full, read-only storage, a damaged store, a store from a newer evolver)
ends `run()` with `RunResult.fatal` set to one line, and `evolver run` exits non-zero with it.
Whatever escapes `run()` is one EvolverError line (evolver.daemon.faults).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from evolver.backends.holder import BackendHolder
from evolver.config import ConfigError, LoadedConfig
from evolver.context import Progress, StageContext, no_progress
from evolver.daemon.cycle import GenerationFailed, run_generation
from evolver.daemon.faults import DaemonError, describe, permanent, storage_error
from evolver.daemon.health import ensure_served_verifies
from evolver.daemon.lock import StateLock
from evolver.errors import EvolverError, Interrupted
from evolver.logs import get_logger
from evolver.states import GenStatus, PointerName
from evolver.store import Store
from evolver.store.health import StoreDamaged, check_pages, check_store

PAUSE_POLL_S = 30.0  # while paused by a pin, look again this often
ADAPTER_CHECK_HOURS = 1.0  # housekeeping: the served adapter verified, rejected ones pruned


@dataclass
class RunResult:
    generations: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    stopped: bool = False
    fatal: str | None = None  # why the daemon gave up; None when it finished or was stopped


class Daemon:
    def __init__(self, cfg: LoadedConfig, max_generations: int | None = None, progress: Progress | None = None,
                 backends: BackendHolder | None = None) -> None:
        self.cfg = cfg
        self.max_generations = max_generations
        self.progress = progress or no_progress
        self.stop = threading.Event()
        self.done = threading.Event()
        self.backends = backends or BackendHolder(cfg, interrupt=self.stop)  # a stop cuts a long batch short
        self.result = RunResult()
        self.log = get_logger()
        self._signals = 0
        self._failures = 0  # consecutive failed generations
        self._busy = threading.Lock()  # one job at a time touches the model and the store's writer side
        self._sched: Any = None
        self._lock: StateLock | None = None

    # -- signals -----------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals += 1
        if self._signals > 1:  # exit now: every write is a transaction, the interrupted phase resumes
            lock, self._lock = self._lock, None
            if lock is not None:
                with contextlib.suppress(OSError):  # exiting regardless: the kernel drops the flock with us
                    lock.release()  # ... this also clears the pid the file shows
            os.write(2, b"evolver: second signal: exiting at once; the interrupted phase resumes on the next run\n")
            os._exit(128 + signum)
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
                ensure_served_verifies(store)  # the model that generates is the served one: never unverified
                outcome = run_generation(self.context(store))
            except Interrupted:
                self.result.stopped = True
                self.done.set()
                return
            except GenerationFailed as err:  # generation 0: nothing can evolve from a base that fails
                self._give_up(f"generation 0 (the base model) failed: {err.line}")
                return
            except Exception as err:  # logged, never swallowed: permanent ones end the daemon
                self._cycle_failed(store, err)
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

    def _cycle_failed(self, store: Store, err: Exception) -> None:
        """Log it; give up on what no retry mends (a storage error first checks the store's pages),
        else back off exponentially (capped) and try again, up to max_consecutive_failures."""
        d = self.cfg.config.daemon
        line = describe(err)
        self.log.warning("cycle.failed", error=line)
        self.log.info("cycle.traceback", exc_info=err)
        if storage_error(err):
            try:
                check_pages(store.path)
            except StoreDamaged as damaged:
                self._give_up(damaged.line)
                return
        if permanent(err):
            self._give_up(line)
            return
        self._failures += 1
        if self._failures >= d.max_consecutive_failures:
            self._give_up(f"{self._failures} cycles failed in a row; last: {line}")
            return
        if self.stop.wait(min(d.backoff_seconds * 2 ** (self._failures - 1), 3600.0)):
            return
        self._rearm()

    def housekeeping(self, job: Callable[[Store], object]) -> Callable[[Store], None]:
        """A scheduled job that logs its failure in one line (never APScheduler's traceback on the console)
        and ends the daemon on what no retry mends (a damaged store, a full disk)."""
        def run(store: Store) -> None:
            if self.done.is_set() or self.stop.is_set():
                return
            try:
                job(store)
            except Exception as err:
                self.log.warning("housekeeping.failed", job=job.__name__, error=describe(err))
                self.log.info("housekeeping.traceback", exc_info=err)
                if permanent(err):
                    self._give_up(describe(err))
        run.__name__ = job.__name__
        return run

    def check_adapters(self, store: Store) -> None:
        """Hourly: the served adapter still verifies (else roll back), then prune rejected ones."""
        with self._busy:
            ensure_served_verifies(store)
        self.prune(store)

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
            ensure_served_verifies(store)
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
        """A consistent copy of the store in `state/backups/`, safe while the daemon writes.

        The whole store is checked first (`PRAGMA integrity_check`): a damaged store is never copied
        over the way back to a whole one, and ends the daemon before it writes into it again.
        """
        check_pages(store.path, full=True)
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
        """Hold the lock, check the store and the served adapter, then schedule until done or stopped.

        One error path: whatever escapes (store, schema, OS, full disk, scheduler) leaves as an
        EvolverError whose one line names the root cause, and the lock is released however it ends.
        """
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        lock = StateLock(self.cfg.state_dir)
        try:
            lock.acquire()
            self._lock = lock
            if signals:
                self.install_signals()
            trigger = self.trigger()
            db = self.cfg.state_dir / "evolver.db"
            check_store(db, self.cfg.state_dir)  # never write into a damaged, emptied or shrunken store
            with Store.open(db) as store:
                ensure_served_verifies(store)
                self._schedule(store, trigger, BackgroundScheduler(
                    executors={"default": ThreadPoolExecutor(1)},
                    job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}))
        except EvolverError:
            raise
        except Exception as err:  # OS, SQLite, scheduler: one line naming the root cause
            self.log.info("daemon.traceback", exc_info=err)
            raise DaemonError(describe(err)) from err
        finally:
            self._lock = None
            try:
                self.backends.close()
            finally:
                lock.release()
        return self.result

    def _schedule(self, store: Store, trigger: Any, sched: Any) -> None:
        d = self.cfg.config.daemon
        sched.add_job(self.cycle, trigger, args=[store], id="cycle", next_run_time=_now())
        sched.add_job(self.housekeeping(self.reevaluate), "interval", hours=d.reeval_hours, args=[store], id="reeval")
        sched.add_job(self.housekeeping(self.check_adapters), "interval", hours=ADAPTER_CHECK_HOURS, args=[store],
                      id="adapters")
        sched.add_job(self.housekeeping(self.backup), "interval", hours=d.backup_hours, args=[store], id="backup")
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
