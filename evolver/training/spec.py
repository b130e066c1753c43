"""What the parent hands the training child: one JSON file of typed settings, no shared memory.

The spec carries the config's own sections (`ModelConfig`, `LoraConfig`, `SFTConfig` or
`DPOConfig`), validated on both sides of the process boundary: one default per setting (the
schema's), and a setting the child does not know is an error rather than silently dropped. It
names everything the child needs (base model, starting adapter, data file, the schedule this
generation trains with, where to write), so a child can be re-run by hand:
`python -m evolver.training.child state/train/gen-0001/sft/spec.json`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from evolver.config.schema import DPOConfig, LoraConfig, ModelConfig, SFTConfig

RefKind = Literal["sft", "parent", "base"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AdapterRef(_Strict):
    path: str
    sha256: str


class Schedule(_Strict):
    """How much this generation trains: passes over the data, or a step count that overrides them."""

    epochs: float = Field(gt=0)
    max_steps: int = Field(-1, ge=-1, description="-1 = train `epochs` passes; otherwise exactly this many steps.")
    learning_rate: float = Field(gt=0)


class TrainSpec(_Strict):
    phase: Literal["sft", "dpo"]
    generation: int
    base: str  # absolute folder or hub id (recorded in adapter_config.json)
    model: ModelConfig
    data: str  # JSONL of prompt/completion or prompt/chosen/rejected
    out_dir: str  # final adapter folder (written atomically)
    result: str  # result JSON the child writes last
    lora: LoraConfig  # used when starting fresh
    sft: SFTConfig | None = None
    dpo: DPOConfig | None = None
    schedule: Schedule
    seed: int
    init_adapter: AdapterRef | None = None  # continue from this adapter, else a fresh LoRA
    ref: RefKind = "sft"  # DPO reference: the starting policy, the parent's adapter, or base
    ref_adapter: AdapterRef | None = None  # for ref = "parent" when the parent has one
    meta: dict[str, Any] = Field(default_factory=dict)  # copied into the adapter's evolver_adapter.json
    report_to: list[str] = Field(default_factory=list)  # training.report_to: trackers the trainer logs to
    runs_dir: str | None = None  # where trackers that write files (tensorboard) put this run: RUNS/gen-NNNN-<phase>

    @model_validator(mode="after")
    def _one_phase(self) -> TrainSpec:
        if (self.sft is None) == (self.dpo is None) or (self.phase == "sft") != (self.sft is not None):
            raise ValueError(f"a {self.phase} spec carries exactly its own settings ({self.phase})")
        return self

    @property
    def batch(self) -> tuple[int, int, int]:
        """(batch_size, grad_accum, max_length) of this phase."""
        if self.sft is not None:
            return self.sft.batch_size, self.sft.grad_accum, self.sft.max_length
        assert self.dpo is not None  # exactly one of them (checked above)
        return self.dpo.batch_size, self.dpo.grad_accum, self.dpo.max_length

    def dump(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=2))

    @classmethod
    def load(cls, path: str | Path) -> TrainSpec:
        return cls.model_validate_json(Path(path).read_text())
