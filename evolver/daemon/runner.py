"""The long-running daemon: the lock, signals, and APScheduler 3.x driving cycles and housekeeping.

Signal handlers only set flags (work inside a handler is unsafe). The first SIGTERM/SIGINT
asks the current phase to stop at its next safe point, leaving it resumable; a second one
exits at once, which is still safe because every store write is a transaction.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import threading
import time
from datetime import timedelta
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evolver.config import LoadedConfig
from evolver.context import Progress, Stopped
from evolver.daemon import lock
from evolver.daemon.cycle import BackendHolder, run_generation
from evolver.logs import get_logger
from evolver.store import Store

PAUSE_POLL_S = 30.0  # while paused by a pin, look again this often


@dataclass
class RunResult:
    generations: list[int] = field(default_factory=list)
    stopped: bool = False


class Daemon:
    def __init__(self, cfg: LoadedConfig, max_generations: int | None = None, progress: Progress | None = None,
                 backends: BackendHolder | None = None) -> None:
        self.cfg = cfg
        self.max_generations = max_generations
        self.progress = progress or (lambda *_: None)
        self.stop = threading.Event()
        self.done = threading.Event()
        self.backends = backends or BackendHolder(cfg)
        self.result = RunResult()
        self.log = get_logger()
        self._signals = 0
        self._busy = threading.Lock()
        self._sched: Any = None  # one job at a time touches the model and the store's writer side

    # -- signals -----------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals += 1
        if self._signals > 1:
            os._exit(128 + signum)
        self.stop.set()

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    # -- jobs --------------------------------------------------------------------------------
    def cycle(self, store: Store) -> None:
        if self.stop.is_set() or self.done.is_set():
            return
        if self.cfg.config.policy.while_pinned == "pause" and store.pointer("pinned") is not None:
            self.log.info("cycle.paused", reason="a generation is pinned and policy.while_pinned = 'pause'")
            if self.cfg.config.daemon.schedule == "continuous" and self._sched is not None:
                self._sched.modify_job("cycle", next_run_time=_now() + timedelta(seconds=PAUSE_POLL_S))
            return
        with self._busy:
            try:
                gen = run_generation(self.cfg, store, self.backends, self.stop, self.progress)
            except Stopped:
                self.result.stopped = True
                self.done.set()
                return
            except Exception as err:  # logged, never swallowed silently; the next cycle tries again
                self.log.exception("cycle.failed", error=str(err))
                time.sleep(self.cfg.config.daemon.backoff_seconds)
                if self.cfg.config.daemon.schedule == "continuous" and self._sched is not None:
                    self._sched.modify_job("cycle", next_run_time=_now())
                return
            self.result.generations.append(gen)
            if self.max_generations is not None and len(self.result.generations) >= self.max_generations:
                self.done.set()
            elif self.cfg.config.daemon.schedule == "continuous" and self._sched is not None:
                self._sched.modify_job("cycle", next_run_time=_now())  # back to back, never stacked

    def reevaluate(self, store: Store) -> None:
        """Re-evaluate the current generation; roll back if it fell below its promotion-time score."""
        from evolver.context import PhaseContext
        from evolver.evaluation import run as evaluation
        from evolver.policy.actions import promotion_scores, rollback
        from evolver.policy.decide import should_rollback
        from evolver.policy.rules import load_policy

        with self._busy:
            cur = store.pointer("current")
            if cur is None or store.pointer("pinned") is not None:
                return
            g = store.generation(cur)
            if g is not None and g.adapter_path:
                from evolver.training.adapters import verify_adapter
                from evolver.training.errors import AdapterError

                try:
                    verify_adapter(g.adapter_path, g.adapter_sha256)
                except AdapterError as err:  # a served adapter that changed on disk: go back
                    rollback(store, reason=f"re-evaluation: {err}", actor="daemon")
                    return
            ctx = PhaseContext(cfg=self.cfg, store=store, generation=cur, parent=None, stop=self.stop)
            now = {b: {p_m: v for p_m, v in r["standard"].items()}
                   for b, r in evaluation.run(ctx, self.backends.get()).items()}
            then = promotion_scores(store, cur)
            if then is None:
                return
            policy = load_policy(self.cfg.resolve(self.cfg.config.policy.file))
            roll, reason = should_rollback(now, then, policy)
            if roll:
                rollback(store, reason=reason, actor="daemon")

    def prune(self, store: Store) -> None:
        """Delete adapters of rejected generations beyond the retention count (rows stay)."""
        keep = self.cfg.config.daemon.keep_rejected_adapters
        rejected = [g for g in store.generations() if g.status == "rejected" and g.adapter_path]
        for g in rejected[: max(len(rejected) - keep, 0)]:
            path = Path(g.adapter_path or "")
            if path.exists() and g.id != store.current_generation():
                shutil.rmtree(path.parent if path.name in ("sft", "dpo") else path, ignore_errors=True)
                self.log.info("prune.adapter", generation=g.id, path=str(path))

    def backup(self, store: Store) -> Path:
        """A consistent copy through SQLite's backup API, safe while the daemon writes."""
        dest_dir = self.cfg.state_dir / "backups"
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / f"evolver-{time.strftime('%Y%m%d-%H%M%S')}.db"
        src = sqlite3.connect(store.path)
        try:
            with sqlite3.connect(dest) as out:
                src.backup(out)
        finally:
            src.close()
        return dest

    # -- main --------------------------------------------------------------------------------
    def trigger(self) -> Any:
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        d = self.cfg.config.daemon
        if d.schedule == "continuous":
            return IntervalTrigger(days=3650)  # each cycle re-arms the next one when it ends
        if d.schedule == "interval":
            return IntervalTrigger(minutes=d.interval_minutes)
        return CronTrigger.from_crontab(d.cron)

    def run(self, signals: bool = True) -> RunResult:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        state = self.cfg.state_dir
        lock.acquire(state)
        if signals:
            self.install_signals()
        store = Store.open(state / "evolver.db")
        d = self.cfg.config.daemon
        sched = BackgroundScheduler(executors={"default": ThreadPoolExecutor(1)},
                                    job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        try:
            sched.add_job(self.cycle, self.trigger(), args=[store], id="cycle", next_run_time=_now())
            sched.add_job(self.reevaluate, "interval", hours=d.reeval_hours, args=[store], id="reeval")
            sched.add_job(self.prune, "interval", hours=1, args=[store], id="prune")
            sched.add_job(self.backup, "interval", hours=d.backup_hours, args=[store], id="backup")
            self._sched = sched
            sched.start()
            while not self.done.is_set():
                if self.stop.wait(0.2):
                    # let the running job reach its safe point, bounded by stop_timeout_s
                    clean = self._busy.acquire(timeout=d.stop_timeout_s)
                    self.result.stopped = True
                    if not clean:  # the phase did not reach a safe point in time: every write is a
                        self.log.error("stop.forced", timeout_s=d.stop_timeout_s)  # transaction, so exit now
                        lock.release(state)
                        os._exit(1)
                    break
        finally:
            sched.shutdown(wait=False)
            self.backends.close()
            store.close()
            lock.release(state)
        return self.result


def _now() -> Any:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)

