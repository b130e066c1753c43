"""Held-out baseline of a world model: greedy trial 1, one greedy reflection + retry on the wrong ones.

    python bench/world_baseline.py [--model DIR] [--limit 500] [--instruction 1-1-2] [--json]

Loads by folder path only (works with HF_HUB_OFFLINE=1) and prints acc@t1, acc@t2, parse rate, seconds.
The helpers (`generate`, `run_round`) are plain functions so scratch studies can reuse them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evolver.reflection.instructions import default_pool  # noqa: E402
from evolver.reflection.prompts import reflect_prompt, retry_prompt, trial_prompt  # noqa: E402
from evolver.tasks.base import Item, Verdict  # noqa: E402
from evolver.world import base_model_path  # noqa: E402
from evolver.world.task import ArithTask  # noqa: E402

TRIAL_TOKENS, REFLECTION_TOKENS = 72, 60


def load(folder: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    return model, tok


def generate(model: Any, tok: Any, prompts: list[str], max_new_tokens: int, batch: int = 64,
             temperature: float = 0.0, top_p: float = 1.0, seed: int = 0) -> list[str]:
    """Outputs in prompt order; prompts are batched by length so padding stays small."""
    import torch

    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str] = [""] * len(prompts)
    torch.manual_seed(seed)
    for start in range(0, len(order), batch):
        idx = order[start: start + batch]
        enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
        kw: dict[str, Any] = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {
            "do_sample": False}
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                                 eos_token_id=tok.eos_token_id, **kw)
        texts = tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        for i, t in zip(idx, texts):
            out[i] = t
    return out


def run_round(model: Any, tok: Any, task: ArithTask, items: list[Item], trial1: list[str], instruction: str,
              batch: int = 64, temperature: float = 0.0, seed: int = 0) -> list[tuple[str, str, str, Verdict]]:
    """One reflect -> retry round for each (item, trial-1 output): (reflect prompt, reflection, trial 2, verdict)."""
    prompts = []
    for it, out in zip(items, trial1):
        v = task.score(it, out)
        prompts.append(reflect_prompt(task.answer_format, it.text, out, v.feedback, instruction))
    refl = generate(model, tok, prompts, REFLECTION_TOKENS, batch, temperature, 0.95 if temperature else 1.0, seed)
    t2 = generate(model, tok, [retry_prompt(p, r) for p, r in zip(prompts, refl)], TRIAL_TOKENS, batch)
    return [(p, r, o, task.score(it, o)) for p, r, o, it in zip(prompts, refl, t2, items)]


def baseline(folder: str, limit: int, instruction_id: str, batch: int) -> dict[str, Any]:
    t0 = time.time()
    model, tok = load(folder)
    task = ArithTask()
    items = task.load("test", limit)
    instruction = {i.id: i.text for i in default_pool()}[instruction_id]
    t1 = generate(model, tok, [trial_prompt(task.answer_format, it.text) for it in items], TRIAL_TOKENS, batch)
    v1 = [task.score(it, o) for it, o in zip(items, t1)]
    wrong = [i for i, v in enumerate(v1) if not v.correct]
    round2 = run_round(model, tok, task, [items[i] for i in wrong], [t1[i] for i in wrong], instruction, batch)
    fixed = sum(v.correct for *_, v in round2)
    n = len(items)
    return {
        "model": folder, "questions": n, "instruction": instruction_id,
        "acc@t1": sum(v.correct for v in v1) / n, "acc@t2": (n - len(wrong) + fixed) / n,
        "parse@t1": sum(v.reason != "unparsed" for v in v1) / n,
        "parse@t2": sum(v.reason != "unparsed" for *_, v in round2) / max(1, len(round2)),
        "seconds": round(time.time() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(base_model_path()))
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--instruction", default="1-1-2")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--write-meta", action="store_true", help="Record the result under 'eval' in the model's meta.json.")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    res = baseline(args.model, args.limit, args.instruction, args.batch)
    if args.write_meta:
        meta_file = Path(args.model) / "meta.json"
        meta = json.loads(meta_file.read_text())
        meta["eval"] = {k: v for k, v in res.items() if k != "model"}
        meta_file.write_text(json.dumps(meta, indent=2) + "\n")
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"{res['questions']} questions, instruction {res['instruction']}: acc@t1 {res['acc@t1']:.3f}  "
              f"acc@t2 {res['acc@t2']:.3f}  parse@t1 {res['parse@t1']:.3f}  parse@t2 {res['parse@t2']:.3f}  "
              f"{res['seconds']}s")


if __name__ == "__main__":
    main()
