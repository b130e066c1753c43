"""The daemon's resident memory across generations: does it stay flat?

    python bench/memory.py [--generations 10] [--config bench/memory.toml] [--state DIR] [--no-release] [--json]

Runs the daemon in this process for `--generations` generations of a small configuration (a fresh
state folder unless `--state` names one) and prints, after each generation, this process's resident
memory (VmRSS), its highest value during that generation, and on CUDA the memory PyTorch has allocated
and reserved. The bar (issue 24): the last generation's resident memory within 10 % of generation 2's
(generation 1 still loads what every later one reuses: libraries, the model, kernels). Its policy
(bench/memory_policy.toml) takes one look, so every generation does the same work: a second look
evaluates up to 1,000 questions per level, and the memory after it follows that work, not a leak.
The training children's own peaks are in each phase's detail (`evolver show N`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

from evolver.backends.memory import rss_mb
from evolver.config import LoadedConfig, load_config

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 0.10


def cuda_mb() -> tuple[float, float] | None:
    """(allocated, reserved) MiB on the current CUDA device, or None when CUDA is not in use."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return None
    return torch.cuda.memory_allocated() / 2**20, torch.cuda.memory_reserved() / 2**20


class Sampler(threading.Thread):
    """Samples this process's RSS every `period` s; closes a row each time the daemon finishes a generation."""

    def __init__(
        self, done_count: Callable[[], int], period: float = 0.2, on_row: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        super().__init__(daemon=True)
        self.done_count = done_count  # () -> generations finished so far
        self.on_row = on_row  # (row) -> None, called as each generation's row closes (progress)
        self.period = period
        self.rows: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self._peak = 0.0
        self._t0 = time.time()

    def run(self) -> None:
        while not self.stop.wait(self.period):
            now = rss_mb() or 0.0
            self._peak = max(self._peak, now)
            while self.done_count() > len(self.rows):
                cuda = cuda_mb()
                self.rows.append(
                    {
                        "generation": len(self.rows) + 1,
                        "rss_mb": round(now, 1),
                        "peak_rss_mb": round(self._peak, 1),
                        "minutes": round((time.time() - self._t0) / 60, 2),
                        "cuda_allocated_mb": round(cuda[0], 1) if cuda else None,
                        "cuda_reserved_mb": round(cuda[1], 1) if cuda else None,
                    }
                )
                self._peak = now
                if self.on_row is not None:
                    self.on_row(self.rows[-1])


def verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Last generation against generation 2 (the bar), and the growth per generation from 2 on (least squares)."""
    if len(rows) < 3:
        return {"flat": None, "note": "need at least 3 generations"}
    g2, last = rows[1]["rss_mb"], rows[-1]["rss_mb"]
    xs = [r["generation"] for r in rows[1:]]
    ys = [r["rss_mb"] for r in rows[1:]]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    change = (last - g2) / g2
    return {
        "gen2_mb": g2,
        "last_mb": last,
        "change": round(change, 4),
        "slope_mb_per_gen": round(slope, 1),
        "flat": abs(change) <= TOLERANCE,
    }


def print_row(r: dict[str, Any]) -> None:
    """One generation's line, printed as soon as it closes: a run stopped early still shows what it measured."""
    alloc = f"{r['cuda_allocated_mb']:.0f}" if r["cuda_allocated_mb"] is not None else "-"
    res = f"{r['cuda_reserved_mb']:.0f}" if r["cuda_reserved_mb"] is not None else "-"
    print(
        f"{r['generation']:>3} {r['rss_mb']:>8.0f} {r['peak_rss_mb']:>8.0f} {alloc:>10} {res:>9} {r['minutes']:>6.1f}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "bench" / "memory.toml"))
    ap.add_argument("--generations", type=int, default=10)
    ap.add_argument("--state", default=None, help="State folder (default: a fresh temporary one).")
    ap.add_argument(
        "--no-release",
        action="store_true",
        help="A/B: skip the daemon's release of freed memory before each stage (what it did before).",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from evolver.backends.holder import BackendHolder
    from evolver.daemon.runner import Daemon

    if args.no_release:
        BackendHolder.release_memory = lambda self: None  # type: ignore[method-assign]

    base = load_config(args.config)
    data = base.config.model_dump(mode="json")
    data["state_dir"] = args.state or tempfile.mkdtemp(prefix="evolver-memory-")
    cfg = LoadedConfig(type(base.config).model_validate(data), base.path)
    backends = BackendHolder(cfg)
    daemon = Daemon(cfg, args.generations, None, backends)
    start_mb = rss_mb()
    if not args.json:
        print(f"daemon RSS at start {start_mb:.0f} MB (state {cfg.state_dir})")
        print(f"{'gen':>3} {'RSS MB':>8} {'peak MB':>8} {'CUDA alloc':>10} {'reserved':>9} {'min':>6}", flush=True)
    sampler = Sampler(lambda: len(daemon.result.generations), on_row=None if args.json else print_row)
    sampler.start()
    result = daemon.run(signals=True)
    time.sleep(2 * sampler.period)
    sampler.stop.set()
    sampler.join()
    backends.close()
    out = {
        "state": str(cfg.state_dir),
        "start_rss_mb": start_mb,
        "generations": sampler.rows,
        "fatal": result.fatal,
        **verdict(sampler.rows),
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    if out["flat"] is not None:
        print(
            f"generation {len(sampler.rows)} vs 2: {100 * out['change']:+.1f} % (bar ±{100 * TOLERANCE:.0f} %), "
            f"trend {out['slope_mb_per_gen']:+.1f} MB per generation: {'flat' if out['flat'] else 'NOT flat'}"
        )
    if result.fatal:
        print(f"daemon gave up: {result.fatal}")


if __name__ == "__main__":
    main()
