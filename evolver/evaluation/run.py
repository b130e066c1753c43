"""Evaluating one generation on one suite: acc@t1 and acc@t2, greedy, stored under the evaluation's key.

Two protocols per suite:
- 'standard': the generation answers, reflects on its failures and retries (acc@t1, acc@t2).
- 'paper': trial 1 is held fixed at generation 0's answers (as in ReflectEvo), so acc@t2
  measures the reflection skill alone.
Results are reported per unit (the suite, and each of its levels when its questions have levels)
and keyed by everything that can change an answer (evolver.evaluation.identity): re-running with
nothing changed is free, and anything changed (weights on disk, adapter, backend, decoding,
suite) runs again. An evaluation that differs from an earlier one of the same generation in its
questions alone (the decide stage's second look: the first look's questions and more) copies the
earlier one's work on the questions both hold and answers only the new ones.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import replace
from typing import Any

from evolver.backends.base import Sampling
from evolver.backends.holder import base_fingerprint
from evolver.config import LoadedConfig
from evolver.context import StageContext
from evolver.evaluation.identity import eval_identity, eval_key, same_but_questions
from evolver.evaluation.outcomes import by_unit, outcomes, purpose, question_levels, rates
from evolver.models import pick_device, resolve_base, resolve_dtype
from evolver.reflection.common import adapter_for, instruction_pool, load_split, register_items, suite_limit
from evolver.reflection.engine import LoopSpec, fixed_picker, run_loop
from evolver.reflection.instructions import Instruction
from evolver.states import BASE_GENERATION, EvalProtocol, gen_name
from evolver.store import Store
from evolver.store.schema import Evaluation
from evolver.tasks.base import Item, Task, meta_level
from evolver.tasks.rows import Loaded

Report = dict[str, dict[str, dict[str, float]]]  # unit -> protocol -> metric -> value


def evaluation_instruction(ctx: StageContext) -> Instruction:
    pool = {i.id: i for i in instruction_pool(ctx.cfg)}
    iid = ctx.cfg.config.evaluation.instruction
    if iid not in pool:
        raise ValueError(f"evaluation.instruction: unknown instruction id {iid!r}")
    return pool[iid]


def questions(cfg: LoadedConfig, suite: str, limit: int | None = None,
              levels: Collection[str] | None = None) -> tuple[Task, Loaded]:
    """The held-out questions of an evaluation: the suite's default number (per level), or `limit`; with
    `levels`, the default questions of every level plus, on those levels, the others of the first `limit` (a
    second look that widens only the levels in question, holding every question of the first look)."""
    default = suite_limit(cfg, suite)
    task, loaded = load_split(cfg, suite, "test", limit or default)
    if not limit or levels is None:
        return task, loaded
    _, first = load_split(cfg, suite, "test", default)
    keep, wide = {it.id for it in first.items}, set(levels)
    return task, replace(loaded, items=first.items + [it for it in loaded.items
                                                       if it.id not in keep and meta_level(it.meta) in wide])


def evaluate(ctx: StageContext, suite: str, generation: int, paper: bool | None = None,
             limit: int | None = None, levels: Collection[str] | None = None) -> Evaluation:
    """One generation on one suite under the current settings; returns the finished evaluation (cached when
    one with the same key exists). `limit` overrides the questions per level, for every level or (`levels`)
    for those alone: the decide stage's second look."""
    c = ctx.cfg.config
    store = ctx.store
    task, loaded = questions(ctx.cfg, suite, limit, levels)
    items = register_items(store, task, loaded.items)
    adapter = adapter_for(store, generation)
    ins = evaluation_instruction(ctx)
    device = pick_device(c.model)
    weights_dtype = resolve_dtype(c.model, device, resolve_base(c.model, ctx.cfg.root, ctx.state_dir))
    identity = eval_identity(ctx.cfg, suite, list(items.values()), base_fingerprint(ctx.cfg),
                             adapter.sha256 if adapter else None, ins, device, task.answer_format, weights_dtype)
    identity["rows"] = {"ids": loaded.ids, "dropped": loaded.dropped_by_reason()}  # what loading left out, and why
    key = eval_key(identity)
    found = store.evaluation(generation, suite, key)
    if found is not None and found.finished_at is not None:
        return found
    with_paper = c.evaluation.paper_protocol and generation != BASE_GENERATION if paper is None else paper
    fixed_key = None
    if with_paper:
        fixed_key = evaluate(ctx, suite, BASE_GENERATION, paper=False).key
    store.start_evaluation(generation, suite, key, identity, fixed_key)
    greedy = Sampling(0.0, 1.0, c.generation.trial.max_new_tokens)
    greedy_r = Sampling(0.0, 1.0, c.generation.reflection.max_new_tokens)
    rows: list[tuple[str, str, str, float, int]] = []
    levels = question_levels(store, list(items))
    protocols = [EvalProtocol.STANDARD] + ([EvalProtocol.PAPER] if with_paper else [])
    reuse(store, generation, suite, identity, key, items)
    for protocol in protocols:
        fixed = None
        if protocol == EvalProtocol.PAPER:
            base_t1 = store.attempts(BASE_GENERATION, purpose(suite, EvalProtocol.STANDARD, fixed_key or ""))
            fixed = {a.question_id: a.id for a in base_t1 if a.trial == 1 and a.branch == 0 and a.question_id in items}
        spec = LoopSpec(purpose=purpose(suite, protocol, key), k=1, max_rounds=c.evaluation.max_rounds, trial=greedy,
                        reflect=greedy_r, pick=fixed_picker(ins), seed=c.seed, instructions={ins.id: ins},
                        fixed_trial1=fixed)
        run_loop(store, ctx.backend(), task, items, generation, gen_name(generation), adapter, spec,
                 lambda label, d, t, p=protocol, **kw: ctx.progress(f"eval {suite} {p} {label}", d, t, **kw), ctx.check_stop)
        result = outcomes(store, generation, suite, protocol, key, c.evaluation.max_rounds, fixed_key)
        parse = None
        if protocol == EvalProtocol.STANDARD:
            t1 = [a for a in store.attempts(generation, purpose(suite, protocol, key)) if a.trial == 1 and a.branch == 0]
            parse = {a.question_id: a.reason != "unparsed" for a in t1}
        for unit, per in by_unit(suite, result, levels).items():
            metrics = rates(per)
            if parse is not None:
                mine = [parse[q] for q in per["acc@t1"] if q in parse]
                metrics["parse_rate"] = (sum(mine) / max(len(mine), 1), len(mine))
            rows += [(unit, protocol, m, v, n) for m, (v, n) in metrics.items()]
    store.finish_evaluation(generation, suite, key, rows)
    found = store.evaluation(generation, suite, key)
    assert found is not None
    return found


def reuse(store: Store, generation: int, suite: str, identity: dict[str, Any], key: str, items: dict[int, Item]) -> int:
    """Copy into this evaluation the standard protocol's work on its questions from the generation's earlier
    evaluations that differ from it in their questions alone (a second look holds the first look's questions
    and more): only the new questions are then answered. A question whose text or gold answer is no longer
    what the store first recorded for it (a suite edited in place) is answered again. Returns the questions
    copied."""
    target = purpose(suite, EvalProtocol.STANDARD, key)
    stored = store.questions(list(items))
    question_ids = [q for q, it in items.items() if q in stored
                    and (stored[q].text, stored[q].gold) == (it.text, str(it.gold))]
    copied = 0
    for ev in store.finished_evaluations(generation, suite):
        if ev.key != key and same_but_questions(json.loads(ev.identity), identity):
            copied += store.copy_work(generation, purpose(suite, EvalProtocol.STANDARD, ev.key), target, question_ids)
    return copied


def stored_report(ctx: StageContext, evaluation: Evaluation) -> Report:
    out: Report = {}
    for r in ctx.store.eval_results(evaluation.generation_id, key=evaluation.key):
        out.setdefault(r.benchmark, {}).setdefault(r.protocol, {})[r.metric] = r.value
    return out
