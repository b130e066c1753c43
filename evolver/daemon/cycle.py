"""One generation as a persisted state machine: generate → harvest → sft → dpo → evaluate → decide.

The cycle alone records phase rows: each stage's start, finish (done, or skipped with the reason),
attempts and error live in the store. After a crash the same generation resumes at its first
unfinished phase; stages are idempotent, so nothing is duplicated. A stage that keeps failing
fails the generation (never promoted); the backoff between attempts waits on the stop event, so
a stop request is never held up by it.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass

from evolver.artifacts import AdapterError
from evolver.config import LoadedConfig
from evolver.context import StageContext, StageResult, Stopped
from evolver.errors import EvolverError, Interrupted
from evolver.logs import get_logger
from evolver.models import resolve_base
from evolver.reflection.common import adapter_for
from evolver.stages import RUNNERS
from evolver.states import (
    BASE_GENERATION,
    FINISHED,
    STAGES,
    EventKind,
    GenStatus,
    PhaseStatus,
    PointerName,
    Stage,
    gen_name,
)
from evolver.store import Store


class GenerationFailed(EvolverError):
    """A stage failed beyond its retries; the generation is marked failed."""


@dataclass(frozen=True)
class Outcome:
    generation: int
    failed: str | None = None  # the one-line cause when the generation failed


def run_stage(ctx: StageContext, stage: Stage, retries: int, backoff: float) -> StageResult:
    """Run one stage to done or skipped, recording the phase row; retry with backoff, then fail."""
    store, gen = ctx.store, ctx.generation
    log = get_logger(generation=gen, phase=str(stage))
    while True:
        ctx.enter(stage)
        ctx.check_stop()
        attempt = store.phase_start(gen, stage)
        t0 = time.time()
        log.info("phase.start", attempt=attempt)
        try:
            ctx.check_stop()  # a safe point inside the phase, after it is marked running
            result = RUNNERS[stage](ctx)
        except Interrupted:  # a safe point, or a batch cut short: nothing half-done was kept
            log.info("phase.stopped")
            raise
        except Exception as err:  # recorded, retried, then the generation fails
            line = err.line if isinstance(err, EvolverError) else f"{type(err).__name__}: {err}"
            detail = err.detail if isinstance(err, EvolverError) and err.detail else line
            log.warning("phase.failed", attempt=attempt, of=retries + 1, error=line)
            log.info("phase.traceback", traceback=traceback.format_exc(limit=8))  # the log file keeps it
            store.phase_finish(gen, stage, PhaseStatus.FAILED, error=detail)
            if attempt > retries:
                where = f"{gen_name(gen)} {stage}"
                raise GenerationFailed(line if line.startswith(where) else f"{where}: {line}") from err
            if ctx.stop.wait(backoff * 2 ** (attempt - 1)):
                raise Stopped(f"{gen_name(gen)}: stop requested during the backoff of {stage}") from None
            continue
        seconds = round(time.time() - t0, 2)
        detail = {**result.detail, "seconds": seconds}
        if result.skipped:
            store.phase_finish(gen, stage, PhaseStatus.SKIPPED, detail={**detail, "reason": result.skipped})
        else:
            store.phase_finish(gen, stage, PhaseStatus.DONE, detail=detail)
        log.info("phase.done", seconds=seconds, skipped=result.skipped)
        return result


def create_generation(cfg: LoadedConfig, store: Store, gen_id: int, parent: int | None, status: GenStatus) -> None:
    """The generation's row, with the versions of the stack that makes it (evolver.provenance)."""
    from evolver.provenance import versions

    store.create_generation(gen_id, parent, resolve_base(cfg.config.model, cfg.root, cfg.state_dir), cfg.hash,
                            json.dumps(cfg.config.model_dump(mode="json")), status=status)
    store.record_versions(gen_id, versions())


def ensure_base(ctx: StageContext) -> None:
    """Generation 0 is the base model: recorded, evaluated once, and current from the start."""
    from evolver.policy.actions import adopt_base

    store, d = ctx.store, ctx.cfg.config.daemon
    if store.generation(BASE_GENERATION) is None:
        create_generation(ctx.cfg, store, BASE_GENERATION, None, GenStatus.BASE)
    ph = store.phase(BASE_GENERATION, Stage.EVALUATE)
    if ph is None or ph.status not in FINISHED:
        base = StageContext(ctx.cfg, store, BASE_GENERATION, None, ctx.backends, ctx.stop, ctx.progress)
        run_stage(base, Stage.EVALUATE, d.retries, d.backoff_seconds)
    if store.pointer(PointerName.CURRENT) is None:
        adopt_base(store, BASE_GENERATION)


def next_generation(cfg: LoadedConfig, store: Store) -> tuple[int, int | None]:
    """The generation to work on: an unfinished one, else a new child of the current model."""
    latest = store.latest_generation()
    if latest is not None and latest.id != BASE_GENERATION and latest.status in (GenStatus.RUNNING, GenStatus.EVALUATED):
        return latest.id, latest.parent_id
    parent = store.current_generation()
    gen_id = (latest.id + 1) if latest is not None else 1
    create_generation(cfg, store, gen_id, parent, GenStatus.RUNNING)
    return gen_id, parent


def run_generation(ctx: StageContext) -> Outcome:
    """Run (or resume) one generation to its decision.

    `ctx` carries the config, store, backends, stop flag and progress; its generation is chosen
    here. A generation whose stage fails beyond its retries is marked failed and reported in the
    outcome; a failure of generation 0 (the base model cannot be evaluated) raises
    GenerationFailed instead: nothing can evolve from it.
    """
    ensure_base(ctx)
    gen, parent = next_generation(ctx.cfg, ctx.store)
    run = StageContext(ctx.cfg, ctx.store, gen, parent, ctx.backends, ctx.stop, ctx.progress)
    d = ctx.cfg.config.daemon
    store = ctx.store
    try:
        try:  # a resumed generation's parent may have changed on disk since it started
            adapter_for(store, parent)
        except AdapterError as err:
            raise GenerationFailed(f"{gen_name(gen)}: its parent's adapter is refused: {err.line}") from None
        for stage in STAGES:
            ph = store.phase(gen, stage)
            if ph is not None and ph.status in FINISHED:
                continue
            ctx.backends.release_memory()  # flat across generations; training children get what generation freed
            run_stage(run, stage, d.retries, d.backoff_seconds)
            if stage == Stage.EVALUATE:
                store.update_generation(gen, status=GenStatus.EVALUATED)
    except GenerationFailed as err:
        store.update_generation(gen, status=GenStatus.FAILED, finished_at=store.clock(), note=str(err)[:500])
        store.record_event(EventKind.FAILED, gen, "daemon", str(err)[:500])
        get_logger(generation=gen).warning("generation.failed", error=str(err))
        return Outcome(gen, str(err))
    store.update_generation(gen, finished_at=store.clock())
    return Outcome(gen)
