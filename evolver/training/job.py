"""What the sft and dpo stages call: the parent's adapter, the child's spec, the child itself, the record.

A training stage reads its snapshots from the store, writes a typed spec and a data file into
`state/train/gen-NNNN/<phase>/`, runs the child process, verifies the adapter the child wrote
and records it (train logs and the generation's adapter) before the cycle marks the phase done.

Adapter lineage: `training.lineage = "continue"` starts SFT from the parent generation's
adapter (base when the parent has none); "restart" starts from base with a fresh LoRA.
DPO starts from this generation's SFT adapter (or, when SFT was skipped, from what the
generation inherited). The generation's adapter is the last one trained: dpo, else sft,
else a copy of the parent's (continue; `gen-NNNN/inherited`, same sha256) or none (restart).

Failures: a child that crashes or is killed raises `TrainingError` (its stderr tail in
`detail`); a missing or corrupt adapter raises `AdapterError`. Both leave the incumbent untouched.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from evolver.artifacts import AdapterError, adapter_dir, atomic_dir, verify_adapter
from evolver.context import StageContext, Stopped
from evolver.models import resolve_base
from evolver.states import gen_name
from evolver.training.data import TrainSet
from evolver.training.errors import TrainingError
from evolver.training.launch import child_command, run_child
from evolver.training.spec import AdapterRef, RefKind, Schedule, TrainSpec

SUMMARY_KEYS = ("adapter_path", "adapter_sha256", "steps", "seconds", "train_seconds", "peak_rss_mb", "peak_cuda_mb",
                "world_size", "peak_rss_mb_ranks", "peak_cuda_mb_ranks", "train_loss", "final_loss", "n_examples", "device", "bf16", "gradient_checkpointing", "init",
                "init_state_sha256", "trainable_params")


def work_dir(state_dir: Path, generation: int, phase: str) -> Path:
    """`state/train/gen-NNNN/{sft,dpo}`: spec, data, result and child log of one phase."""
    return Path(state_dir) / "train" / gen_name(generation) / phase


def parent_adapter(ctx: StageContext) -> AdapterRef | None:
    """The parent generation's adapter, verified; None when there is no parent or it has none."""
    if ctx.parent is None:
        return None
    parent = ctx.store.generation(ctx.parent)
    if parent is None or parent.adapter_path is None:
        return None
    try:
        path = verify_adapter(parent.adapter_path, parent.adapter_sha256)
    except AdapterError as err:
        raise AdapterError(f"{ctx.model_ref}: parent {gen_name(ctx.parent)} adapter refused: {err}") from None
    return AdapterRef(path=str(path), sha256=str(parent.adapter_sha256))


def inherit(ctx: StageContext, init: AdapterRef | None) -> dict[str, Any]:
    """Without SFT a continuing generation serves its parent's adapter, copied into its own folder.

    The copy hashes equal to the parent's (same files), and pruning or replacing this
    generation's adapters can never touch the parent's. The generation row records it.
    """
    if init is None:
        return {"adapter_path": None, "adapter_sha256": None, "inherited_from": None,
                "note": "no adapter trained; the generation serves the base model"}
    dest = adapter_dir(ctx.state_dir, ctx.generation, "inherited").resolve()
    with atomic_dir(dest) as tmp:
        for f in Path(init.path).iterdir():
            if f.is_file():
                shutil.copy2(f, tmp / f.name)
    verify_adapter(dest, init.sha256)
    ctx.store.update_generation(ctx.generation, adapter_path=str(dest), adapter_sha256=init.sha256)
    return {"adapter_path": str(dest), "adapter_sha256": init.sha256, "inherited_from": ctx.parent,
            "inherited_adapter": init.path,
            "note": f"no adapter trained; the generation inherits {gen_name(ctx.parent)}'s adapter"}


def build_spec(ctx: StageContext, phase: str, data: TrainSet, schedule: Schedule, init: AdapterRef | None,
               meta: dict[str, Any], ref: RefKind = "sft", ref_adapter: AdapterRef | None = None) -> TrainSpec:
    """Write the data file and the typed spec of one training phase (a previous attempt's leftovers go)."""
    cfg = ctx.cfg.config
    work = work_dir(ctx.state_dir, ctx.generation, phase)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    data_file = work / "data.jsonl"
    with data_file.open("w", encoding="utf-8") as fh:
        for ex in data.examples:
            fh.write(json.dumps(ex, ensure_ascii=False) + "\n")
    spec = TrainSpec(
        phase=phase,  # type: ignore[arg-type]
        generation=ctx.generation, base=resolve_base(cfg.model, ctx.cfg.root, ctx.state_dir), model=cfg.model, data=str(data_file),
        out_dir=str(adapter_dir(ctx.state_dir, ctx.generation, phase).resolve()), result=str(work / "result.json"),
        lora=cfg.training.lora, sft=cfg.training.sft if phase == "sft" else None,
        dpo=cfg.training.dpo if phase == "dpo" else None, schedule=schedule, seed=cfg.training.seed + ctx.generation,
        init_adapter=init, ref=ref, ref_adapter=ref_adapter,
        meta={**meta, "config_hash": ctx.cfg.hash, "sources": data.sources},
        report_to=list(cfg.training.report_to), runs_dir=str(ctx.state_dir / "runs"),
    )
    spec.dump(work / "spec.json")
    return spec


def train(ctx: StageContext, spec: TrainSpec) -> dict[str, Any]:
    """Run the child; return its verified result or raise TrainingError with the stderr tail."""
    tcfg = ctx.cfg.config.training
    work = Path(spec.result).parent
    cmd = child_command(work / "spec.json", tcfg.launcher, tcfg.accelerate_args)
    label = f"{gen_name(spec.generation)} {spec.phase}"
    outcome = run_child(cmd, work / "child.log", lambda step, total, loss: ctx.progress(spec.phase, step, total, loss=loss),
                        ctx.stop)
    if outcome.stopped:
        raise Stopped(f"{label}: stop requested during training")
    result_file = Path(spec.result)
    if outcome.returncode != 0 or not result_file.is_file():
        raise TrainingError(f"{label}: {outcome.error_line()}",
                            detail=f"{outcome.error_line()}\n--- stderr tail ---\n{outcome.stderr_tail}")
    result = json.loads(result_file.read_text())
    verify_adapter(result["adapter_path"], result["adapter_sha256"])
    return result


def record(ctx: StageContext, phase: str, result: dict[str, Any], detail: dict[str, Any]) -> dict[str, Any]:
    """Train logs, then the generation's adapter; the cycle marks the phase done after this returns."""
    ctx.store.add_train_logs(ctx.generation, phase, result["loss_curve"])
    ctx.store.update_generation(ctx.generation, adapter_path=result["adapter_path"],
                                adapter_sha256=result["adapter_sha256"])
    return {**{k: result.get(k) for k in SUMMARY_KEYS}, **detail}
