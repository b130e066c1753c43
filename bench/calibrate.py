"""A fixed CPU workload of about 30 s, so timings taken on different machines can be compared.

    python bench/calibrate.py [--threads 2] [--json]

It builds a model of the embedded world model's shape (LlamaForCausalLM, 128 hidden, 4 layers,
640-token vocabulary) from a fixed seed, with no file of the repository involved, then times
(1) greedy decoding of a fixed batch (64 prompts of 96 tokens, 160 new tokens each, KV cache)
and (2) 20 training steps (forward, backward, AdamW) on 15 rows of 512 tokens: the two kinds of
work a generation does. The figure is the sum, in seconds. A timing reported with it scales to
another machine by the ratio of the two machines' figures. The work is identical on every run
and every machine; only the time differs.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any


def build() -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=640, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024, pad_token_id=0,
                      eos_token_id=None, bos_token_id=None, tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).eval()


def decode(model: Any) -> float:
    import torch

    ids = torch.randint(3, 640, (64, 96), generator=torch.Generator().manual_seed(1))
    t0 = time.perf_counter()
    with torch.inference_mode():
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=160, min_new_tokens=160,
                       do_sample=False, pad_token_id=0, eos_token_id=None)
    return time.perf_counter() - t0


def train(model: Any, steps: int = 20) -> float:
    import torch

    data = torch.randint(3, 640, (15, 512), generator=torch.Generator().manual_seed(2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = model(input_ids=data, labels=data).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch threads (2: the CI and project machine)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    model = build()
    out = {"decode_s": round(decode(model), 2), "train_s": round(train(model), 2)}
    out["calibration_s"] = round(out["decode_s"] + out["train_s"], 2)
    out.update(threads=args.threads, torch=torch.__version__, machine=platform.machine(),
               processor=platform.processor() or "?")
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"calibration: {out['calibration_s']:.1f} s (decode {out['decode_s']:.1f} s + train {out['train_s']:.1f} s)"
          f" on {args.threads} threads, torch {out['torch']}")


if __name__ == "__main__":
    main()
