"""Stage 1, generate: the current model answers this generation's pool, reflects on its failures, retries.

Reads the pool from the task, writes attempts and reflections (purpose 'pool'); re-running
completes only what is missing, so an interrupted stage resumes where it stopped.
"""

from __future__ import annotations

from evolver.reflection.common import adapter_for, instruction_pool, load_task, register_items, sampling
from evolver.reflection.engine import LoopSpec, cycle_picker, fixed_picker, run_loop, uniform_picker
from evolver.context import StageContext, StageResult
from evolver.states import POOL_PURPOSE, gen_name
from evolver.tasks.base import Item, Task


def pool_slice(task: Task, generation: int, size: int, rotate: bool) -> list[Item]:
    """This generation's slice of the training pool: consecutive, wrapping, fresh each generation when rotating."""
    pool = task.load("train")
    if not pool:
        raise ValueError(f"task {task.name!r} has no 'train' split to use as the pool")
    start = ((max(generation, 1) - 1) * size) % len(pool) if rotate else 0
    return [pool[(start + i) % len(pool)] for i in range(min(size, len(pool)))]


def loop_spec(ctx: StageContext) -> LoopSpec:
    c = ctx.cfg.config
    pool = instruction_pool(ctx.cfg)
    mode = c.reflection.instruction_sampling
    pick = (uniform_picker(pool, c.seed, ctx.generation) if mode == "uniform"
            else cycle_picker(pool) if mode == "cycle" else fixed_picker(pool[0]))
    return LoopSpec(purpose=POOL_PURPOSE, k=c.reflection.k, max_rounds=c.reflection.max_rounds,
                    trial=sampling(c.generation.trial), reflect=sampling(c.generation.reflection), pick=pick,
                    seed=c.seed, instructions={i.id: i for i in pool})


def run(ctx: StageContext) -> StageResult:
    """Generate on this generation's pool with the parent (current) model."""
    c = ctx.cfg.config
    task = load_task(ctx.cfg, c.reflection.task)
    items = register_items(ctx.store, task, pool_slice(task, ctx.generation, c.reflection.pool_size,
                                                       c.reflection.pool_rotate))
    parent_ref = gen_name(ctx.parent) if ctx.parent is not None else "base"
    stats = run_loop(ctx.store, ctx.backend(), task, items, ctx.generation, parent_ref,
                     adapter_for(ctx.store, ctx.parent), loop_spec(ctx), ctx.progress, ctx.check_stop)
    attempts = ctx.store.attempts(ctx.generation, POOL_PURPOSE)
    t1 = [a for a in attempts if a.trial == 1]
    solved = {a.question_id for a in attempts if a.correct}
    return StageResult({"questions": len(items), "acc@t1": sum(a.correct for a in t1) / max(len(t1), 1),
                        "solved": len(solved) / max(len(items), 1), "generated": stats.generated,
                        "tokens_out": stats.tokens_out})
