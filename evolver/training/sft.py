"""LoRA SFT on D+ with trl's SFTTrainer (child side).

Examples are prompt-completion pairs, so trl masks the prompt (labels -100) and learns
only the completion, with EOS appended so generation learns to stop.
Schedule: linear decay, no warmup (the paper's SFT scripts use the HF defaults).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from evolver.training.runtime import (
    Policy,
    callbacks,
    finish,
    load_policy,
    normalize_prompts,
    read_jsonl,
    trainer_args,
)
from evolver.training.spec import TrainSpec


def build_sft_trainer(policy: Policy, examples: list[dict[str, str]], spec: TrainSpec, work: Path,
                      extra_callbacks: list[Any] | None = None) -> Any:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(**trainer_args(spec, policy.plan, work), completion_only_loss=True,
                     lr_scheduler_type="linear", warmup_steps=0)
    dataset = Dataset.from_list(normalize_prompts(examples, policy.tokenizer))
    return SFTTrainer(model=policy.model, args=args, train_dataset=dataset, processing_class=policy.tokenizer,
                      callbacks=extra_callbacks)


def train_sft(spec: TrainSpec) -> dict[str, Any]:
    started = time.perf_counter()
    examples = read_jsonl(spec.data)
    policy = load_policy(spec)
    curve: list[dict[str, Any]] = []
    trainer = build_sft_trainer(policy, examples, spec, Path(spec.result).parent / "trainer",
                                callbacks(spec, curve))
    out = trainer.train()
    return finish(spec, policy, trainer, curve, started, len(examples),
                  {"train_loss": out.training_loss, "train_seconds": out.metrics["train_runtime"]})
