"""The two training phases of a generation: `run_sft(ctx)` then `run_dpo(ctx)`.

Each reads its snapshots from the store, trains in a child process, verifies the adapter
the child wrote, and records it (train logs, generation row, phase detail) before marking
the phase done. Re-running a done phase whose adapter still verifies returns the recorded
result without training again.

Adapter lineage: `training.lineage = "continue"` starts SFT from the parent generation's
adapter (base when the parent has none); "restart" starts from base with a fresh LoRA.
DPO starts from this generation's SFT adapter (or, when SFT was skipped, from what the
generation inherited). The generation's adapter is the last one trained: dpo, else sft,
else a copy of the parent's (continue; `gen-NNNN/inherited`, same sha256) or none (restart).

Failures: a child that crashes or is killed marks the phase failed with its error and raises
`TrainingError`; a missing or corrupt adapter raises `AdapterError` (a TrainingError). Both
leave the incumbent generation untouched; the caller decides whether to retry or fail.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from evolver.context import PhaseContext, Stopped
from evolver.models import resolve_base
from evolver.training.adapters import adapter_dir, atomic_dir, verify_adapter
from evolver.training.data import TrainSet, dpo_set, sft_set, window
from evolver.training.errors import AdapterError, TrainingError
from evolver.training.launch import child_command, run_child
from evolver.training.spec import AdapterRef, TrainSpec

__all__ = ["AdapterError", "TrainingError", "run_dpo", "run_sft", "work_dir"]


def work_dir(state_dir: Path, generation: int, phase: str) -> Path:
    """`state/train/gen-NNNN/{sft,dpo}`: spec, data, result and child log of one phase."""
    return Path(state_dir) / "train" / f"gen-{generation:04d}" / phase


def run_sft(ctx: PhaseContext) -> dict[str, Any]:
    """LoRA SFT on D+ (and T1 when configured) over the data window."""
    done = _recorded(ctx, "sft")
    if done is not None:
        return done
    ctx.check_stop()
    tcfg = ctx.cfg.config.training
    ctx.store.phase_start(ctx.generation, "sft")
    try:
        init = _parent_adapter(ctx) if tcfg.lineage == "continue" else None
        data = sft_set(ctx.store, window(ctx.store, ctx.generation, tcfg.data_window), tcfg.sft)
        n_dplus = data.counts.get("D+", 0)
        n_rows = sum(data.counts.values())  # D+, plus D- and T1 when configured
        if n_rows < tcfg.sft.min_samples:
            kinds = ", ".join(f"{k} {v}" for k, v in data.counts.items()) or "no snapshot"
            detail = {"reason": f"{n_rows} training rows ({kinds}), fewer than "
                                f"training.sft.min_samples={tcfg.sft.min_samples}",
                      "sources": data.sources, "lineage": tcfg.lineage, **_inherit(ctx, init)}
            if detail["adapter_path"] is not None:
                ctx.store.update_generation(ctx.generation, adapter_path=detail["adapter_path"],
                                            adapter_sha256=detail["adapter_sha256"])
            ctx.store.phase_finish(ctx.generation, "sft", "skipped", detail=detail)
            return {"status": "skipped", **detail}
        hp = tcfg.sft.model_dump(include={"epochs", "learning_rate", "batch_size", "grad_accum", "max_length"})
        spec = _spec(ctx, "sft", data, hp, init, meta={"mode": tcfg.sft.mode, "lineage": tcfg.lineage})
        result = _train(ctx, spec)
        detail = {**_summary(result), "mode": tcfg.sft.mode, "lineage": tcfg.lineage, "n_dplus": n_dplus,
                  "n_t1": data.counts.get("T1", 0), "sources": data.sources,
                  "init_adapter": init.path if init else None, "init_adapter_sha256": init.sha256 if init else None}
        return _record(ctx, "sft", result, detail)
    except Stopped:
        raise  # not finished: the phase stays resumable
    except Exception as err:
        _fail(ctx, "sft", err)
        raise


def run_dpo(ctx: PhaseContext) -> dict[str, Any]:
    """DPO on D± (and Dpref) from this generation's SFT adapter."""
    done = _recorded(ctx, "dpo")
    if done is not None:
        return done
    ctx.check_stop()
    tcfg = ctx.cfg.config.training
    ctx.store.phase_start(ctx.generation, "dpo")
    try:
        sft = ctx.store.phase(ctx.generation, "sft")
        if sft is None or sft.status not in ("done", "skipped"):
            status = sft.status if sft is not None else "not started"
            raise TrainingError(f"gen-{ctx.generation:04d} dpo: the sft phase is {status}; run sft first")
        if not tcfg.dpo.enabled:
            return _skip(ctx, {"reason": "training.dpo.enabled = false"})
        data = dpo_set(ctx.store, window(ctx.store, ctx.generation, tcfg.data_window), tcfg.dpo)
        n_pairs = len(data.examples)
        if n_pairs < tcfg.dpo.min_pairs:
            return _skip(ctx, {"reason": f"{n_pairs} pairs ({'+'.join(tcfg.dpo.data)}), fewer than "
                                         f"training.dpo.min_pairs={tcfg.dpo.min_pairs}", "sources": data.sources})
        sdet = json.loads(sft.detail or "{}")
        start = None
        if sdet.get("adapter_path"):
            start = AdapterRef(str(verify_adapter(sdet["adapter_path"], sdet.get("adapter_sha256"))),
                               sdet["adapter_sha256"])
        ref_adapter = _parent_adapter(ctx) if tcfg.dpo.ref == "parent" else None
        hp = tcfg.dpo.model_dump(include={"epochs", "learning_rate", "batch_size", "grad_accum", "max_length", "beta",
                                             "sft_weight"})
        spec = _spec(ctx, "dpo", data, hp, start, meta={"ref": tcfg.dpo.ref, "data": tcfg.dpo.data},
                     ref=tcfg.dpo.ref, ref_adapter=ref_adapter)
        result = _train(ctx, spec)
        detail = {**_summary(result), "ref": tcfg.dpo.ref, "reference": result.get("reference"), "n_pairs": n_pairs,
                  "data": tcfg.dpo.data, "sources": data.sources,
                  "init_adapter": start.path if start else None, "init_adapter_sha256": start.sha256 if start else None,
                  "ref_adapter_sha256": ref_adapter.sha256 if ref_adapter else None}
        return _record(ctx, "dpo", result, detail)
    except Stopped:
        raise  # not finished: the phase stays resumable
    except Exception as err:
        _fail(ctx, "dpo", err)
        raise


# -- helpers -------------------------------------------------------------------------------------

def _fail(ctx: PhaseContext, phase: str, err: Exception) -> None:
    error = err.detail if isinstance(err, TrainingError) else f"{type(err).__name__}: {err}"
    ctx.store.phase_finish(ctx.generation, phase, "failed", error=error)


def _recorded(ctx: PhaseContext, phase: str) -> dict[str, Any] | None:
    """The recorded result of a finished phase, if it still holds (adapter verifies)."""
    row = ctx.store.phase(ctx.generation, phase)
    if row is None or row.status not in ("done", "skipped"):
        return None
    detail = json.loads(row.detail or "{}")
    if detail.get("adapter_path") is None:
        return {"status": row.status, **detail}
    try:
        verify_adapter(detail["adapter_path"], detail.get("adapter_sha256"))
    except AdapterError:
        return None  # the artifact is gone or damaged: run the phase again
    gen = ctx.store.generation(ctx.generation)
    if phase == "dpo" or (gen is not None and gen.adapter_path is None):
        ctx.store.update_generation(ctx.generation, adapter_path=detail["adapter_path"],
                                    adapter_sha256=detail["adapter_sha256"])
    return {"status": row.status, **detail}


def _parent_adapter(ctx: PhaseContext) -> AdapterRef | None:
    """The parent generation's adapter, verified; None when there is no parent or it has none."""
    parent_id = ctx.parent
    if parent_id is None:
        return None
    parent = ctx.store.generation(parent_id)
    if parent is None or parent.adapter_path is None:
        return None
    try:
        path = verify_adapter(parent.adapter_path, parent.adapter_sha256)
    except AdapterError as err:
        raise AdapterError(f"gen-{ctx.generation:04d}: parent gen-{parent_id:04d} adapter refused: {err}") from None
    return AdapterRef(str(path), str(parent.adapter_sha256))


def _inherit(ctx: PhaseContext, init: AdapterRef | None) -> dict[str, Any]:
    """Without SFT a continuing generation serves its parent's adapter, copied into its own folder.

    The copy hashes equal to the parent's (same files), and pruning or replacing this
    generation's adapters can never touch the parent's.
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
    return {"adapter_path": str(dest), "adapter_sha256": init.sha256, "inherited_from": ctx.parent,
            "inherited_adapter": init.path,
            "note": f"no adapter trained; the generation inherits gen-{ctx.parent:04d}'s adapter"}


def _skip(ctx: PhaseContext, detail: dict[str, Any]) -> dict[str, Any]:
    ctx.store.phase_finish(ctx.generation, "dpo", "skipped", detail=detail)
    return {"status": "skipped", **detail}


def _spec(ctx: PhaseContext, phase: str, data: TrainSet, hp: dict[str, Any], init: AdapterRef | None,
          meta: dict[str, Any], ref: str = "sft", ref_adapter: AdapterRef | None = None) -> TrainSpec:
    cfg = ctx.cfg.config
    work = work_dir(ctx.state_dir, ctx.generation, phase)
    if work.exists():
        shutil.rmtree(work)  # a previous attempt's leftovers; its log is superseded
    work.mkdir(parents=True)
    data_file = work / "data.jsonl"
    with data_file.open("w", encoding="utf-8") as fh:
        for ex in data.examples:
            fh.write(json.dumps(ex, ensure_ascii=False) + "\n")
    spec = TrainSpec(
        phase=phase,  # type: ignore[arg-type]
        generation=ctx.generation, base=resolve_base(cfg.model, ctx.cfg.root),
        model=cfg.model.model_dump(mode="json"), data=str(data_file),
        out_dir=str(adapter_dir(ctx.state_dir, ctx.generation, phase).resolve()), result=str(work / "result.json"),
        lora=cfg.training.lora.model_dump(mode="json"), hparams=hp, seed=cfg.training.seed + ctx.generation,
        init_adapter=init, ref=ref, ref_adapter=ref_adapter,  # type: ignore[arg-type]
        threads=cfg.model.threads, meta={**meta, "config_hash": ctx.cfg.hash, "sources": data.sources},
    )
    spec.dump(work / "spec.json")
    return spec


def _train(ctx: PhaseContext, spec: TrainSpec) -> dict[str, Any]:
    """Run the child; return its verified result or raise TrainingError with the stderr tail."""
    tcfg = ctx.cfg.config.training
    work = Path(spec.result).parent
    cmd = child_command(work / "spec.json", tcfg.launcher, tcfg.accelerate_args)
    label = f"gen-{spec.generation:04d} {spec.phase}"
    outcome = run_child(cmd, work / "child.log", lambda step, total, loss: ctx.progress(spec.phase, step, total),
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


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    keep = ("adapter_path", "adapter_sha256", "steps", "seconds", "train_seconds", "peak_rss_mb", "peak_cuda_mb",
            "train_loss", "final_loss", "n_examples", "device", "bf16", "gradient_checkpointing", "init",
            "init_state_sha256", "trainable_params")
    return {k: result.get(k) for k in keep}


def _record(ctx: PhaseContext, phase: str, result: dict[str, Any], detail: dict[str, Any]) -> dict[str, Any]:
    """Logs, then the generation's adapter, then the phase: done is written last."""
    ctx.store.add_train_logs(ctx.generation, phase, result["loss_curve"])
    ctx.store.update_generation(ctx.generation, adapter_path=result["adapter_path"],
                                adapter_sha256=result["adapter_sha256"])
    ctx.store.phase_finish(ctx.generation, phase, "done", detail=detail)
    return {"status": "done", **detail}
