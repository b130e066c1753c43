"""LoRA SFT on D+ with trl's SFTTrainer (child side).

Examples are prompt-completion pairs, so trl masks the prompt (labels -100) and learns
only the completion, with EOS appended so generation learns to stop.
Schedule: linear decay, no warmup (the paper's SFT scripts use the HF defaults).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evolver.training.runtime import Policy, normalize_prompts, trainer_args
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
