"""The shape of `evolver.toml`: every key has a default and a one-line description.

Models forbid unknown keys so a typo is an error, not a silently ignored setting.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Section):
    base: str = Field(
        "embedded",
        description="Base model: 'embedded' (the world's own model), a hub id, a local folder, or a .gguf file"
                    " (dequantized once under STATE/models/).",
    )
    gguf_file: str = Field(
        "", description="A .gguf file inside the folder `base` names (empty = `base` is the model itself).")
    revision: str | None = Field(None, description="Hub revision (commit or tag) when `base` is a hub id.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype; 'auto' = float32 on CPU and, on CUDA, below 300 M parameters; else bfloat16."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where the model runs; 'auto' picks CUDA when present.")
    prompt_style: Literal["auto", "plain", "chat"] = Field(
        "auto", description="'chat' uses the tokenizer's chat template; 'auto' = chat when the tokenizer has one."
    )
    threads: int = Field(0, ge=0, le=512, description="torch CPU threads; 0 = leave torch's default.")


class SamplingConfig(_Section):
    temperature: float = Field(0.0, ge=0.0, le=5.0, description="0 = greedy decoding.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    max_new_tokens: int = Field(160, ge=1, le=32768, description="Upper bound on generated tokens per output.")


class OpenAIBackendConfig(_Section):
    base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible server root (ends in /v1).")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key (may be unset).")
    model: str = Field("", description="Model name to request; empty = the generation's served name.")
    endpoint: Literal["completions", "chat"] = Field("completions", description="Which API to call.")
    concurrency: int = Field(8, ge=1, le=1024, description="Requests in flight at once.")
    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout in seconds.")
    retries: int = Field(4, ge=0, le=50, description="Retries on 429/5xx/connection errors, with backoff.")
    load_lora: bool = Field(False, description="Load each generation's adapter through /v1/load_lora_adapter (vLLM servers).")


class VLLMBackendConfig(_Section):
    max_lora_rank: int = Field(16, ge=1, le=512, description="vLLM's max_lora_rank; must be >= training.lora.r.")
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="Share of GPU memory vLLM may take.")
    max_model_len: int = Field(2048, ge=64, description="Context length vLLM allocates for.")


class GenerationConfig(_Section):
    backend: Literal["transformers", "vllm", "openai"] = Field("transformers", description="Generation backend.")
    batch_size: int = Field(64, ge=1, le=4096, description="Prompts per forward batch (transformers). Memory grows with it.")
    trial: SamplingConfig = Field(default_factory=SamplingConfig, description="Sampling for trials (answers).")
    reflection: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=0.8, top_p=0.95),
        description="Sampling for reflections (temperature > 0 to get k distinct ones).",
    )
    openai: OpenAIBackendConfig = Field(default_factory=OpenAIBackendConfig, description="OpenAI-compatible backend.")
    vllm: VLLMBackendConfig = Field(default_factory=VLLMBackendConfig, description="vLLM backend.")


class InstructionConfig(_Section):
    id: str = Field(..., min_length=1, description="Unique id, stored with each reflection.")
    text: str = Field(..., min_length=1, description="The instruction appended to the reflection prompt.")


class ReflectionConfig(_Section):
    task: str = Field("arith", description="Task (benchmark suite in evals/) whose train split is the pool.")
    pool_size: int = Field(300, ge=1, description="Training-pool questions per generation.")
    pool_returns: float = Field(
        0.2, ge=0.0, le=1.0, description="Share of the pool given to questions asked before and never solved.")
    pool_frontier: float = Field(
        0.75, ge=0.0, le=1.0,
        description="Share of new questions from the frontier level (the lowest not mastered); the rest in equal parts from every level above.")
    pool_review: float = Field(
        0.1, ge=0.0, le=1.0,
        description="Share of new questions from the mastered levels below the frontier, in equal parts (review, against forgetting them).")
    mastery: float = Field(
        0.9, gt=0.0, le=1.0, description="Held-out acc@t1 at which a level counts as mastered and the pool moves up.")
    k: int = Field(4, ge=1, le=64, description="Reflections sampled per wrong answer in round 1.")
    max_rounds: int = Field(1, ge=1, le=8, description="Reflect -> correct rounds per question.")
    instruction_sampling: Literal["uniform", "fixed", "cycle"] = Field(
        "uniform", description="How each reflection's instruction is drawn from the pool."
    )
    instruction_ids: list[str] = Field(default_factory=list, description="Restrict the pool to these ids (empty = all).")
    extra_instructions: list[InstructionConfig] = Field(default_factory=list, description="Instructions added to the pool.")
    pairs_per_question: int = Field(4, ge=1, le=1000, description="Cap on D± / Dpref pairs per question.")
    judge: Literal["self", "none"] = Field("self", description="Dpref judge: 'self' ranks by the model's likelihood of the gold answer.")


class LoraConfig(_Section):
    r: int = Field(16, ge=1, le=1024, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA alpha (scale = alpha / r).")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="LoRA dropout.")
    target_modules: list[str] | Literal["all-linear"] = Field("all-linear", description="Modules to adapt.")


class SFTConfig(_Section):
    mode: Literal["one_stage", "two_stage", "answers"] = Field(
        "one_stage", description="one_stage: reflection+trial 2 in one completion; answers: question -> correct solution (STaR-like baseline)."
    )
    data: list[Literal["D+", "D-", "R1", "T1"]] = Field(
        default_factory=lambda: ["D+", "R1", "T1"],
        description="Snapshots to train on: D+ (reflection -> correct retry), R1 (correct retries as first-trial"
                    " answers) and T1 (correct first trials) evolve both skills; D- trains on unfiltered reflections (ablation).",
    )
    epochs: float = Field(4.0, gt=0, le=100, description="Passes over D+.")
    learning_rate: float = Field(5e-4, gt=0, le=1, description="Peak LR (LoRA wants far more than full fine-tuning).")
    batch_size: int = Field(16, ge=1, le=4096, description="Per-device batch. Memory grows with it.")
    grad_accum: int = Field(1, ge=1, le=1024, description="Gradient accumulation steps.")
    max_length: int = Field(512, ge=16, le=131072, description="Truncate examples beyond this many tokens. Memory grows with it.")
    min_samples: int = Field(8, ge=1, description="Skip SFT (recorded) below this many rows (D+, plus D-/T1 when configured).")
    max_steps: int = Field(40, ge=0, le=1_000_000, description="Cap on optimizer steps per generation (0 = epochs decide).")
    add_steps: int = Field(0, ge=0, le=1_000_000, description="The cap grows by this many steps per generation of depth on its lineage (STaR's schedule).")


class DPOConfig(_Section):
    enabled: bool = Field(True, description="Run DPO after SFT.")
    data: list[Literal["dpm", "dpref"]] = Field(default_factory=lambda: ["dpm"], description="Pair sets: dpm = D±, dpref = judged.")
    beta: float = Field(0.1, gt=0, le=10, description="DPO beta.")
    sft_weight: float = Field(1.0, ge=0, le=100, description=(
        "Weight of an NLL term on the chosen reflection (RPO); keeps DPO from lowering its likelihood. 0 = plain DPO."))
    epochs: float = Field(1.0, gt=0, le=100, description="Passes over the pairs.")
    learning_rate: float = Field(5e-4, gt=0, le=1, description="Peak LR.")
    batch_size: int = Field(8, ge=1, le=4096, description="Per-device batch. Memory grows with it.")
    grad_accum: int = Field(1, ge=1, le=1024, description="Gradient accumulation steps.")
    max_length: int = Field(512, ge=16, le=131072, description="Prompt+completion token cap. Memory grows with it.")
    ref: Literal["sft", "parent", "base"] = Field("sft", description="Reference model for DPO.")
    min_pairs: int = Field(8, ge=1, description="Skip DPO (recorded) below this many pairs.")
    max_steps: int = Field(40, ge=0, le=1_000_000, description="Cap on optimizer steps per generation (0 = epochs decide).")
    add_steps: int = Field(0, ge=0, le=1_000_000, description="The cap grows by this many steps per generation of depth on its lineage (STaR's schedule).")


class TrainingConfig(_Section):
    lora: LoraConfig = Field(default_factory=LoraConfig, description="Adapter shape.")
    sft: SFTConfig = Field(default_factory=SFTConfig, description="SFT on D+.")
    dpo: DPOConfig = Field(default_factory=DPOConfig, description="DPO on D± / Dpref.")
    lineage: Literal["continue", "restart"] = Field("continue", description="continue: each generation goes on from its parent's adapter on its data window, a few steps at a small rate; restart: anew from the base model (STaR).")
    data_window: int = Field(10, ge=1, le=1000, description="Train on the last N generations' snapshots, replayed and deduplicated by content.")
    lr_decay: float = Field(
        0.85, gt=0.0, le=1.0,
        description="Learning rate x lr_decay^(depth-1): smaller steps deeper in a lineage, so gains spread over generations.")
    lr_floor: float = Field(
        0.1, ge=0.0, le=1.0,
        description="The decay stops at this share of the learning rate, so a long-running lineage still learns.")
    report_to: list[Literal["tensorboard", "wandb", "mlflow", "trackio"]] = Field(
        default_factory=list,
        description="Experiment trackers the trainer logs to (each must be installed); empty = none."
                    " TensorBoard writes under STATE/runs/gen-NNNN-<phase>.")
    launcher: Literal["python", "accelerate"] = Field("python", description="Child-process launcher for training.")
    accelerate_args: list[str] = Field(default_factory=list, description="Flags for `accelerate launch` (N CPU processes, GPUs, machines).")
    seed: int = Field(42, ge=0, description="Training seed.")


class EvaluationConfig(_Section):
    benchmarks: list[str] = Field(default_factory=lambda: ["arith"], description="Suites in evals/ to evaluate on.")
    max_rounds: int = Field(1, ge=1, le=8, description="Reflect -> correct rounds counted in acc@t2.")
    limit: int | None = Field(
        None, ge=1, description="Held-out questions per suite, per level when it has levels (None = the manifest's limit).")
    instruction: str = Field("1-1-2", description="Pool instruction id used for the (greedy) evaluation reflections.")
    paper_protocol: bool = Field(True, description="Also report acc@t2 with trial 1 fixed at generation 0's answers.")


class PolicyConfig(_Section):
    file: str = Field("policies/default.toml", description="Promotion policy TOML, relative to the config file.")
    while_pinned: Literal["evolve", "pause"] = Field("evolve", description="While pinned: keep evolving from the pin, or pause.")


class DaemonConfig(_Section):
    schedule: Literal["continuous", "interval", "cron"] = Field("continuous", description="When generations start.")
    interval_minutes: float = Field(60.0, gt=0, description="Minutes between starts when schedule = 'interval'.")
    cron: str = Field("0 * * * *", description="Crontab when schedule = 'cron'.")
    retries: int = Field(2, ge=0, le=100, description="Retries of a failed phase before the generation fails.")
    max_consecutive_failures: int = Field(
        3, ge=1, le=1000, description="Failed generations in a row after which `evolver run` gives up (exit 1).")
    backoff_seconds: float = Field(5.0, ge=0, description="First retry delay; doubles each retry.")
    reeval_hours: float = Field(24.0, gt=0, description="Re-evaluate the current generation this often (feeds rollback).")
    keep_rejected_adapters: int = Field(3, ge=0, description="Adapters of rejected generations kept; older ones pruned.")
    backup_hours: float = Field(24.0, gt=0, description="SQLite backup interval.")
    stop_timeout_s: float = Field(30.0, gt=0, description="Seconds a SIGTERM may take to reach a safe point.")


class LogsConfig(_Section):
    max_mb: float = Field(20.0, ge=0, description="Rotate STATE/logs/evolver.jsonl at this size in MiB (0 = never).")
    backups: int = Field(5, ge=0, le=1000, description="Rotated log files kept (evolver.jsonl.1, .2, ...).")


class EvolverConfig(_Section):
    state_dir: str = Field("state", description="Store, adapters and logs; relative to the config file.")
    seed: int = Field(0, ge=0, description="Root seed of the whole run.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Base model.")
    generation: GenerationConfig = Field(default_factory=GenerationConfig, description="Generation backends.")
    reflection: ReflectionConfig = Field(default_factory=ReflectionConfig, description="ReflectEvo loop.")
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="LoRA SFT then DPO.")
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig, description="Held-out evaluation.")
    policy: PolicyConfig = Field(default_factory=PolicyConfig, description="Promotion policy.")
    daemon: DaemonConfig = Field(default_factory=DaemonConfig, description="Daemon schedule and housekeeping.")
    logs: LogsConfig = Field(default_factory=LogsConfig, description="The JSON-lines log under STATE/logs/.")

    @model_validator(mode="after")
    def _consistent(self) -> EvolverConfig:
        # Messages follow the loader's shape "key: expected ..., got ..." (the loader prefixes the file).
        if self.generation.backend == "vllm" and self.generation.vllm.max_lora_rank < self.training.lora.r:
            raise ValueError(
                f"generation.vllm.max_lora_rank: expected >= training.lora.r ({self.training.lora.r}) "
                f"when generation.backend = 'vllm', got {self.generation.vllm.max_lora_rank}"
            )
        ids = [i.id for i in self.reflection.extra_instructions]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"reflection.extra_instructions: expected unique ids, got {dupes[0]!r} more than once")
        return self
