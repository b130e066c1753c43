"""Generation throughput of the available backends on the same prompts, one run each, one machine.

    python bench/backends.py [--backends transformers,openai,vllm] [--prompts 256] [--max-new-tokens 64]
                             [--model DIR] [--threads 1] [--batch 64] [--json]

Every backend answers the same arith trial prompts (greedy) with a LoRA adapter registered as
generation 1 (random non-zero weights), on the embedded world model when it is built
(`evolver world pretrain`), else on a random llama (256 hidden, 4 layers) built on the spot.
- transformers: the in-process backend (batched generate, adapter merged).
- openai: `evolver serve` started as a child process on 127.0.0.1 (a free port), driven by the
  OpenAI-compatible backend with `--batch` requests in flight (the server batches them).
- vllm: the vLLM backend, when `vllm` imports (run this script with the venv from scripts/vllm_env.sh).
`load` is construction (and server start) time; `seconds` covers the 256 prompts after a short warm-up;
`same` counts answers equal to the transformers backend's.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evolver.backends.base import Sampling  # noqa: E402
from evolver.config.schema import ModelConfig, OpenAIBackendConfig, VLLMBackendConfig  # noqa: E402


def pick_model(root: Path, given: str | None) -> Path:
    if given:
        return Path(given).resolve()
    from evolver.world import base_model_path

    try:
        embedded = base_model_path()
        if (embedded / "config.json").is_file():
            return embedded
    except FileNotFoundError:
        pass
    from evolver.testing.tiny import build_tiny_model

    return build_tiny_model(root / "tiny-llama", arch="llama", hidden=256, layers=4)


def arith_prompts(n: int) -> list[str]:
    from evolver.reflection.prompts import trial_prompt
    from evolver.world.task import ANSWER_FORMAT, ArithTask

    return [trial_prompt(ANSWER_FORMAT, it.text) for it in ArithTask().load("train", n)]


def timed(backend: Any, prompts: list[str], sampling: Sampling, adapter: Any) -> tuple[float, list[Any]]:
    backend.generate(prompts[:4], sampling, list(range(4)), adapter=adapter)  # warm-up: adapter load, first kernels
    start = time.perf_counter()
    outs = backend.generate(prompts, sampling, list(range(len(prompts))), adapter=adapter)
    return time.perf_counter() - start, outs


def start_serve(root: Path, model: Path, threads: int, batch: int) -> tuple[subprocess.Popen, str]:
    cfg = root / "evolver.toml"
    cfg.write_text(f'state_dir = "{root / "state"}"\n[model]\nbase = "{model}"\nthreads = {threads}\n'
                   f"[generation]\nbatch_size = {batch}\n")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", "from evolver.cli.app import main; main()", "--config", str(cfg),
                             "serve", "--port", "0"], stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline() if proc.stdout else ""
    if "serving on " not in line:
        proc.kill()
        raise SystemExit(f"bench: evolver serve did not start: {line!r}")
    return proc, line.split("serving on ")[1].split()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="transformers,openai,vllm")
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from evolver.reflection.common import adapter_for
    from evolver.store import Store
    from evolver.testing.backends import add_generation, make_lora_adapter

    wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
    root = Path(tempfile.mkdtemp(prefix="evolver-bench-backends-"))
    model = pick_model(root, args.model)
    make_lora_adapter(model, root / "adapters" / "gen-0001")
    store = Store.open(root / "state" / "evolver.db")
    add_generation(store, 0, None, str(model), status="base")
    add_generation(store, 1, 0, str(model), root / "adapters" / "gen-0001")
    adapter = adapter_for(store, 1)
    store.close()
    prompts = arith_prompts(args.prompts)
    sampling = Sampling(temperature=0.0, max_new_tokens=args.max_new_tokens)
    mcfg = ModelConfig(threads=args.threads)

    rows: list[dict[str, Any]] = []
    reference: list[str] | None = None
    for name in wanted:
        t0 = time.perf_counter()
        proc = None
        if name == "transformers":
            from evolver.backends.transformers_backend import TransformersBackend

            backend: Any = TransformersBackend(str(model), mcfg, batch_size=args.batch)
        elif name == "openai":
            from evolver.backends.openai_backend import OpenAIBackend

            proc, url = start_serve(root, model, args.threads, args.batch)
            backend = OpenAIBackend(str(model), OpenAIBackendConfig(base_url=url, concurrency=args.batch, retries=2), mcfg)
        elif name == "vllm":
            if importlib.util.find_spec("vllm") is None:
                print("bench: vllm is not importable here; skipped (run with the venv of scripts/vllm_env.sh)",
                      file=sys.stderr)
                continue
            from evolver.backends.vllm_backend import VLLMBackend

            backend = VLLMBackend(str(model), mcfg, VLLMBackendConfig(max_lora_rank=8, max_model_len=512))
        else:
            raise SystemExit(f"bench: unknown backend {name!r} (transformers, openai, vllm)")
        load = time.perf_counter() - t0
        try:
            seconds, outs = timed(backend, prompts, sampling, adapter)
        finally:
            backend.close()
            if proc is not None:
                proc.terminate()
                proc.wait(30)
        texts = [o.text for o in outs]
        if name == "transformers":
            reference = texts
        tokens = sum(o.tokens_out for o in outs)
        rows.append({"backend": name, "prompts": len(prompts), "load_s": round(load, 2), "seconds": round(seconds, 2),
                     "tokens_out": tokens, "tokens_per_s": round(tokens / seconds, 1),
                     "same_as_transformers": None if reference is None else sum(a == b for a, b in zip(texts, reference))})

    if args.json:
        print(json.dumps({"model": str(model), "threads": args.threads, "batch": args.batch,
                          "max_new_tokens": args.max_new_tokens, "rows": rows}, indent=2))
        return
    print(f"model {model} · {len(prompts)} prompts · greedy, {args.max_new_tokens} new tokens · adapter gen-0001 · "
          f"threads {args.threads} · batch {args.batch}")
    print(f"{'backend':<14}{'load s':>8}{'seconds':>9}{'tokens':>8}{'tokens/s':>10}{'same':>6}")
    for r in rows:
        same = "-" if r["same_as_transformers"] is None else str(r["same_as_transformers"])
        print(f"{r['backend']:<14}{r['load_s']:>8.2f}{r['seconds']:>9.2f}{r['tokens_out']:>8}{r['tokens_per_s']:>10.1f}"
              f"{same:>6}")


if __name__ == "__main__":
    main()
