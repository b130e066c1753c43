"""Seconds, peak memory and tokens/s of the SFT and DPO phases on a synthetic D+ / D± of N rows,
against a plain PyTorch loop on the same rows, model, LoRA and batch shapes.

    python bench/train.py [--rows 500] [--epochs 1] [--model DIR] [--threads 2] [--set KEY=VALUE ...] [--json]

Runs the real phase path (store -> child process -> hashed adapter) with the default
training config (`--set training.sft.batch_size=8` changes it), on the embedded world model when
it is built (`evolver world pretrain`), else on a small random llama built on the spot. Rows are
arith reflections with realistic lengths. `seconds` is the child's own time (load + train + save);
`wall` adds the process start and the imports. Peak RSS is the child's.

Then `bench/plain_loop.py` trains the same phase again in this process for the same number of
steps: forward, backward, AdamW, nothing else, on batches trl itself collated. Tokens/s counts the
tokens the model reads (prompt + completion; both of a DPO pair) over the rows each run trained on:
trl's over its `train_seconds` (the trainer's own clock: data loading, logging and callbacks
included), the loop's over its steps alone. The ratio trl / loop is the share of the practical limit
that evolver's training reaches (goal: >= 0.7).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # plain_loop

from evolver.backends.holder import BackendHolder  # noqa: E402
from evolver.config import LoadedConfig, validate  # noqa: E402
from evolver.context import StageContext  # noqa: E402
from evolver.daemon.cycle import run_stage  # noqa: E402
from evolver.states import Stage  # noqa: E402
from evolver.reflection import prompts  # noqa: E402
from evolver.store import Store  # noqa: E402
from evolver.world import base_model_path  # noqa: E402
from evolver.world.task import ANSWER_FORMAT, ArithTask, feedback_for, gold_steps, parse_question  # noqa: E402
from evolver.world.task import answer_of, render_solution  # noqa: E402


def synthetic_rows(n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """D+ rows (wrong trial 1, a diagnosing reflection, correct trial 2) and D± pairs over them."""
    dplus, pairs = [], []
    for i, item in enumerate(ArithTask().load("train", n)):
        steps = gold_steps(parse_question(item.text))
        good = render_solution(steps)
        wrong_digit = (steps[0].s + 1) % 10
        bad = good.replace(f"Finish[{answer_of(steps)}]", f"Finish[{answer_of(steps)[:-1]}{wrong_digit}]")
        bad_answer = f"{answer_of(steps)[:-1]}{wrong_digit}"
        rp = prompts.reflect_prompt(ANSWER_FORMAT, item.text, bad, feedback_for(bad_answer, item.gold),
                                    "Look for calculation errors.")
        refl = f" The sum in place 1 is wrong: it should end in {steps[0].s % 10}. Recompute each column and carry."
        dplus.append({"question_id": i, "attempt_id": i, "reflection_id": i, "next_attempt_id": n + i,
                      "instruction_id": "1-1-1", "question": item.text, "trial1": bad, "reflect_prompt": rp,
                      "reflection": refl, "retry_prompt": prompts.retry_prompt(rp, refl), "trial2": good})
        pairs.append({"question_id": i, "prompt": rp, "chosen": refl, "rejected": " The solution looks correct.",
                      "chosen_id": i, "rejected_id": 10 * n + i})
    return dplus, pairs


def tiny_model(root: Path) -> Path:
    from evolver.testing.tiny import build_tiny_model

    return build_tiny_model(root / "tiny-llama", arch="llama", hidden=256, layers=4)


def bench(rows: int, epochs: float, model: str | None, threads: int, overrides: dict[str, Any] | None = None,
          plain: bool = True) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="evolver-bench-train-") as tmp:
        root = Path(tmp)
        if model is None:
            embedded = base_model_path()
            model = str(embedded) if (embedded / "config.json").is_file() else str(tiny_model(root))
        data: dict[str, Any] = {"state_dir": str(root / "state"), "model": {"base": model, "threads": threads},
                                "training": {"sft": {"epochs": epochs}, "dpo": {"epochs": epochs}}}
        for key, value in (overrides or {}).items():
            *path, last = key.split(".")
            node = data
            for part in path:
                node = node.setdefault(part, {})
            node[last] = value
        cfg = LoadedConfig(validate(data), root / "evolver.toml")
        store = Store.open(cfg.state_dir / "evolver.db")
        store.create_generation(0, None, model, cfg.hash, "{}", status="base")
        store.create_generation(1, 0, model, cfg.hash, "{}")
        dplus, pairs = synthetic_rows(rows)
        store.put_dataset(1, "D+", "harvest", dplus)
        store.put_dataset(1, "D±", "harvest", pairs)
        ctx = StageContext(cfg, store, 1, 0, BackendHolder(cfg))
        out: dict[str, Any] = {"model": model, "rows": rows, "epochs": epochs, "threads": threads, "phases": {}}
        for name, stage in (("sft", Stage.SFT), ("dpo", Stage.DPO)):
            t0 = time.perf_counter()
            r = run_stage(ctx, stage, retries=0, backoff=0.0).detail
            keys = ("steps", "seconds", "train_seconds", "peak_rss_mb", "train_loss", "trainable_params")
            out["phases"][name] = {k: r.get(k) for k in keys}
            out["phases"][name]["wall"] = round(time.perf_counter() - t0, 2)
            if plain:
                import plain_loop

                loop = plain_loop.run(cfg.state_dir / "train" / "gen-0001" / name / "spec.json", int(r["steps"]))
                trl_tokens = loop["rows_seen"] * loop["mean_row_tokens"]  # the same rows, in trl's order
                trl_tps = trl_tokens / float(r["train_seconds"])
                out["phases"][name].update(trl_tokens_per_s=round(trl_tps, 1), plain=loop,
                                           ratio=round(trl_tps / loop["tokens_per_s"], 3))
        out["n_params"] = json.loads((cfg.state_dir / "train/gen-0001/sft/result.json").read_text())["n_params"]
        store.close()
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=500)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--model", default=None, help="Model folder (default: the embedded model, else a tiny llama).")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "0") or 0))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="A config value (TOML), e.g. training.sft.batch_size=8; repeatable.")
    ap.add_argument("--no-plain", action="store_true", help="Skip the plain PyTorch loop.")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    import tomllib

    overrides = {k: tomllib.loads(f"v = {v}")["v"] for k, v in (kv.split("=", 1) for kv in a.set)}
    res = bench(a.rows, a.epochs, a.model, a.threads, overrides, plain=not a.no_plain)
    if a.json:
        print(json.dumps(res, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{res['model']} ({res['n_params'] / 1e6:.1f} M params), {res['rows']} rows, "
                    f"{res['epochs']:g} epoch(s), {res['threads'] or 'default'} threads")
    for col in ("phase", "steps", "seconds", "train s/step", "wall", "peak RSS MB", "train loss",
                "trl tok/s", "plain tok/s", "ratio"):
        t.add_column(col, justify="right")
    for name, p in res["phases"].items():
        loop = p.get("plain")
        t.add_row(name, str(p["steps"]), f"{p['seconds']:.1f}", f"{p['train_seconds'] / max(p['steps'], 1):.3f}",
                  f"{p['wall']:.1f}", f"{p['peak_rss_mb']:.0f}", f"{p['train_loss']:.3f}",
                  f"{p['trl_tokens_per_s']:.0f}" if loop else "-", f"{loop['tokens_per_s']:.0f}" if loop else "-",
                  f"{p['ratio']:.2f}" if loop else "-")
    Console(width=160).print(t)


if __name__ == "__main__":
    main()
