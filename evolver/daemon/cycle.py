"""One generation as a persisted state machine: generate → harvest → sft → dpo → evaluate → decide.

Each phase's start, finish, attempts and error live in the store. After a crash the same
generation resumes at its first unfinished phase; phases are idempotent, so nothing is
duplicated. A phase that keeps failing fails the generation, which is never promoted.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from typing import Any

from evolver.backends.base import Backend
from evolver.config import LoadedConfig
from evolver.context import PhaseContext, Progress, Stopped
from evolver.logs import get_logger
from evolver.store import Store

PHASES = ("generate", "harvest", "sft", "dpo", "evaluate", "decide")
SELF_RECORDING = ("sft", "dpo")  # training phases record their own phase rows (they run a child process)
BASE = 0


class GenerationFailed(Exception):
    """A phase failed beyond its retries; the generation is marked failed."""


class BackendHolder:
    """Loads the generation backend once per daemon process and shares it across phases."""

    def __init__(self, cfg: LoadedConfig, factory: Callable[[LoadedConfig], Backend] | None = None) -> None:
        self.cfg = cfg
        self._factory = factory
        self._backend: Backend | None = None

    def get(self) -> Backend:
        if self._backend is None:
            if self._factory is None:
                from evolver.backends.factory import make_backend

                self._factory = make_backend
            self._backend = self._factory(self.cfg)
        return self._backend

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None


def _phase_fn(name: str, backends: BackendHolder) -> Callable[[PhaseContext], dict[str, Any]]:
    if name == "generate":
        from evolver.reflection import generate

        return lambda ctx: generate.run(ctx, backends.get())
    if name == "harvest":
        from evolver.reflection import harvest

        return lambda ctx: harvest.run(ctx, backends.get())
    if name == "sft":
        from evolver.training.phase import run_sft

        return run_sft
    if name == "dpo":
        from evolver.training.phase import run_dpo

        return run_dpo
    if name == "evaluate":
        from evolver.evaluation import run as evaluation

        return lambda ctx: evaluation.run(ctx, backends.get())
    from evolver.policy import phase as decide

    return decide.run


def ensure_base(cfg: LoadedConfig, store: Store, backends: BackendHolder, progress: Progress,
                stop: Any) -> None:
    """Generation 0 is the base model: recorded, evaluated once, and current from the start."""
    from evolver.models import resolve_base

    if store.generation(BASE) is None:
        store.create_generation(BASE, None, resolve_base(cfg.config.model, cfg.root), cfg.hash,
                                json.dumps(cfg.config.model_dump(mode="json")), status="base")
    ctx = PhaseContext(cfg=cfg, store=store, generation=BASE, parent=None, stop=stop, progress=progress)
    ph = store.phase(BASE, "evaluate")
    if ph is None or ph.status != "done":
        _run_phase(ctx, "evaluate", backends, retries=cfg.config.daemon.retries,
                   backoff=cfg.config.daemon.backoff_seconds)
    if store.pointer("current") is None:
        from evolver.policy.actions import adopt_base

        adopt_base(store, BASE)


def _run_phase(ctx: PhaseContext, name: str, backends: BackendHolder, retries: int, backoff: float,
               sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    store, gen = ctx.store, ctx.generation
    log = get_logger(generation=gen, phase=name)
    fn = _phase_fn(name, backends)
    while True:
        ctx.phase, ctx.safe_points = name, 0
        ctx.check_stop()
        own = name not in SELF_RECORDING
        attempt = store.phase_start(gen, name) if own else (getattr(store.phase(gen, name), "attempts", 0) + 1)
        t0 = time.time()
        log.info("phase.start", attempt=attempt)
        try:
            ctx.check_stop()  # a safe point inside the phase, after it is marked running
            detail = fn(ctx) or {}
        except Stopped:
            log.info("phase.stopped")
            raise
        except Exception as err:  # a failed phase is recorded, retried, then fails the generation
            msg = f"{type(err).__name__}: {err}"
            log.error("phase.failed", error=msg, traceback=traceback.format_exc(limit=8))
            if own:
                store.phase_finish(gen, name, "failed", error=msg)
            ph = store.phase(gen, name)
            attempts = ph.attempts if ph else attempt
            if attempts > retries:
                raise GenerationFailed(f"gen-{gen:04d} {name}: {msg}") from err
            sleep(backoff * 2 ** (attempts - 1))
            continue
        seconds = round(time.time() - t0, 2)
        if own:
            status = "skipped" if detail.get("skipped") else "done"
            store.phase_finish(gen, name, status, detail={**detail, "seconds": seconds})
        else:
            ph = store.phase(gen, name)
            if ph is not None and ph.status == "failed":
                if ph.attempts > retries:
                    raise GenerationFailed(f"gen-{gen:04d} {name}: {ph.error}")
                sleep(backoff * 2 ** (ph.attempts - 1))
                continue
        log.info("phase.done", seconds=seconds)
        return detail


def next_generation(cfg: LoadedConfig, store: Store) -> tuple[int, int | None]:
    """The generation to work on: an unfinished one, else a new child of the current model."""
    latest = store.latest_generation()
    if latest is not None and latest.id != BASE and latest.status in ("running", "evaluated"):
        return latest.id, latest.parent_id
    parent = store.current_generation()
    gen_id = (latest.id + 1) if latest is not None else 1
    from evolver.models import resolve_base

    store.create_generation(gen_id, parent, resolve_base(cfg.config.model, cfg.root), cfg.hash,
                            json.dumps(cfg.config.model_dump(mode="json")), status="running")
    return gen_id, parent


def run_generation(cfg: LoadedConfig, store: Store, backends: BackendHolder, stop: Any,
                   progress: Progress, sleep: Callable[[float], None] = time.sleep) -> int:
    """Run (or resume) one generation to its decision; returns its id."""
    ensure_base(cfg, store, backends, progress, stop)
    gen, parent = next_generation(cfg, store)
    ctx = PhaseContext(cfg=cfg, store=store, generation=gen, parent=parent, stop=stop, progress=progress)
    d = cfg.config.daemon
    try:
        for name in PHASES:
            ph = store.phase(gen, name)
            if ph is not None and ph.status in ("done", "skipped"):
                continue
            _run_phase(ctx, name, backends, d.retries, d.backoff_seconds, sleep)
            if name == "evaluate":
                store.update_generation(gen, status="evaluated")
    except GenerationFailed as err:
        store.update_generation(gen, status="failed", finished_at=store.clock(), note=str(err)[:500])
        store.record_event("failed", gen, "daemon", str(err)[:500])
        get_logger(generation=gen).error("generation.failed", error=str(err))
        return gen
    store.update_generation(gen, finished_at=store.clock())
    return gen
