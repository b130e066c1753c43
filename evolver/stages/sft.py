"""Stage 3, sft: LoRA SFT over the data window, in a child process.

The data is `training.sft.data`: D+ (reflection -> correct retry: the reflection skill) and R1
(correct retries as first-trial answers: the solver), by default; T1 and D- when configured.
Snapshots of the window's generations are replayed and de-duplicated; the steps follow the number
of examples, capped (evolver.training.schedule). Below `training.sft.min_samples` examples the
stage is skipped (recorded with the counts) and a continuing generation inherits its parent's adapter.
"""

from __future__ import annotations

from evolver.context import StageContext, StageResult
from evolver.training.data import sft_set, window
from evolver.training.job import build_spec, inherit, parent_adapter, record, train
from evolver.training.schedule import depth, plan


def run(ctx: StageContext) -> StageResult:
    tcfg = ctx.cfg.config.training
    init = parent_adapter(ctx) if tcfg.lineage == "continue" else None
    data = sft_set(ctx.store, window(ctx.store, ctx.generation, tcfg.data_window), tcfg.sft)
    n_rows = len(data.examples)  # after de-duplication
    if n_rows < tcfg.sft.min_samples:
        kinds = ", ".join(f"{k} {v}" for k, v in data.counts.items()) or "no snapshot"
        reason = f"{n_rows} training rows ({kinds}), fewer than training.sft.min_samples={tcfg.sft.min_samples}"
        detail = {"reason": reason, "sources": data.sources, "lineage": tcfg.lineage, **inherit(ctx, init)}
        return StageResult(detail, skipped=reason)
    schedule = plan(n_rows, tcfg.sft, depth(ctx.store, ctx.generation), tcfg.lr_decay, tcfg.lr_floor)
    spec = build_spec(ctx, "sft", data, schedule, init, meta={"mode": tcfg.sft.mode, "lineage": tcfg.lineage})
    result = train(ctx, spec)
    return StageResult(record(ctx, "sft", result, {
        "mode": tcfg.sft.mode, "lineage": tcfg.lineage, "n_dplus": data.counts.get("D+", 0),
        "n_r1": data.counts.get("R1", 0), "n_t1": data.counts.get("T1", 0), "examples": n_rows,
        "duplicates": data.duplicates, "sources": data.sources, "schedule": schedule.model_dump(),
        "init_adapter": init.path if init else None, "init_adapter_sha256": init.sha256 if init else None}))
