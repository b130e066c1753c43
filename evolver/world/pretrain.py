"""Pretrain the generation-0 world model from scratch: a plain PyTorch loop over packed documents.

Documents are exactly prompt + output + EOS (see corpus.py); whole documents are packed into
fixed rows, so every step costs the same and no document loses its beginning. Seeded end to
end: with the same seed, steps and thread count the run reproduces the shipped weights.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evolver.world.corpus import BASE_MIX, documents


@dataclass(frozen=True)
class PretrainConfig:
    seed: int = 0
    examples: int = 30_000
    steps: int = 800
    batch: int = 15
    block: int = 512
    lr: float = 4e-3
    warmup: int = 20
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    intermediate: int = 384
    threads: int = 2
    cycles: int = 3  # cosine cycles of `steps` each; each starts a fresh optimizer (warm restart)
    mix: dict[int, float] = field(default_factory=lambda: dict(BASE_MIX))  # share of examples per base (level)


def model_config(cfg: PretrainConfig, tok: Any) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=len(tok), hidden_size=cfg.hidden, intermediate_size=cfg.intermediate,
                       num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads,
                       max_position_embeddings=1024, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                       bos_token_id=None, tie_word_embeddings=True, rms_norm_eps=1e-5)


def _blocks(docs: list[tuple[str, str]], tok: Any, block: int, seed: int) -> Any:
    """Rows of whole documents (ids, labels), padded at the end; a doc's no-loss prefix gets label -100.

    Documents are never split across rows: a retry document cut in two would train trial 2
    without its question in view, and the model would learn to invent the digits it copies.
    """
    import torch

    random.Random(f"pack:{seed}").shuffle(docs)
    ids = tok([d for d, _ in docs], add_special_tokens=False)["input_ids"]
    pre = tok([p for _, p in docs], add_special_tokens=False)["input_ids"]
    rows: list[tuple[list[int], list[int]]] = []
    cur: list[int] = []
    lab: list[int] = []
    n_tokens = 0
    for seq, p in zip(ids, pre):
        doc = seq + [tok.eos_token_id]
        if len(doc) > block:
            raise ValueError(f"a {len(doc)}-token document does not fit a {block}-token row")
        if len(cur) + len(doc) > block:
            rows.append((cur, lab))
            cur, lab = [], []
        cur.extend(doc)
        lab.extend([-100] * len(p) + doc[len(p):])
        n_tokens += len(doc)
    if cur:
        rows.append((cur, lab))
    pad = tok.pad_token_id
    data = torch.tensor([r + [pad] * (block - len(r)) for r, _ in rows], dtype=torch.long)
    targets = torch.tensor([lb + [-100] * (block - len(lb)) for _, lb in rows], dtype=torch.long)
    return data, targets, n_tokens


def pretrain(out_dir: str | Path, cfg: PretrainConfig = PretrainConfig(), log: Callable[[str], None] = print,
             resume: tuple[Path, int] | None = None) -> dict[str, Any]:
    """Build corpus, tokenizer and model; train; save to `out_dir` with meta.json. Returns the meta.

    `resume=(folder, n)` loads the weights saved after n cycles of the same config and replays the
    data order, so a resumed run equals an uninterrupted one (each cycle starts a fresh optimizer).
    """
    import torch
    from transformers import AutoModelForCausalLM

    from evolver.world.tokenizer import build_tokenizer

    t0 = time.time()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    docs = list(documents(cfg.seed, cfg.examples, cfg.mix))
    tok = build_tokenizer([d for d, _ in docs[:4000]])
    data, targets, n_tokens = _blocks(docs, tok, cfg.block, cfg.seed)
    log(f"corpus: {len(docs)} documents, {n_tokens} tokens, {len(data)} blocks of {cfg.block}; vocab {len(tok)}")
    model = AutoModelForCausalLM.from_config(model_config(cfg, tok))
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params / 1e6:.2f} M parameters")
    gen = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(data), generator=gen)
    losses: list[float] = []
    pos = 0
    for cycle in range(cfg.cycles):
        if resume is not None and cycle < resume[1]:
            for _ in range(cfg.steps):  # replay the data order only
                if pos + cfg.batch > len(order):
                    order, pos = torch.randperm(len(data), generator=gen), 0
                pos += cfg.batch
            if cycle == resume[1] - 1:
                model = AutoModelForCausalLM.from_pretrained(str(resume[0]))
                log(f"resumed from {resume[0]} after cycle {cycle + 1}")
            continue
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.01)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / cfg.warmup) * (
            0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / cfg.steps)))))
        model.train()
        for step in range(cfg.steps):
            if pos + cfg.batch > len(order):
                order, pos = torch.randperm(len(data), generator=gen), 0
            rows = order[pos: pos + cfg.batch]
            pos += cfg.batch
            loss = model(input_ids=data[rows], labels=targets[rows]).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            if step % 50 == 0 or step == cfg.steps - 1:
                log(f"cycle {cycle + 1} step {step}/{cfg.steps} loss {sum(losses[-50:]) / len(losses[-50:]):.4f} "
                    f"({time.time() - t0:.0f}s)")
    model.eval()
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    weights = out / "model.safetensors"
    meta = {
        "seed": cfg.seed,
        "config": asdict(cfg),
        "parameters": n_params,
        "corpus": {"documents": len(docs), "tokens": n_tokens, "examples": cfg.examples},
        "metrics": {"final_loss": sum(losses[-50:]) / len(losses[-50:]), "first_loss": losses[0]},
        "seconds": round(time.time() - t0, 1),
        "resumed": None if resume is None else {"cycles_done": resume[1]},
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "torch": torch.__version__,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
