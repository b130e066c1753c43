"""Store benchmark at ReflectEvo-460K scale, and `evolver status` over 1,000 generations.

    .venv/bin/python bench/store.py                  # the full run (goals: <= 60 s, <= 50 ms)
    .venv/bin/python bench/store.py --records 4000 --generations 20 --json   # a smoke run

Part 1 writes `--records` reflection records the way the reflection phase does, through the Store's
batch methods in chunks: per question one wrong trial-1 attempt, k reflections on it, k trial-2
attempts (one per reflection), then the links reflection -> trial 2, in the order the reflection
engine writes them. Texts: every prompt ~600 chars, every answer ~400, every reflection ~500 (real
reflection and retry prompts repeat the question and the failed answer, so real records run larger). Part 2 builds a store of 1,000 generations (6 phases each, eval results,
events) and times `evolver.store.watch.status_summary` and the `evolver status --json` command.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from evolver.states import STAGES, EvalProtocol, EventKind, GenStatus, PhaseStatus, PointerName, Stage, gen_name
from evolver.store import Store
from evolver.store.watch import status_summary


class Text:
    """Varied, incompressible-looking text cut from one random pool: cheap to make, unlike real strings."""

    def __init__(self, seed: int = 0) -> None:
        rng = random.Random(seed)
        words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
                 for _ in range(4000)] + [str(i) for i in range(100)] + ["=", "+", ";", "Finish[", "]"]
        self.pool = " ".join(rng.choice(words) for _ in range(200_000))
        self.rng = rng

    def __call__(self, n: int, tag: str) -> str:
        start = self.rng.randrange(0, len(self.pool) - n)
        return f"{tag} {self.pool[start:start + n - len(tag) - 1]}"


def _db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def bench_records(workdir: Path, records: int, k: int, chunk_questions: int) -> dict[str, float]:
    """Write `records` reflections with their attempts; return timings and sizes.

    The texts of a chunk are made before its clock starts: `store_s` is the store's share (building
    row dicts, the inserts, the id look-ups and the links), what a phase would pay on top of the model.
    """
    path = workdir / "reflections.db"
    text = Text(1)
    n_q = records // k
    store = Store.open(path)
    store.create_generation(1, None, "embedded", "cfg", "{}")
    gen, purpose = 1, "train"
    wall0 = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    store_s = 0.0
    steps: dict[str, float] = {}
    n_attempts = n_refl = 0
    for lo in range(0, n_q, chunk_questions):
        hi = min(n_q, lo + chunk_questions)
        qtext = {i: text(300, f"Q{i}") for i in range(lo, hi)}
        t1 = {i: (text(600, f"P{i}"), text(400, f"O{i}")) for i in range(lo, hi)}
        rtext = {(i, b): (text(600, f"RP{i}.{b}"), text(500, f"R{i}.{b}"), text(600, f"P2{i}.{b}"), text(400, f"O2{i}.{b}"))
                 for i in range(lo, hi) for b in range(k)}

        t0 = lap = time.perf_counter()

        def step(name: str) -> None:
            nonlocal lap
            now = time.perf_counter()
            steps[name] = steps.get(name, 0.0) + now - lap
            lap = now

        qids = store.upsert_questions(
            {"source": "bench", "external_id": f"q{i}", "split": "train", "text": qtext[i], "gold": str(i)}
            for i in range(lo, hi))
        qs = [(i, qids[f"q{i}"]) for i in range(lo, hi)]
        step("questions")
        trial1 = [
            dict(generation_id=gen, purpose=purpose, question_id=q, trial=1, branch=0, backend="transformers",
                 model_ref="gen-0000", sampling='{"temperature":0.0,"top_p":1.0}', seed=q, prompt=t1[i][0],
                 output=t1[i][1], answer="41", correct=False, reason="wrong answer", tokens_in=150, tokens_out=100)
            for i, q in qs]
        store.insert_attempts(trial1)
        step("trial-1 attempts")
        qlo, qhi = qs[0][1], qs[-1][1]
        first = dict(store._all(
            "SELECT question_id, id FROM attempts WHERE generation_id=? AND purpose=? AND trial=1 AND branch=0"
            " AND question_id BETWEEN ? AND ?", (gen, purpose, qlo, qhi)))
        step("id look-ups")
        reflections = [
            dict(generation_id=gen, purpose=purpose, attempt_id=first[q], branch=b, instruction_id=f"{b % 3 + 1}-1-1",
                 model_ref="gen-0000", sampling='{"temperature":0.8,"top_p":0.95}', seed=q * k + b,
                 prompt=rtext[i, b][0], text=rtext[i, b][1], tokens_out=125)
            for i, q in qs for b in range(k)]
        store.insert_reflections(reflections)
        step("reflections")
        store.insert_attempts([
            dict(generation_id=gen, purpose=purpose, question_id=q, trial=2, branch=b, backend="transformers",
                 model_ref="gen-0000", sampling='{"temperature":0.0,"top_p":1.0}', seed=q * k + b,
                 prompt=rtext[i, b][2], output=rtext[i, b][3], answer=str(b), correct=b % 2 == 0,
                 reason="ok" if b % 2 == 0 else "wrong answer", tokens_in=280, tokens_out=100)
            for i, q in qs for b in range(k)])
        step("trial-2 attempts")
        refl = store._all("SELECT r.id, a.question_id, r.branch FROM reflections r JOIN attempts a ON a.id = r.attempt_id"
                          " WHERE r.generation_id=? AND r.purpose=? AND r.attempt_id BETWEEN ? AND ?",
                          (gen, purpose, min(first.values()), max(first.values())))
        second = {(q, b): (aid, ok) for aid, q, b, ok in store._all(
            "SELECT id, question_id, branch, correct FROM attempts WHERE generation_id=? AND purpose=? AND trial=2"
            " AND question_id BETWEEN ? AND ?", (gen, purpose, qlo, qhi))}
        step("id look-ups")
        store.link_reflections([(rid, *second[(q, b)]) for rid, q, b in refl])
        step("links")
        store_s += time.perf_counter() - t0
        n_attempts += (hi - lo) * (1 + k)
        n_refl += (hi - lo) * k
    wall = time.perf_counter() - wall0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    counts = store.counts()
    assert counts["reflections"] == n_refl and counts["attempts"] == n_attempts, counts
    linked = store._all("SELECT COUNT(*) FROM reflections WHERE next_attempt_id IS NOT NULL")[0][0]
    assert linked == n_refl
    # Idempotence at scale: writing the last chunk again (as a resumed phase would) adds nothing.
    store.insert_attempts(trial1)
    store.insert_reflections(reflections)
    assert store.counts() == counts
    store.close()
    size = _db_bytes(path)
    return {"records": n_refl, "attempts": n_attempts, "seconds": store_s, "wall_s": wall, "cpu_s": cpu,
            "records_per_s": n_refl / store_s, "rows_per_s": (n_refl + n_attempts) / store_s,
            "db_bytes": size, "bytes_per_record": size / n_refl, "steps_s": steps}


def build_generations(state: Path, generations: int) -> float:
    """A store with `generations` generations as the daemon leaves them; returns seconds taken."""
    t0 = time.perf_counter()
    store = Store.open(state / "evolver.db")
    store.create_generation(0, None, "embedded", "cfg", "{}", status=GenStatus.PROMOTED)
    store.set_pointer(PointerName.CURRENT, 0)
    rng = random.Random(0)
    current = 0
    for g in range(1, generations + 1):
        last = g == generations
        store.create_generation(g, current, "embedded", "cfg", '{"seed": 0}', status=GenStatus.RUNNING if last else GenStatus.EVALUATED,
                                adapter_path=f"adapters/{gen_name(g)}")
        with store.tx() as c:
            now = time.time()
            rows = [(g, name, PhaseStatus.RUNNING if last and name == Stage.SFT else PhaseStatus.DONE, 1, now,
                     None if last else now, json.dumps({"rows": 100}))
                    for name in (STAGES[:3] if last else STAGES)]
            c.exec_driver_sql("INSERT INTO phases (generation_id, name, status, attempts, started_at, finished_at,"
                              " detail) VALUES (?,?,?,?,?,?,?)", rows)
            if not last:
                promoted = rng.random() < 0.4
                kind = EventKind.PROMOTED if promoted else EventKind.REJECTED
                store.record_event(EventKind.NOTE, g, "daemon", "generation started", conn=c)
                store.record_event(kind, g, "policy", f"acc@t2 {'+' if promoted else '-'}0.01 vs {gen_name(current)}",
                                   metrics={"acc@t2": 0.5, "p": 0.03}, conn=c)
                if promoted:
                    store.set_pointer(PointerName.CURRENT, g, conn=c)
                    current = g
        if not last:
            for bench in ("arith", "world"):
                store.put_eval_results(g, bench, EvalProtocol.STANDARD, "cfg", {
                    "acc@t1": (rng.random(), 200), "acc@t2": (rng.random(), 200), "delta": (rng.random() - 0.5, 200)})
    store.close()
    return time.perf_counter() - t0


def bench_status(workdir: Path, generations: int, repeats: int) -> dict[str, float]:
    root = workdir / "gens"
    state = root / "state"
    state.mkdir(parents=True)
    (root / "evolver.toml").write_text('state_dir = "state"\n')
    build_s = build_generations(state, generations)
    store = Store.open(state / "evolver.db")
    t = time.perf_counter()
    info = status_summary(store, state, None)
    first_ms = (time.perf_counter() - t) * 1000
    assert info["generations"] == generations + 1 and info["latest"]["phase"] == "sft", info
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        status_summary(store, state, None)
        times.append((time.perf_counter() - t) * 1000)
    store.close()
    exe = Path(sys.executable).with_name("evolver")
    cli = []
    for _ in range(3):
        t = time.perf_counter()
        out = subprocess.run([str(exe), "--config", str(root / "evolver.toml"), "status", "--json"],
                             capture_output=True, text=True, check=True)
        cli.append(time.perf_counter() - t)
        assert json.loads(out.stdout)["generations"] == generations + 1
    return {"generations": generations, "build_s": build_s, "summary_first_ms": first_ms,
            "summary_median_ms": statistics.median(times), "summary_max_ms": max(times),
            "cli_median_s": statistics.median(cli), "cli_max_s": max(cli)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=460_000, help="Reflection records (ReflectEvo-460K: 460,000).")
    ap.add_argument("--k", type=int, default=4, help="Reflections per wrong trial-1 attempt.")
    ap.add_argument("--chunk", type=int, default=2_500, help="Questions per batch (k reflections each).")
    ap.add_argument("--generations", type=int, default=1_000, help="Generations in the status store.")
    ap.add_argument("--repeats", type=int, default=50, help="Timed status_summary() calls.")
    ap.add_argument("--dir", type=Path, default=None, help="Work folder (default: a temp dir, removed after).")
    ap.add_argument("--json", action="store_true", help="Print the results as JSON.")
    args = ap.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="evolver-bench-", dir=args.dir))
    try:
        rec = bench_records(workdir, args.records, args.k, args.chunk)
        st = bench_status(workdir, args.generations, args.repeats)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps({"records": rec, "status": st}, indent=2))
        return 0
    rows = [
        ("reflection records", f"{rec['records']:,}", ""),
        ("attempts (trial 1 + trial 2)", f"{rec['attempts']:,}", ""),
        ("store time: insert + look up + link", f"{rec['seconds']:.1f} s", "goal <= 60 s"),
        *((f"  of which {name}", f"{sec:.1f} s", "") for name, sec in rec["steps_s"].items()),
        ("wall time incl. making the texts", f"{rec['wall_s']:.1f} s", ""),
        ("CPU time (user + sys) of that", f"{rec['cpu_s']:.1f} s", "what other loads cannot inflate"),
        ("records / s", f"{rec['records_per_s']:,.0f}", ""),
        ("rows / s (attempts + reflections)", f"{rec['rows_per_s']:,.0f}", ""),
        ("DB size", f"{rec['db_bytes'] / 2**20:,.0f} MiB", ""),
        ("DB bytes / record", f"{rec['bytes_per_record']:,.0f}", "incl. its attempts"),
        (f"status store build ({st['generations']:,} gens)", f"{st['build_s']:.1f} s", ""),
        ("status summary, first call", f"{st['summary_first_ms']:.1f} ms", ""),
        ("status summary, median", f"{st['summary_median_ms']:.1f} ms", "goal <= 50 ms"),
        ("status summary, max", f"{st['summary_max_ms']:.1f} ms", ""),
        ("`evolver status --json` wall, median", f"{st['cli_median_s']:.2f} s", "incl. interpreter start"),
    ]
    w = max(len(r[0]) for r in rows)
    print(f"evolver store bench  (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    for name, value, note in rows:
        print(f"  {name:<{w}}  {value:>12}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
