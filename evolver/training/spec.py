"""What the parent hands the training child: one JSON file, no shared memory.

The spec names everything the child needs (base model, starting adapter, data file,
hyperparameters, where to write), so a child can be re-run by hand:
`python -m evolver.training.child state/train/gen-0001/sft/spec.json`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

RefKind = Literal["sft", "parent", "base"]


@dataclass
class AdapterRef:
    path: str
    sha256: str


@dataclass
class TrainSpec:
    phase: Literal["sft", "dpo"]
    generation: int
    base: str  # absolute folder or hub id (recorded in adapter_config.json)
    model: dict[str, Any]  # evolver ModelConfig as JSON (dtype, device, revision)
    data: str  # JSONL of prompt/completion or prompt/chosen/rejected
    out_dir: str  # final adapter folder (written atomically)
    result: str  # result JSON the child writes last
    lora: dict[str, Any]  # r, alpha, dropout, target_modules (used when starting fresh)
    hparams: dict[str, Any]  # epochs, learning_rate, batch_size, grad_accum, max_length, (beta)
    seed: int
    init_adapter: AdapterRef | None = None  # continue from this adapter, else a fresh LoRA
    ref: RefKind = "sft"  # DPO reference: the starting policy, the parent's adapter, or base
    ref_adapter: AdapterRef | None = None  # for ref = "parent" when the parent has one
    threads: int = 0
    meta: dict[str, Any] = field(default_factory=dict)  # copied into the adapter's evolver_adapter.json

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))

    @classmethod
    def load(cls, path: str | Path) -> TrainSpec:
        d = json.loads(Path(path).read_text())
        for k in ("init_adapter", "ref_adapter"):
            if d.get(k) is not None:
                d[k] = AdapterRef(**d[k])
        return cls(**d)
