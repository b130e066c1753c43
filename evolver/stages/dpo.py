"""Stage 4, dpo: DPO on D± (and Dpref when configured) from this generation's SFT adapter, in a child process.

Skipped (recorded) when disabled or below `training.dpo.min_pairs` pairs; the generation then
keeps the adapter SFT left it.
"""

from __future__ import annotations

import json

from evolver.artifacts import verify_adapter
from evolver.context import StageContext, StageResult
from evolver.states import FINISHED, Stage
from evolver.training.data import dpo_set, window
from evolver.training.errors import TrainingError
from evolver.training.job import build_spec, parent_adapter, record, train
from evolver.training.schedule import depth, plan
from evolver.training.spec import AdapterRef


def run(ctx: StageContext) -> StageResult:
    tcfg = ctx.cfg.config.training
    sft = ctx.store.phase(ctx.generation, Stage.SFT)
    if sft is None or sft.status not in FINISHED:
        status = sft.status if sft is not None else "not started"
        raise TrainingError(f"{ctx.model_ref} dpo: the sft phase is {status}; run sft first")
    if not tcfg.dpo.enabled:
        return StageResult({}, skipped="training.dpo.enabled = false")
    data = dpo_set(ctx.store, window(ctx.store, ctx.generation, tcfg.data_window), tcfg.dpo)
    n_pairs = len(data.examples)
    if n_pairs < tcfg.dpo.min_pairs:
        reason = (f"{n_pairs} pairs ({'+'.join(tcfg.dpo.data)}), fewer than "
                  f"training.dpo.min_pairs={tcfg.dpo.min_pairs}")
        return StageResult({"reason": reason, "sources": data.sources}, skipped=reason)
    sdet = json.loads(sft.detail or "{}")
    start = None
    if sdet.get("adapter_path"):
        start = AdapterRef(path=str(verify_adapter(sdet["adapter_path"], sdet.get("adapter_sha256"))),
                           sha256=sdet["adapter_sha256"])
    ref_adapter = parent_adapter(ctx) if tcfg.dpo.ref == "parent" else None
    schedule = plan(n_pairs, tcfg.dpo, depth(ctx.store, ctx.generation), tcfg.lr_decay, tcfg.lr_floor)
    spec = build_spec(ctx, "dpo", data, schedule, start, meta={"ref": tcfg.dpo.ref, "data": tcfg.dpo.data},
                      ref=tcfg.dpo.ref, ref_adapter=ref_adapter)
    result = train(ctx, spec)
    return StageResult(record(ctx, "dpo", result, {
        "ref": tcfg.dpo.ref, "reference": result.get("reference"), "n_pairs": n_pairs, "examples": n_pairs,
        "duplicates": data.duplicates, "data": tcfg.dpo.data,
        "sources": data.sources, "schedule": schedule.model_dump(),
        "init_adapter": start.path if start else None, "init_adapter_sha256": start.sha256 if start else None,
        "ref_adapter_sha256": ref_adapter.sha256 if ref_adapter else None}))
