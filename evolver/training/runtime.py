"""Child-side pieces shared by SFT and DPO: the starting policy, callbacks, the result.

Runs only inside the training child (heavy imports at call time), never in the daemon.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evolver.training.adapters import load_adapter, save_adapter, tensors_sha256
from evolver.training import memory
from evolver.training.device import DevicePlan, plan_device
from evolver.training.spec import TrainSpec

PROGRESS_PREFIX = "@@evolver-progress "
LOG_KEYS = ("loss", "learning_rate", "grad_norm", "epoch", "rewards/margins", "rewards/accuracies")


@dataclass
class Policy:
    model: Any  # PeftModel with a trainable "default" adapter
    tokenizer: Any
    plan: DevicePlan
    init: str  # "fresh" | "adapter"
    init_state_sha256: str  # tensors_sha256 of the trainable adapter before any step
    n_params: int
    n_trainable: int


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def normalize_prompts(examples: list[dict[str, Any]], tokenizer: Any) -> list[dict[str, Any]]:
    """Token ids exactly as the backend sent them, through trl's string tokenisation.

    Chat prompts are stored rendered, BOS text included, and the backend encodes them
    without special tokens; trl encodes with them, which would double the BOS. Dropping
    the leading BOS text when the tokenizer adds one itself gives the same ids.
    """
    bos = tokenizer.bos_token
    if not bos or tokenizer("x").input_ids[:1] != [tokenizer.bos_token_id]:
        return examples
    return [{**ex, "prompt": ex["prompt"][len(bos):]} if ex["prompt"].startswith(bos) else ex for ex in examples]


def load_policy(spec: TrainSpec) -> Policy:
    """Base model + the starting adapter (continued, trainable) or a fresh LoRA."""
    import torch
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict

    from evolver.models import load_causal_lm, load_tokenizer, pick_device

    torch.manual_seed(spec.seed)
    mcfg = spec.model
    device = pick_device(mcfg)
    load_on = f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if device == "cuda" else device  # one GPU per rank
    tok = load_tokenizer(spec.base, mcfg.revision)
    tok.padding_side = "right"  # training pads right; generation (left) is the backends' business
    base = load_causal_lm(spec.base, mcfg, load_on)
    n_params = sum(p.numel() for p in base.parameters())
    plan = plan_device(device, str(next(base.parameters()).dtype).removeprefix("torch."), n_params)  # as loaded
    if spec.init_adapter is not None:
        model = load_adapter(base, spec.init_adapter.path, spec.init_adapter.sha256, trainable=True)
        init = "adapter"
    else:
        lcfg = LoraConfig(r=spec.lora.r, lora_alpha=spec.lora.alpha, lora_dropout=spec.lora.dropout,
                          target_modules=spec.lora.target_modules, task_type="CAUSAL_LM")
        model = get_peft_model(base, lcfg)
        init = "fresh"
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    init_sha = tensors_sha256(get_peft_model_state_dict(model, adapter_name="default"))
    return Policy(model, tok, plan, init, init_sha, n_params, n_trainable)


def world_size() -> int:
    """Ranks in this training (torchrun and accelerate set WORLD_SIZE; one process without them)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def per_rank_batch(batch_size: int, grad_accum: int, world: int) -> tuple[int, int]:
    """(per-device batch, accumulation) keeping the configured batch (batch_size x grad_accum) global.

    The config's batch is what one optimizer step sees, so the schedule's steps and learning rate
    mean the same on 1 or N ranks: the batch is split across ranks, else the accumulation; when
    neither divides, each rank takes the whole batch (N times as many rows per step).
    """
    if batch_size % world == 0:
        return batch_size // world, grad_accum
    if grad_accum % world == 0:
        return batch_size, grad_accum // world
    return batch_size, grad_accum


def trainer_args(spec: TrainSpec, plan: DevicePlan, work: Path) -> dict[str, Any]:
    """TrainingArguments shared by SFTConfig and DPOConfig: the schedule and this phase's batch shape."""
    batch_size, grad_accum, max_length = spec.batch
    batch_size, grad_accum = per_rank_batch(batch_size, grad_accum, world_size())
    return dict(
        output_dir=str(work), num_train_epochs=spec.schedule.epochs, max_steps=spec.schedule.max_steps,
        learning_rate=spec.schedule.learning_rate, per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=grad_accum, max_length=max_length, logging_steps=1, save_strategy="no",
        report_to=tracking(spec), run_name=run_name(spec), disable_tqdm=True, seed=spec.seed, data_seed=spec.seed,
        dataloader_num_workers=0, **plan.trainer_kwargs(),
    )


def run_name(spec: TrainSpec) -> str:
    return f"gen-{spec.generation:04d}-{spec.phase}"


def tracking(spec: TrainSpec) -> list[str] | str:
    """`report_to` for the trainer ("none" when no tracker is configured). TensorBoard's event files go to
    RUNS/gen-NNNN-<phase> (transformers reads the folder from TENSORBOARD_LOGGING_DIR), one run per phase,
    so `tensorboard --logdir STATE/runs` shows the lineage."""
    if not spec.report_to:
        return "none"
    if "tensorboard" in spec.report_to and spec.runs_dir:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(Path(spec.runs_dir) / run_name(spec))
    return list(spec.report_to)


def callbacks(spec: TrainSpec, curve: list[dict[str, Any]]) -> list[Any]:
    """Loss curve into `curve`, progress lines on stdout for the parent, a Rich bar on stderr."""
    from transformers import TrainerCallback

    class Metrics(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                curve.append({"step": state.global_step, **{k: logs[k] for k in LOG_KEYS if k in logs}})

    class Progress(TrainerCallback):
        def __init__(self) -> None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self.bar = Bar(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(),
                           console=Console(stderr=True), transient=False)
            self.task: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if not state.is_world_process_zero:
                return
            self.bar.start()
            self.task = self.bar.add_task(f"gen-{spec.generation:04d} {spec.phase}", total=state.max_steps, loss="-")

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
            if not logs or "loss" not in logs or not state.is_world_process_zero:  # one progress line per step
                return
            loss = logs["loss"]
            self.bar.update(self.task, completed=state.global_step, loss=f"{loss:.4f}")
            line = {"phase": spec.phase, "step": state.global_step, "total": state.max_steps, "loss": loss}
            sys.stdout.write(PROGRESS_PREFIX + json.dumps(line) + "\n")
            sys.stdout.flush()

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.is_world_process_zero:
                self.bar.stop()

    return [Metrics(), Progress()]


Builder = Callable[[Policy, list[dict[str, Any]], TrainSpec, Path, list[Any]], tuple[Any, dict[str, Any]]]


def train(spec: TrainSpec, build: Builder) -> dict[str, Any]:
    """Read the data, load the starting policy, build the phase's trainer, train, and describe the run."""
    started = time.perf_counter()
    rows = read_jsonl(spec.data)
    policy = load_policy(spec)
    curve: list[dict[str, Any]] = []
    trainer, extra = build(policy, rows, spec, Path(spec.result).parent / "trainer", callbacks(spec, curve))
    out = trainer.train()
    return finish(spec, policy, trainer, curve, started, len(rows),
                  {"train_loss": out.training_loss, "train_seconds": out.metrics["train_runtime"], **extra})


def is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def leave_ranks() -> None:
    """End distributed training together: wait for every rank, then close the process group.

    A rank that exits while gloo still holds its peers' connections can see a peer close a socket
    under it during interpreter teardown; gloo then aborts the process (SIGABRT) and torchrun
    reports a failed training whose work was done. A no-op in one process.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def finish(spec: TrainSpec, policy: Policy, trainer: Any, curve: list[dict[str, Any]], started: float,
           n_examples: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Save the adapter atomically, hash it, and describe the run (the child's result JSON)."""
    seconds = time.perf_counter() - started
    state = trainer.state
    meta = {**spec.meta, "phase": spec.phase, "generation": spec.generation, "base": spec.base,
            "init_adapter_sha256": spec.init_adapter.sha256 if spec.init_adapter else None,
            "lora": spec.lora.model_dump(mode="json"), "schedule": spec.schedule.model_dump(mode="json"),
            "seed": spec.seed, "steps": state.global_step}
    model = trainer.accelerator.unwrap_model(trainer.model)
    sha = save_adapter(model, Path(spec.out_dir), spec.base, meta) if is_main_process() else None
    rss, cuda = memory.per_rank(memory.peak_rss_mb()), memory.per_rank(memory.peak_cuda_mb())
    return {
        "adapter_path": str(Path(spec.out_dir).resolve()), "adapter_sha256": sha,
        "steps": state.global_step, "seconds": round(seconds, 3),
        "peak_rss_mb": rss[0], "peak_cuda_mb": cuda[0], "world_size": len(rss),
        "peak_rss_mb_ranks": rss if len(rss) > 1 else None, "peak_cuda_mb_ranks": cuda if len(cuda) > 1 else None,
        "loss_curve": curve, "final_loss": curve[-1]["loss"] if curve else None,
        "n_examples": n_examples, "device": policy.plan.device, "bf16": policy.plan.bf16,
        "gradient_checkpointing": policy.plan.gradient_checkpointing, "init": policy.init,
        "init_state_sha256": policy.init_state_sha256, "n_params": policy.n_params,
        "trainable_params": policy.n_trainable, **(extra or {}),
    }
