"""Held-out baseline of a world model: greedy trial 1, one greedy reflection + retry on the wrong ones.

    python bench/world_baseline.py [--model DIR] [--limit 500] [--levels 10,9,8] [--instruction 1-1-2] [--json]

Loads by folder path only (works with HF_HUB_OFFLINE=1) and prints acc@t1, acc@t2, parse rate and
seconds per level (`--limit` questions of each).
Generation goes through the project's transformers backend, so the numbers match `evolver eval`'s decoding.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evolver.backends.base import Sampling  # noqa: E402
from evolver.backends.transformers_backend import TransformersBackend  # noqa: E402
from evolver.config.schema import ModelConfig, SamplingConfig  # noqa: E402
from evolver.reflection.instructions import default_pool  # noqa: E402
from evolver.reflection.prompts import reflect_prompt, retry_prompt, trial_prompt  # noqa: E402
from evolver.tasks.base import Item, Verdict  # noqa: E402
from evolver.world import base_model_path  # noqa: E402
from evolver.world.task import ArithTask  # noqa: E402

# Greedy with the configuration's default token budget, as `evolver eval` decodes on the shipped evolver.toml.
TRIAL = REFLECTION = Sampling(0.0, 1.0, SamplingConfig().max_new_tokens)


def load(folder: str, batch: int = 64, threads: int = 1) -> TransformersBackend:
    """The project's own transformers backend on a folder (plain prompts, no chat template)."""
    return TransformersBackend(folder, ModelConfig(base=folder, prompt_style="plain", threads=threads), batch)


def generate(backend: TransformersBackend, prompts: list[str], sampling: Sampling, seed: int = 0) -> list[str]:
    return [o.text for o in backend.generate(prompts, sampling, [seed + i for i in range(len(prompts))])]


def run_round(backend: TransformersBackend, task: ArithTask, items: list[Item], trial1: list[str], instruction: str,
              reflection: Sampling = REFLECTION, seed: int = 0) -> list[tuple[str, str, str, Verdict]]:
    """One reflect -> retry round for each (item, trial-1 output): (reflect prompt, reflection, trial 2, verdict)."""
    prompts = []
    for it, out in zip(items, trial1):
        v = task.score(it, out)
        prompts.append(reflect_prompt(task.answer_format, it.text, out, v.feedback, instruction))
    refl = generate(backend, prompts, reflection, seed)
    t2 = generate(backend, [retry_prompt(p, r) for p, r in zip(prompts, refl)], TRIAL)
    return [(p, r, o, task.score(it, o)) for p, r, o, it in zip(prompts, refl, t2, items)]


def baseline(folder: str, limit: int, instruction_id: str, batch: int, threads: int = 1,
             base: int = 10) -> dict[str, Any]:
    t0 = time.time()
    backend = load(folder, batch, threads)
    task = ArithTask(bases=(base,))
    items = task.load("test", limit)
    instruction = {i.id: i.text for i in default_pool()}[instruction_id]
    t1 = generate(backend, [trial_prompt(task.answer_format, it.text) for it in items], TRIAL)
    v1 = [task.score(it, o) for it, o in zip(items, t1)]
    wrong = [i for i, v in enumerate(v1) if not v.correct]
    round2 = run_round(backend, task, [items[i] for i in wrong], [t1[i] for i in wrong], instruction)
    backend.close()
    fixed = sum(v.correct for *_, v in round2)
    n = len(items)
    return {
        "model": folder, "level": f"b{base}", "questions": n, "instruction": instruction_id,
        "acc@t1": sum(v.correct for v in v1) / n, "acc@t2": (n - len(wrong) + fixed) / n,
        "parse@t1": sum(v.reason != "unparsed" for v in v1) / n,
        "parse@t2": sum(v.reason != "unparsed" for *_, v in round2) / max(1, len(round2)),
        "seconds": round(time.time() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(base_model_path()))
    ap.add_argument("--limit", type=int, default=500, help="Questions per level.")
    ap.add_argument("--levels", default="10", help="Comma-separated number bases, e.g. 10,9,8 (10 is the base level).")
    ap.add_argument("--instruction", default="1-1-2")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--write-meta", action="store_true", help="Record the result under 'eval' in the model's meta.json.")
    args = ap.parse_args()
    results = [baseline(args.model, args.limit, args.instruction, args.batch, args.threads, int(d))
               for d in args.levels.split(",")]
    if args.write_meta:
        meta_file = Path(args.model) / "meta.json"
        meta = json.loads(meta_file.read_text())
        meta["eval"] = [{k: v for k, v in r.items() if k != "model"} for r in results]
        meta_file.write_text(json.dumps(meta, indent=2) + "\n")
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for res in results:
        print(f"{res['level']}: {res['questions']} questions, instruction {res['instruction']}: acc@t1 {res['acc@t1']:.3f}"
              f"  acc@t2 {res['acc@t2']:.3f}  parse@t1 {res['parse@t1']:.3f}  parse@t2 {res['parse@t2']:.3f}"
              f"  {res['seconds']}s")


if __name__ == "__main__":
    main()
