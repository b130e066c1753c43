"""Stage 3, sft: LoRA SFT on D+ (and T1 when configured) over the data window, in a child process.

Below `training.sft.min_samples` rows the stage is skipped (recorded with the counts) and a
continuing generation inherits its parent's adapter.
"""

from __future__ import annotations

from evolver.context import StageContext, StageResult
from evolver.training.data import sft_set, window
from evolver.training.job import build_spec, inherit, parent_adapter, record, train
from evolver.training.spec import Schedule


def run(ctx: StageContext) -> StageResult:
    tcfg = ctx.cfg.config.training
    init = parent_adapter(ctx) if tcfg.lineage == "continue" else None
    data = sft_set(ctx.store, window(ctx.store, ctx.generation, tcfg.data_window), tcfg.sft)
    n_rows = sum(data.counts.values())  # D+, plus D- and T1 when configured
    if n_rows < tcfg.sft.min_samples:
        kinds = ", ".join(f"{k} {v}" for k, v in data.counts.items()) or "no snapshot"
        reason = f"{n_rows} training rows ({kinds}), fewer than training.sft.min_samples={tcfg.sft.min_samples}"
        detail = {"reason": reason, "sources": data.sources, "lineage": tcfg.lineage, **inherit(ctx, init)}
        return StageResult(detail, skipped=reason)
    schedule = Schedule(epochs=tcfg.sft.epochs, learning_rate=tcfg.sft.learning_rate)
    spec = build_spec(ctx, "sft", data, schedule, init, meta={"mode": tcfg.sft.mode, "lineage": tcfg.lineage})
    result = train(ctx, spec)
    return StageResult(record(ctx, "sft", result, {
        "mode": tcfg.sft.mode, "lineage": tcfg.lineage, "n_dplus": data.counts.get("D+", 0),
        "n_t1": data.counts.get("T1", 0), "sources": data.sources, "schedule": schedule.model_dump(),
        "init_adapter": init.path if init else None, "init_adapter_sha256": init.sha256 if init else None}))
