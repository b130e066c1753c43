"""The recipe configs in examples/: each passes `config check`, and its LoRA shape fits its architecture.

The real models are not downloaded: a tiny model of the same architecture class stands in,
and the child's own loading path (`load_policy`) puts the example's LoRA on it. `config check`
runs against a stand-in cache: the bigbench sdist's layout and a tiny GGUF file where the
SmolLM2 one goes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evolver.config import load_config
from evolver.training.device import plan_device
from evolver.config.schema import ModelConfig
from evolver.training.spec import Schedule, TrainSpec

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ARCH = {
    "qwen2.5-0.5b-instruct.toml": ("qwen2", "Qwen/Qwen2.5-0.5B-Instruct"),
    "llama-3-8b-instruct.toml": ("llama", "meta-llama/Meta-Llama-3-8B-Instruct"),
    "mistral-7b-instruct-v0.2.toml": ("mistral", "mistralai/Mistral-7B-Instruct-v0.2"),
    "smollm2-135m-instruct.toml": ("llama", None),  # a GGUF file in $EVOLVER_CACHE
}


def test_every_example_passes_config_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evolver.preflight import check_references
    from evolver.testing.bigbench import build_sdist
    from evolver.testing.tiny_gguf import build_tiny_gguf

    cache = tmp_path / "cache"
    build_sdist(cache / "pkgs" / "bigbench-1.0.0.tar.gz")
    build_tiny_gguf(cache / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf", tmp_path / "src")
    monkeypatch.setenv("EVOLVER_CACHE", str(cache))
    for name in sorted(ARCH):
        assert check_references(load_config(EXAMPLES / name)) == [], name


def test_every_example_is_covered() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.toml")) == sorted(ARCH)


@pytest.mark.parametrize("name", sorted(ARCH))
def test_example_loads_and_its_lora_fits_the_architecture(name: str, tmp_path: Path) -> None:
    import torch

    from evolver.models import resolve_base
    from evolver.testing.tiny import build_tiny_model
    from evolver.training.runtime import load_policy

    arch, hub_id = ARCH[name]
    cfg = load_config(EXAMPLES / name)
    if hub_id is not None:
        assert resolve_base(cfg.config.model, cfg.root) == hub_id  # a hub id, recorded as-is in adapter_config.json
    lora = cfg.config.training.lora
    tiny = build_tiny_model(tmp_path / arch, arch=arch, chat=True)
    spec = TrainSpec(phase="sft", generation=1, base=str(tiny), model=ModelConfig(device="cpu", dtype="float32"),
                     data="", out_dir=str(tmp_path / "a"), result=str(tmp_path / "r.json"), lora=lora,
                     sft=cfg.config.training.sft, schedule=Schedule(epochs=1, learning_rate=1e-3), seed=0)
    policy = load_policy(spec)
    lora_layers = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in policy.model.named_parameters()
                   if ".lora_A." in n}
    if lora.target_modules == "all-linear":
        assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} == lora_layers
    else:
        assert lora_layers == set(lora.target_modules)
    assert all(p.requires_grad == (".lora_" in n) for n, p in policy.model.named_parameters())
    cfg_r = policy.model.peft_config["default"]
    assert (cfg_r.r, cfg_r.lora_alpha, cfg_r.lora_dropout) == (lora.r, lora.alpha, lora.dropout)

    ids = policy.tokenizer("Question: 1 + 2 Solution: 3", return_tensors="pt").input_ids
    policy.model(input_ids=ids, labels=ids).loss.backward()
    lora_b = [p for n, p in policy.model.named_parameters() if ".lora_B." in n]
    assert lora_b and all(p.grad is not None and torch.any(p.grad != 0) for p in lora_b)


@pytest.mark.parametrize("name", ["llama-3-8b-instruct.toml", "mistral-7b-instruct-v0.2.toml"])
def test_paper_recipes(name: str) -> None:
    c = load_config(EXAMPLES / name).config
    t = c.training
    lora = (t.lora.r, t.lora.alpha, t.lora.dropout, t.lora.target_modules)
    assert lora == (8, 32, 0.1, ["q_proj", "k_proj", "v_proj"])
    assert (t.sft.mode, t.sft.learning_rate) == ("one_stage", 1e-3)
    assert (t.dpo.beta, t.dpo.learning_rate, t.dpo.epochs, t.dpo.sft_weight) == (0.01, 5e-7, 1.0, 0.0)
    assert c.evaluation.benchmarks == ["bb-mix"] and c.reflection.task == "bb-mix"  # BIG-bench task files
    assert c.generation.vllm.max_lora_rank >= t.lora.r
    plan = plan_device("cuda", c.model.dtype, 8_000_000_000)
    assert plan.bf16 and plan.gradient_checkpointing
