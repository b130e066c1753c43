"""Trainer precision and memory settings from the device and the model size.

trl's configs default to bf16 and gradient checkpointing, which fail or only slow things
down on CPU; on CUDA both pay off, checkpointing only once activations dominate memory.
A pure function of its inputs, so the choice is testable without a GPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Above this many parameters, activations of long reflection prompts outgrow a single GPU
# without checkpointing (a 7-8B model at 2k tokens); below it checkpointing only costs time.
CHECKPOINTING_MIN_PARAMS = 1_000_000_000


@dataclass(frozen=True)
class DevicePlan:
    device: str  # "cpu" | "cuda"
    bf16: bool
    fp16: bool
    use_cpu: bool
    gradient_checkpointing: bool

    def trainer_kwargs(self) -> dict[str, Any]:
        """The TrainingArguments fields this plan decides (shared by SFTConfig and DPOConfig)."""
        d = asdict(self)
        d.pop("device")
        d["activation_checkpointing"] = d.pop("gradient_checkpointing")  # the name transformers 5.2x uses
        return d


def plan_device(device: str, dtype: str, n_params: int) -> DevicePlan:
    """`device` is the resolved one ("cpu"/"cuda"); `dtype` the config's model.dtype ("auto" as the
    backends read it: float32 for models below evolver.models.FP32_MAX_PARAMS, so they train in fp32)."""
    from evolver.models import auto_dtype

    if device != "cuda":
        return DevicePlan("cpu", bf16=False, fp16=False, use_cpu=True, gradient_checkpointing=False)
    if dtype == "auto":
        dtype = auto_dtype(device, n_params)
    fp16 = dtype == "float16"
    bf16 = dtype == "bfloat16"
    return DevicePlan("cuda", bf16=bf16, fp16=fp16, use_cpu=False,
                      gradient_checkpointing=n_params >= CHECKPOINTING_MIN_PARAMS)
