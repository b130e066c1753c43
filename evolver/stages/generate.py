"""Stage 1, generate: the current model answers this generation's pool, reflects on its failures, retries.

The pool is drawn at the model's frontier (evolver.reflection.pool): fresh questions from the
lowest level it has not mastered and the one above, plus questions it failed before; questions it
solved never return. Writes attempts and reflections (purpose 'pool'); re-running completes only
what is missing, so an interrupted stage resumes where it stopped, on the same pool.
"""

from __future__ import annotations

from evolver.context import StageContext, StageResult
from evolver.reflection.common import adapter_for, instruction_pool, load_task, register_items, sampling
from evolver.reflection.engine import LoopSpec, cycle_picker, fixed_picker, run_loop, uniform_picker
from evolver.reflection.pool import Pool, PoolRules, draw
from evolver.states import POOL_PURPOSE, EvalProtocol, gen_name, split_unit
from evolver.store import Store


def level_scores(store: Store, generation: int | None, suite: str) -> dict[str, float]:
    """The held-out acc@t1 of `generation` per level of `suite` (the latest evaluation wins); {} if none."""
    if generation is None:
        return {}
    out: dict[str, float] = {}
    for r in store.eval_results(generation):
        unit_suite, level = split_unit(r.benchmark)
        if r.protocol == EvalProtocol.STANDARD and r.metric == "acc@t1" and unit_suite == suite:
            out[level or ""] = r.value  # "" is the suite as a whole
    return out


def draw_pool(ctx: StageContext) -> Pool:
    r = ctx.cfg.config.reflection
    task = load_task(ctx.cfg, r.task)
    items = task.load("train")
    if not items:
        raise ValueError(f"task {task.name!r} has no 'train' split to use as the pool")
    rules = PoolRules(size=r.pool_size, returns=r.pool_returns, frontier_share=r.pool_frontier, mastery=r.mastery,
                      review=r.pool_review)
    return draw(items, ctx.store.pool_history(task.name, ctx.generation), level_scores(ctx.store, ctx.parent, r.task),
                rules)


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
    pool = draw_pool(ctx)
    items = register_items(ctx.store, task, pool.items)
    parent_ref = gen_name(ctx.parent) if ctx.parent is not None else "base"
    stats = run_loop(ctx.store, ctx.backend(), task, items, ctx.generation, parent_ref,
                     adapter_for(ctx.store, ctx.parent), loop_spec(ctx), ctx.progress, ctx.check_stop)
    attempts = ctx.store.attempts(ctx.generation, POOL_PURPOSE)
    t1 = [a for a in attempts if a.trial == 1]
    solved = {a.question_id for a in attempts if a.correct}
    return StageResult({"questions": len(items), "pool": pool.report,
                        "acc@t1": sum(a.correct for a in t1) / max(len(t1), 1),
                        "solved": len(solved) / max(len(items), 1), "generated": stats.generated,
                        "tokens_out": stats.tokens_out})
