"""Share of a generation's wall time spent outside model compute (store, orchestration, scoring).

Runs one full generation (generate → harvest → sft → dpo → evaluate → decide) through the
daemon's own `run_generation`, timing every backend call and reading the training children's
own timings from the store. Goal: overhead < 3 % of the generation.

    python bench/overhead.py [--config evolver.toml] [--state DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from evolver.backends.base import Adapter, Backend, Output, Sampling, TokenLogprobs
from evolver.backends.factory import make_backend
from evolver.backends.holder import BackendHolder
from evolver.config import LoadedConfig, load_config
from evolver.context import StageContext
from evolver.daemon.cycle import ensure_base, run_generation
from evolver.store import Store


class TimedBackend:
    """Wraps a backend and adds up the seconds spent inside it."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self.seconds = 0.0

    def generate(self, prompts: Sequence[str], sampling: Sampling, seeds: Sequence[int],
                 adapter: Adapter | None = None) -> list[Output]:
        t = time.perf_counter()
        try:
            return self.inner.generate(prompts, sampling, seeds, adapter)
        finally:
            self.seconds += time.perf_counter() - t

    def logprob(self, prompts: Sequence[str], completions: Sequence[str], adapter: Adapter | None = None) -> list[float]:
        t = time.perf_counter()
        try:
            return self.inner.logprob(prompts, completions, adapter)
        finally:
            self.seconds += time.perf_counter() - t

    def render(self, text: str) -> str:
        return self.inner.render(text)

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> str:
        return self.inner.chat_prompt(messages)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def token_logprobs(self, text: str, adapter: Adapter | None = None) -> TokenLogprobs:
        return self.inner.token_logprobs(text, adapter)

    def close(self) -> None:
        self.inner.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "evolver.toml"))
    ap.add_argument("--state", default=None)
    args = ap.parse_args()
    base = load_config(args.config)
    data = base.config.model_dump(mode="json")
    data["state_dir"] = args.state or tempfile.mkdtemp(prefix="evolver-overhead-")
    cfg = LoadedConfig(type(base.config).model_validate(data), base.path)
    timed: list[TimedBackend] = []

    def factory(c: LoadedConfig) -> Backend:
        timed.append(TimedBackend(make_backend(c)))
        return timed[-1]  # type: ignore[return-value]

    holder = BackendHolder(cfg, factory)
    store = Store.open(cfg.state_dir / "evolver.db")
    stop = threading.Event()
    ctx = StageContext(cfg, store, 0, None, holder, stop)
    ensure_base(ctx)  # generation 0's evaluation is not counted
    holder.get()
    timed[-1].seconds = 0.0
    t0 = time.perf_counter()
    gen = run_generation(ctx).generation
    total = time.perf_counter() - t0
    model = timed[-1].seconds
    phases = {p.name: p for p in store.phases(gen)}
    child_wall = sum((p.finished_at or 0) - (p.started_at or 0) for n, p in phases.items() if n in ("sft", "dpo")
                     and p.status == "done")
    train = sum(json.loads(p.detail or "{}").get("train_seconds") or 0 for n, p in phases.items() if n in ("sft", "dpo"))
    outside = total - model - child_wall
    t = Table(title=f"one generation (gen-{gen:04d}) on {Path(cfg.config.model.base).name}")
    t.add_column("part")
    t.add_column("seconds", justify="right")
    t.add_column("share", justify="right")
    rows = [("generation wall time", total), ("backend calls (generation, scoring by likelihood)", model),
            ("training children (wall, incl. imports)", child_wall), ("  of which training steps", train),
            ("outside model compute (store, orchestration, scoring)", outside)]
    for name, s in rows:
        t.add_row(name, f"{s:.1f}", f"{100 * s / total:.1f} %")
    Console().print(t)
    holder.close()
    store.close()


if __name__ == "__main__":
    main()
