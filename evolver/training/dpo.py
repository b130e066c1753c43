"""DPO on D± / Dpref with trl's DPOTrainer, starting from the SFT adapter (child side).

Only the reflection is optimised: the prompt is the reflect prompt, chosen/rejected are
two reflections to it (as in the paper).

Reference model (`training.dpo.ref`):
- "sft" (default): the policy DPO starts from, i.e. this generation's SFT adapter. trl,
  given a trainable PeftModel and `ref_model=None`, copies the adapter into a frozen "ref"
  adapter: the reference costs one extra LoRA, not a second model. This is standard DPO
  (reference = the SFT policy) and what the paper does (a frozen copy of the initial model);
  it keeps the KL anchor on the model that produced the pairs' distribution.
- "parent": the parent generation's adapter, loaded as the frozen "ref" adapter (base when
  the parent has none): anchors each generation to the previous promoted one.
- "base": adapters disabled: anchors every generation to the base model, the strongest
  brake on drift but a poor fit once SFT has moved the policy far from base.
Schedule: cosine with 10% warmup, as in the paper's recipe.

Loss: sigmoid DPO plus `sft_weight` x NLL of the chosen reflection (RPO, Pang et al. 2024). Plain
DPO on clean pairs drives both likelihoods down until the policy forgets how to write a
reflection at all (measured on the embedded world: one generation of D± pairs took the
paper-protocol acc@t2 from 95.0 after SFT to 57.6, the reflections cut to one sentence);
the NLL term anchors the chosen reflections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evolver.artifacts import verify_adapter
from evolver.training.runtime import Policy, normalize_prompts, trainer_args
from evolver.training.spec import TrainSpec


def build_dpo_trainer(policy: Policy, pairs: list[dict[str, str]], spec: TrainSpec, work: Path,
                      extra_callbacks: list[Any] | None = None) -> tuple[Any, str]:
    """The trainer and what its reference is ("sft" | "parent" | "base")."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    settings = spec.dpo
    assert settings is not None  # a dpo spec carries its DPO settings (TrainSpec checks it)
    sft_weight = settings.sft_weight
    losses = {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, sft_weight]} if sft_weight else {}
    args = DPOConfig(**trainer_args(spec, policy.plan, work), beta=settings.beta,
                     lr_scheduler_type="cosine", warmup_steps=0.1, **losses)
    dataset = Dataset.from_list(normalize_prompts(pairs, policy.tokenizer))
    trainer = DPOTrainer(model=policy.model, ref_model=None, args=args, train_dataset=dataset,
                         processing_class=policy.tokenizer, callbacks=extra_callbacks)
    return trainer, set_reference(trainer.model, spec)


def set_reference(model: Any, spec: TrainSpec) -> str:
    """Make the frozen "ref" adapter match `spec.ref`; returns what the reference is.

    trl has already copied the starting adapter into "ref" (= the "sft" choice). With no
    "ref" adapter trl computes reference log-probs with adapters disabled (= base).
    """
    if spec.ref == "sft":
        return "sft"
    model.delete_adapter("ref")
    if spec.ref == "parent" and spec.ref_adapter is not None:
        path = verify_adapter(spec.ref_adapter.path, spec.ref_adapter.sha256)
        model.load_adapter(str(path), adapter_name="ref", is_trainable=False)  # "default" stays active
        return "parent"
    return "base"
