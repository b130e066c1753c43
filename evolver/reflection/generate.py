"""The generate phase: the current model answers the training pool, reflects on its failures and retries.

Reads the pool from the task, writes attempts and reflections; re-running completes what is missing.
"""

from __future__ import annotations

from typing import Any

from evolver.backends.base import Backend
from evolver.context import PhaseContext
from evolver.reflection.common import adapter_for, instruction_pool, load_task, register_items, sampling
from evolver.reflection.engine import LoopSpec, cycle_picker, fixed_picker, run_loop, uniform_picker
from evolver.tasks.base import Item, Task

PURPOSE = "pool"


def pool_slice(task: Task, generation: int, size: int, rotate: bool) -> list[Item]:
    """This generation's slice of the training pool: consecutive, wrapping, fresh each generation when rotating."""
    pool = task.load("train")
    if not pool:
        raise ValueError(f"task {task.name!r} has no 'train' split to use as the pool")
    start = ((max(generation, 1) - 1) * size) % len(pool) if rotate else 0
    return [pool[(start + i) % len(pool)] for i in range(min(size, len(pool)))]


def loop_spec(ctx: PhaseContext) -> LoopSpec:
    c = ctx.cfg.config
    pool = instruction_pool(ctx.cfg)
    mode = c.reflection.instruction_sampling
    pick = (uniform_picker(pool, c.seed, ctx.generation) if mode == "uniform"
            else cycle_picker(pool) if mode == "cycle" else fixed_picker(pool[0]))
    return LoopSpec(purpose=PURPOSE, k=c.reflection.k, max_rounds=c.reflection.max_rounds,
                    trial=sampling(c.generation.trial), reflect=sampling(c.generation.reflection), pick=pick,
                    seed=c.seed, instructions={i.id: i for i in pool})


def run(ctx: PhaseContext, backend: Backend | None = None) -> dict[str, Any]:
    """Generate on this generation's pool with the parent (current) model."""
    c = ctx.cfg.config
    task = load_task(ctx.cfg, c.reflection.task)
    items = register_items(ctx.store, task, pool_slice(task, ctx.generation, c.reflection.pool_size,
                                                       c.reflection.pool_rotate))
    own = backend is None
    if backend is None:
        from evolver.backends.factory import make_backend

        backend = make_backend(ctx.cfg)
    try:
        parent_ref = f"gen-{ctx.parent:04d}" if ctx.parent is not None else "base"
        stats = run_loop(ctx.store, backend, task, items, ctx.generation, parent_ref, adapter_for(ctx.store, ctx.parent),
                         loop_spec(ctx), ctx.progress, ctx.check_stop)
    finally:
        if own:
            backend.close()
    attempts = ctx.store.attempts(ctx.generation, PURPOSE)
    t1 = [a for a in attempts if a.trial == 1]
    solved = {a.question_id for a in attempts if a.correct}
    return {"questions": len(items), "acc@t1": sum(a.correct for a in t1) / max(len(t1), 1),
            "solved": len(solved) / max(len(items), 1), "generated": stats.generated, "tokens_out": stats.tokens_out}
