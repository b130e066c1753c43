"""The practical limit for evolver's training: a plain PyTorch loop over what trl would train on.

Given a phase's spec (written by the sft or dpo stage), it loads the same policy (base model and LoRA,
or the adapter DPO starts from), lets trl build its trainer only to tokenize and collate the rows
exactly as it would (same token ids, padding and batch shapes), collates every batch before the clock
starts, and then times nothing but forward, backward and the AdamW step for the same number of steps:
SFT as cross-entropy on the completion tokens; DPO as trl computes it with evolver's settings, a frozen
reference forward through the "ref" adapter, then the policy forward on chosen and rejected together,
the sigmoid loss and the NLL of the chosen completion (`sft_weight`).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import torch

from evolver.training.runtime import Policy, load_policy, read_jsonl
from evolver.training.spec import TrainSpec


def batches(trainer: Any, steps: int, batch_size: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """The first `steps` batches of seeded epochs, each cut into `batch_size` rows with a short last batch
    (as the trainer's dataloader does), collated by trl, on the model's device."""
    ds = trainer.train_dataset
    rng = random.Random(seed)
    chunks: list[list[int]] = []
    while len(chunks) < steps:
        epoch = list(range(len(ds)))
        rng.shuffle(epoch)
        chunks += [epoch[i : i + batch_size] for i in range(0, len(epoch), batch_size)]
    device = next(trainer.model.parameters()).device  # the trainer moves batches there itself; the loop must too
    return [
        {
            k: v.to(device) if isinstance(v, torch.Tensor) else v
            for k, v in trainer.data_collator([ds[i] for i in chunk]).items()
        }
        for chunk in chunks[:steps]
    ]


def row_tokens(trainer: Any, phase: str) -> list[int]:
    """Tokens the model reads per row: prompt + completion (SFT), both prompt + completion pairs (DPO)."""
    ds = trainer.train_dataset
    if phase == "sft":
        return [len(ids) for ids in ds["input_ids"]]
    return [2 * len(p) + len(c) + len(r) for p, c, r in zip(ds["prompt_ids"], ds["chosen_ids"], ds["rejected_ids"])]


def completion_logps(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence sum of the completion tokens' log-probabilities, and their count."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    target = batch["input_ids"][:, 1:]
    mask = batch["completion_mask"][:, 1:].float()
    logp = torch.gather(logits.float().log_softmax(-1), 2, target.unsqueeze(-1)).squeeze(-1)
    return (logp * mask).sum(-1), mask.sum(-1)


def dpo_loss(model: Any, batch: dict[str, torch.Tensor], beta: float, sft_weight: float) -> torch.Tensor:
    with torch.no_grad():
        model.set_adapter("ref")
        ref, _ = completion_logps(model, batch)
        model.set_adapter("default")
    pol, n = completion_logps(model, batch)
    half = pol.shape[0] // 2  # trl's collator puts the chosen rows first, then the rejected ones
    margin = (pol[:half] - ref[:half]) - (pol[half:] - ref[half:])
    loss = -torch.nn.functional.logsigmoid(beta * margin).mean()
    if sft_weight:
        loss = loss + sft_weight * (-(pol[:half] / n[:half].clamp(min=1))).mean()
    return loss


def run(spec_path: str | Path, steps: int) -> dict[str, Any]:
    """Time `steps` plain optimizer steps of the phase `spec_path` describes; tokens are the batches' real ones."""
    spec = TrainSpec.load(spec_path)
    if spec.model.threads:
        torch.set_num_threads(spec.model.threads)
    rows = read_jsonl(spec.data)
    policy: Policy = load_policy(spec)
    work = Path(spec_path).parent / "plain"
    if spec.phase == "sft":
        from evolver.training.sft import build_sft_trainer

        trainer = build_sft_trainer(policy, rows, spec, work)
    else:
        from evolver.training.dpo import build_dpo_trainer

        trainer, _ = build_dpo_trainer(policy, rows, spec, work)
    model = trainer.model
    model.train()
    batch_size = spec.batch[0]
    data = batches(trainer, steps, batch_size, spec.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=spec.schedule.learning_rate)
    tokens = int(sum(int(b["attention_mask"].sum()) for b in data))
    rows_seen = sum(int(b["attention_mask"].shape[0]) for b in data) // (1 if spec.phase == "sft" else 2)
    per_row = row_tokens(trainer, spec.phase)
    sync = torch.cuda.synchronize if data and data[0]["input_ids"].is_cuda else (lambda: None)  # GPU work is async
    sync()
    start = time.perf_counter()
    for batch in data:
        if spec.phase == "sft":
            loss = model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
            ).loss
        else:
            assert spec.dpo is not None
            loss = dpo_loss(model, batch, spec.dpo.beta, spec.dpo.sft_weight)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    sync()
    seconds = time.perf_counter() - start
    return {
        "steps": steps,
        "seconds": round(seconds, 3),
        "tokens": tokens,
        "tokens_per_s": round(tokens / seconds, 1),
        "rows_seen": rows_seen,
        "mean_row_tokens": sum(per_row) / len(per_row),
        "last_loss": round(loss.item(), 4),
    }
