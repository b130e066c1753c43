"""Batched ReflectEvo generation vs the reference's one-question-at-a-time pattern.

Same model, same questions, same seeds, one run: (a) evolver's pipeline (all trial-1 prompts
in one backend call, then all reflections, then all retries, rows stored in bulk) against
(b) a loop over questions with one backend call per prompt and a store write per question,
as bigai-nlco/ReflectEvo does. Because sampling is seeded per item, both produce the same
texts (checked), so the ratio compares equal work.

    python bench/generate.py [--n 256] [--k 2] [--model embedded|PATH] [--batch 64]   (--n: questions per level)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from evolver.backends.base import Sampling
from evolver.backends.transformers_backend import TransformersBackend
from evolver.config.schema import ModelConfig
from evolver.reflection import prompts
from evolver.reflection.engine import REFLECTION_STOP, TRIAL_STOP, LoopSpec, derive_seed, run_loop, uniform_picker, with_stop
from evolver.reflection.instructions import default_pool
from evolver.store import Store


def _task():  # noqa: ANN202
    from evolver.tasks.suites import find_suite

    return find_suite("arith", [Path(__file__).resolve().parents[1] / "evals"]).task()


def batched(backend: TransformersBackend, task, items, spec: LoopSpec, db: Path) -> tuple[float, int]:  # noqa: ANN001
    store = Store.open(db)
    store.create_generation(1, None, "bench", "h", "{}")
    t0 = time.perf_counter()
    ids = store.upsert_questions({"source": task.name, "external_id": it.id, "text": it.text, "gold": it.gold}
                                 for it in items)
    stats = run_loop(store, backend, task, {ids[it.id]: it for it in items}, 1, "gen-0000", None, spec)
    seconds = time.perf_counter() - t0
    store.close()
    return seconds, stats.tokens_out


def sequential(backend: TransformersBackend, task, items, spec: LoopSpec, db: Path) -> tuple[float, int]:  # noqa: ANN001
    """The reference pattern: per question, trial 1, then per reflection one call and one retry call."""
    store = Store.open(db)
    store.create_generation(1, None, "bench", "h", "{}")
    tokens = 0
    trial, reflect = with_stop(spec.trial, TRIAL_STOP), with_stop(spec.reflect, REFLECTION_STOP)
    t0 = time.perf_counter()
    for i, it in enumerate(items, 1):
        qid = store.upsert_questions([{"source": task.name, "external_id": it.id, "text": it.text, "gold": it.gold}])[it.id]
        qkey = f"{task.name}:{it.id}"
        p1 = prompts.trial_prompt(task.answer_format, it.text)
        o1 = backend.generate([p1], trial, [derive_seed(spec.seed, 1, spec.purpose, "trial", qkey, 1, 0)])[0]
        tokens += o1.tokens_out
        v1 = task.score(it, o1.text)
        rows = [dict(generation_id=1, purpose="seq", question_id=qid, trial=1, branch=0, backend="t", model_ref="m",
                     sampling="{}", seed=0, prompt=p1, output=o1.text, answer=v1.answer, correct=v1.correct,
                     reason=v1.reason)]
        if not v1.correct:
            for b in range(spec.k):
                ins = spec.pick(qkey, 1, b)
                rp = prompts.reflect_prompt(task.answer_format, it.text, o1.text, v1.feedback, ins.text)
                r = backend.generate([rp], reflect, [derive_seed(spec.seed, 1, spec.purpose, "reflect", qkey, 1, b)])[0]
                o2 = backend.generate([prompts.retry_prompt(rp, r.text)], trial,
                                      [derive_seed(spec.seed, 1, spec.purpose, "trial", qkey, 2, b)])[0]
                tokens += r.tokens_out + o2.tokens_out
                v2 = task.score(it, o2.text)
                rows.append({**rows[0], "trial": 2, "branch": b, "output": o2.text, "correct": v2.correct})
        store.insert_attempts(rows)
        if i % 16 == 0:  # progress: a run cut short still says how far the slow pattern got
            print(f"one at a time: {i} of {len(items)} questions in {time.perf_counter() - t0:.1f} s", flush=True)
    seconds = time.perf_counter() - t0
    store.close()
    return seconds, tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="Questions per level of the suite (arith: five levels).")
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    from evolver.models import resolve_base

    ref = resolve_base(ModelConfig(base=args.model))
    task = _task()
    items = task.load("train", args.n)
    pool = default_pool()
    spec = LoopSpec(purpose="pool", k=args.k, max_rounds=1, trial=Sampling(0.0, 1.0, 160),
                    reflect=Sampling(0.8, 0.95, 160), pick=uniform_picker(pool, 0, 1), seed=0,
                    instructions={i.id: i for i in pool})
    backend = TransformersBackend(ref, ModelConfig(), batch_size=args.batch)
    with tempfile.TemporaryDirectory() as tmp:
        sa, ta = batched(backend, task, items, spec, Path(tmp) / "a.db")
        print(f"batched: {len(items)} questions in {sa:.1f} s, {ta} tokens out", flush=True)
        sb, tb = sequential(backend, task, items, spec, Path(tmp) / "b.db")
        a = Store.open(Path(tmp) / "a.db")
        b = Store.open(Path(tmp) / "b.db")
        same = sorted(x.output for x in a.attempts(1, "pool")) == sorted(x.output for x in b.attempts(1, "seq"))
    t = Table(title=f"generation: {len(items)} questions ({args.n} per level), k={args.k}, model {Path(ref).name}")
    for c in ("pipeline", "seconds", "tokens", "tokens/s"):
        t.add_column(c, justify="right")
    t.add_row(f"batched (batch {args.batch})", f"{sa:.1f}", str(ta), f"{ta / sa:,.0f}")
    t.add_row("one at a time", f"{sb:.1f}", str(tb), f"{tb / sb:,.0f}")
    console = Console()
    console.print(t)
    console.print(f"speed-up: {sb / sa:.1f}x; same outputs: {same}")


if __name__ == "__main__":
    main()
