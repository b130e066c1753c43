"""Fixtures for backend tests and benchmarks: LoRA adapters that change outputs, generations in a store,
and a tiny model that reliably emits its end-of-turn token (so stop handling is exercised)."""

from __future__ import annotations

from pathlib import Path

from evolver.artifacts import hash_adapter
from evolver.store import Store


def make_lora_adapter(base_dir: str | Path, out_dir: str | Path, r: int = 8, alpha: int = 32, seed: int = 1) -> Path:
    """A peft LoRA adapter with random non-zero A and B (`init_lora_weights=False`): unlike a fresh
    adapter (B = 0) it changes what the model says."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = Path(out_dir)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules="all-linear", init_lora_weights=False,
                     task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, cfg)
    with torch.no_grad():  # explicit weights: peft's non-default init has changed scale between releases
        for name, p in peft_model.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                p.normal_(0.0, 0.5)
    peft_model.save_pretrained(str(out))
    return out


def add_generation(store: Store, gen_id: int, parent: int | None, base: str, adapter_dir: str | Path | None = None,
                   status: str = "evaluated") -> None:
    """A finished generation row as the daemon leaves it (status 'base' for generation 0)."""
    store.create_generation(gen_id, parent, base, config_hash="test", config_json="{}", status=status,
                            adapter_path=str(adapter_dir) if adapter_dir else None,
                            adapter_sha256=hash_adapter(adapter_dir) if adapter_dir else None)


# Short dialogues a tiny chat model learns by heart: greedy decoding then says the answer and stops.
TAUGHT = (("Question: 12 + 34", "Finish[46]"), ("def add(a, b):", "return a + b"),
          ("The quick brown fox", "jumps over the lazy dog."), ("Options: A. B. C. D.", "Answer: C"))


def build_stopping_model(out_dir: str | Path, pairs: tuple[tuple[str, str], ...] = TAUGHT, steps: int = 80,
                         seed: int = 0) -> Path:
    """A tiny chat model trained (seconds on one core) to answer each prompt of `pairs` through the chat
    template and then emit its end-of-turn token `<|end|>`: a backend that does not stop there runs on."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evolver.testing.tiny import build_tiny_model

    # 128 hidden / 4 heads: head size 32, the smallest vLLM's CPU attention supports.
    out = build_tiny_model(out_dir, chat=True, hidden=128, seed=seed)
    tok = AutoTokenizer.from_pretrained(str(out))
    model = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
    rows = []
    for q, a in pairs:
        prompt = tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        p_ids = tok(prompt, add_special_tokens=False).input_ids
        a_ids = tok(a + "<|end|>", add_special_tokens=False).input_ids
        rows.append((p_ids + a_ids, len(p_ids)))
    width = max(len(r) for r, _ in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (r, n_prompt) in enumerate(rows):  # right padding; loss on the answers only
        ids[i, :len(r)] = torch.tensor(r)
        labels[i, n_prompt:len(r)] = torch.tensor(r[n_prompt:])
        mask[i, :len(r)] = 1
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    model.save_pretrained(str(out))
    return out
