"""Training sets built from the store's dataset snapshots (D+, D-, R1, T1; D±, Dpref).

Every example is a prompt-completion pair of plain strings, so trl puts the loss on the
completion only. The prompts are the exact strings the reflection engine sent; the
completions are exactly the text those prompts are continued with at inference
(`prompts.retry_prompt` / `one_stage_completion`), so training and inference never drift.

SFT modes:
- one_stage: reflect_prompt -> reflection + solution cue + trial 2 (one example per D+ row).
- two_stage: one *mixed* dataset, two examples per D+ row: reflect_prompt -> reflection
  (self-reflection) and retry_prompt -> trial 2 (self-correction). The paper trains the two
  stages as two consecutive full fine-tunes; with one LoRA adapter per generation, one mixed
  pass teaches both skills without the second stage eroding the first, and keeps one SFT
  adapter and one phase per generation.
R1 (correct retries as first-trial answers) and T1 (correct first trials) train first trials:
  trial-1 prompt -> solution, so the solver evolves next to the reflection skill (STaR).

A window of generations replays earlier snapshots; an example that appears in more than one
(a question asked again, an identical pair) is trained once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evolver.config.schema import DPOConfig, SFTConfig
from evolver.reflection import prompts
from evolver.store import Store


@dataclass
class TrainSet:
    """Examples plus where they came from (recorded in the phase detail)."""

    examples: list[dict[str, str]]
    sources: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # rows read per kind, before de-duplication
    duplicates: int = 0  # rows dropped because the same example was already in the set
    _seen: set[tuple[str, ...]] = field(default_factory=set, repr=False)

    def add(self, example: dict[str, str]) -> None:
        key = tuple(example[k] for k in sorted(example))
        if key in self._seen:
            self.duplicates += 1
            return
        self._seen.add(key)
        self.examples.append(example)


def window(store: Store, generation: int, n: int) -> list[int]:
    """This generation and its ancestors, newest first, at most `n` of them."""
    out: list[int] = []
    gen_id: int | None = generation
    while gen_id is not None and len(out) < n:
        out.append(gen_id)
        row = store.generation(gen_id)
        gen_id = row.parent_id if row is not None else None
    return out


def _snapshots(store: Store, gens: list[int], kind: str, ts: TrainSet) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for g in gens:
        ds = store.find_dataset(g, kind)
        if ds is None:
            continue
        got = store.dataset_rows(ds.id)  # type: ignore[arg-type]
        ts.sources.append({"generation": g, "kind": kind, "dataset_id": ds.id, "sha256": ds.content_hash,
                           "rows": len(got)})
        rows.extend(got)
    ts.counts[kind] = ts.counts.get(kind, 0) + len(rows)
    return rows


def reflection_completion(reflect_prompt: str, reflection: str) -> str:
    """What follows the reflect prompt in the retry prompt, up to the solution cue."""
    return prompts.retry_prompt(reflect_prompt, reflection)[len(reflect_prompt):-len(prompts.SOLUTION_CUE)]


def trial2_completion(reflection: str, trial2: str) -> str:
    """What follows the retry prompt in a one-stage completion: trial 2 as inference sees it."""
    full = prompts.one_stage_completion(reflection, trial2)
    return full[len(prompts.retry_prompt("", reflection)):]


def sft_set(store: Store, gens: list[int], cfg: SFTConfig) -> TrainSet:
    ts = TrainSet([])
    for kind in cfg.data:
        for row in _snapshots(store, gens, kind, ts):
            if kind in ("R1", "T1"):  # first trials: prompt -> solution
                ts.add({"prompt": row["prompt"], "completion": row["completion"]})
            elif cfg.mode == "answers":  # rejection-sampling fine-tuning: the corrected answer, no reflection
                if row.get("trial1_prompt"):
                    ts.add({"prompt": row["trial1_prompt"], "completion": row["trial2"]})
            elif cfg.mode == "one_stage":
                ts.add({"prompt": row["reflect_prompt"],
                        "completion": prompts.one_stage_completion(row["reflection"], row["trial2"])})
            else:
                ts.add({"prompt": row["reflect_prompt"],
                        "completion": reflection_completion(row["reflect_prompt"], row["reflection"])})
                ts.add({"prompt": row["retry_prompt"], "completion": trial2_completion(row["reflection"], row["trial2"])})
    return ts


def dpo_set(store: Store, gens: list[int], cfg: DPOConfig) -> TrainSet:
    """D± and/or Dpref pairs; chosen/rejected are reflections, completed as at inference."""
    ts = TrainSet([])
    kinds = [{"dpm": "D±", "dpref": "Dpref"}[d] for d in cfg.data]
    for kind in kinds:
        for row in _snapshots(store, gens, kind, ts):
            p = row["prompt"]
            ts.add({"prompt": p, "chosen": reflection_completion(p, row["chosen"]),
                    "rejected": reflection_completion(p, row["rejected"])})
    return ts
