"""Stopping on request with a model whose batches take longer than 10 s (issue 21).

SIGTERM in every phase (generation 0's evaluation, generate, harvest, sft, dpo, evaluate, decide):
`evolver run` exits 0 within 10 s, the phase stays resumable, and the run then finishes. A second
SIGTERM exits at once and leaves no lock. These run `evolver run` as a real subprocess on a deep,
narrow model (48 layers of width 64: each decoding step is slow, a prompt's prefill stays short)
whose trial `max_new_tokens` is calibrated on this machine so that one generation batch takes about
15 s; reflections are kept short.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from evolver.daemon.lock import LOCK_NAME, holder
from evolver.testing.processes import end_process
from evolver.store import Store

pytestmark = pytest.mark.slow

STOP_WITHIN_S = 10.0
BATCH_S = 15.0  # what one generation batch is made to take (its retries take longer)
SLOW_MODEL = {"hidden": 64, "layers": 48}

# Trials as long as the calibration says, reflections short; few questions; one protocol.
def _slow(tokens: int) -> dict:
    return {"generation": {"trial": {"temperature": 0.0, "max_new_tokens": tokens}, "reflection": {"max_new_tokens": 12}},
            "reflection": {"pool_size": 6, "k": 3},  # enough failed answers with a fixed and an unfixed retry for DPO
            "training": {"sft": {"min_samples": 1, "data": ["D+", "D-"], "max_length": 4096},
                         "dpo": {"min_pairs": 1, "max_length": 4096, "data": ["dpm", "dpref"]}},  # pairs of either kind
            "evaluation": {"paper_protocol": False}}


def _tokens_for(model: Path, seconds: float) -> int:
    """`max_new_tokens` that makes a batch of a few greedy prompts take about `seconds` on this machine."""
    import torch

    from evolver.backends.base import Sampling
    from evolver.backends.transformers_backend import TransformersBackend
    from evolver.config.schema import ModelConfig

    torch.set_num_threads(1)
    backend = TransformersBackend(str(model), ModelConfig(base=str(model), threads=1), batch_size=16)
    prompts = [f"Question: {i} + 2. Answer with Finish[x]." for i in range(4)]
    backend.generate(prompts, Sampling(0.0, 1.0, 8), [0] * 4)  # warm-up
    t0 = time.perf_counter()
    backend.generate(prompts, Sampling(0.0, 1.0, 64), [0] * 4)
    per_token = (time.perf_counter() - t0) / 64
    backend.close()
    return int(min(max(seconds / per_token, 100), 1000))


@pytest.fixture(scope="module")
def slow_world(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Path:
    from evolver.testing.tiny import build_tiny_model
    from evolver.testing.worlds import hashy_world

    probe = build_tiny_model(tmp_path_factory.mktemp("probe") / "model", **SLOW_MODEL)
    world = hashy_world(tmp_path_factory.mktemp("slow"), repo_root / "policies", _slow(_tokens_for(probe, BATCH_S)),
                        limit=2, **SLOW_MODEL)
    policy = world / "policies" / "default.toml"  # one look: a second one evaluates up to 1,000 slow questions
    policy.write_text(re.sub(r"(?m)^confirm = \d+", "confirm = 0", policy.read_text()))
    return world


def _start(cwd: Path) -> subprocess.Popen:
    """`evolver run` with its output in files (a pipe nobody reads could stall it), read back by `_err`."""
    with (cwd / "run.err").open("w") as out:
        return subprocess.Popen([sys.executable, "-m", "evolver.cli.app", "run", "--generations", "1"], cwd=cwd,
                                stdout=subprocess.DEVNULL, stderr=out, text=True)


def _err(cwd: Path) -> str:
    return (cwd / "run.err").read_text()


def _phase(db: Path, gen: int, name: str) -> str | None:
    if not db.exists():
        return None
    with Store.open(db) as s:
        ph = s.phase(gen, name)
        return ph.status if ph is not None else None


def _count(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    with Store.open(db) as s:
        return int(s._all(sql)[0][0])


class FinishedFirst(Exception):
    """The run finished cleanly before the moment waited for: this machine's outputs left no long batch there."""


def _when(proc: subprocess.Popen, ready, timeout: float = 3600) -> None:  # noqa: ANN001 - a predicate
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            if proc.returncode == 0:
                raise FinishedFirst
            raise AssertionError(f"exited early (rc={proc.returncode})")
        if ready():
            return
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("timed out waiting")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _terminate(proc: subprocess.Popen, cpu: dict[str, float] | None = None, label: str = "") -> float:
    """SIGTERM, wait for the exit; the wall seconds it took (and, in `cpu`, the CPU seconds the daemon spent
    after the signal: what a loaded machine stretches into wall time)."""
    before = _cpu_s(proc.pid)
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    timer = threading.Timer(120, proc.kill)
    timer.start()
    try:
        _pid, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    took = time.time() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if cpu is not None:
        cpu[label] = usage.ru_utime + usage.ru_stime - before
    return took


def _training(proc: subprocess.Popen) -> bool:
    return bool(psutil.Process(proc.pid).children(recursive=True))


def _wait_inside(proc: subprocess.Popen, db: Path, gen: int, phase: str, rows: str | None) -> None:
    """Until `proc` is inside `phase` of generation `gen`, in its long batch where there is one."""
    if rows:  # the retry batch is the long one (its prompts hold a long trial answer): wait for the reflections
        _when(proc, lambda: _phase(db, gen, phase) == "running"
              and _count(db, "SELECT COUNT(*) " + rows.format("reflections")) > 0)
        time.sleep(2.0)
    elif phase in ("sft", "dpo"):
        # DPO needs a chosen and a rejected reflection on one question; the tiny model's sampled outputs (their
        # length is calibrated to this machine) may give none, and then the stage is skipped: stop the run in
        # the stage that follows instead, before its first batch is done.
        _when(proc, lambda: (_phase(db, gen, phase) == "running" and _training(proc))
              or _phase(db, gen, phase) == "skipped")
        if _phase(db, gen, phase) == "skipped":
            print(f"{phase} skipped on this machine's outputs; stopping in the next stage", flush=True)
            _when(proc, lambda: _phase(db, gen, "evaluate") == "running")
        else:
            time.sleep(1.0)
    else:
        _when(proc, lambda: _phase(db, gen, phase) == "running")


def test_sigterm_in_every_phase_exits_0_within_10_s_and_the_run_resumes(slow_world: Path, tmp_path: Path) -> None:
    d = shutil.copytree(slow_world, tmp_path / "w")
    db = d / "state" / "evolver.db"
    # Signal once the model is loaded and a long batch is under way (the retry batch where there is one);
    # the rows of the batch cut short must not appear.
    gen0 = "FROM {} WHERE generation_id = 0"
    pool = "FROM {} WHERE generation_id = 1 AND purpose = 'pool'"
    gen1 = "FROM {} WHERE generation_id = 1 AND purpose != 'pool'"
    plan = [("gen-0 evaluate", 0, "evaluate", gen0), ("generate", 1, "generate", pool), ("harvest", 1, "harvest", None),
            ("sft", 1, "sft", None), ("dpo", 1, "dpo", None), ("evaluate", 1, "evaluate", gen1)]
    latency: dict[str, float] = {}
    cpu: dict[str, float] = {}
    finished_first = None
    for label, gen, phase, rows in plan:
        proc = _start(d)
        try:
            _wait_inside(proc, db, gen, phase, rows)
        except FinishedFirst:  # e.g. generation 1 answered every held-out question at once: nothing long to cut
            print(f"{label}: the run finished cleanly first (this machine's outputs left no long batch)", flush=True)
            finished_first = label
            break
        retries = "SELECT COUNT(*) " + rows.format("attempts") + " AND trial = 2" if rows else None
        before = _count(db, retries) if retries else None
        latency[label] = _terminate(proc, cpu, label)
        print(f"SIGTERM in {label}: exit {proc.returncode} after {latency[label]:.1f} s ({cpu[label]:.1f} s CPU)",
              flush=True)
        assert proc.returncode == 0, (label, proc.returncode, _err(d)[-2000:])
        assert latency[label] < STOP_WITHIN_S, (label, latency[label])
        assert _phase(db, gen, phase) in ("running", "done", "skipped"), label  # resumable, never failed
        if retries:  # stopped inside the retry batch: none of its rows was written
            assert before == 0 and _count(db, retries) == 0, (label, before)
        assert holder(d / "state") is None and (d / "state" / LOCK_NAME).read_text() == ""
    assert finished_first not in ("gen-0 evaluate", "generate"), f"no long batch in {finished_first}: the model is not slow"
    if finished_first is None:
        proc = _start(d)  # decide: right as evaluate is done
        _when(proc, lambda: _phase(db, 1, "evaluate") == "done")
        latency["decide"] = _terminate(proc, cpu, "decide")
        assert proc.returncode == 0 and latency["decide"] < STOP_WITHIN_S
        r = subprocess.run([sys.executable, "-m", "evolver.cli.app", "run", "--generations", "1"], cwd=d,
                           capture_output=True, text=True, timeout=1800)  # resumes to a decided generation
        assert r.returncode == 0, r.stderr[-2000:]
    with Store.open(db) as s:
        assert s.integrity_ok()
        assert s.generation(1).status in ("promoted", "rejected")
        assert [s.phase(1, p).status for p in ("generate", "harvest", "evaluate", "decide")] == ["done"] * 4
        assert {s.phase(1, p).status for p in ("sft", "dpo")} <= {"done", "skipped"}  # DPO may find no pairs
        # the batches really were long: the retries came this long after the (short) reflections they follow
        refl = s._all("SELECT MAX(created_at) FROM reflections WHERE generation_id = 1 AND purpose = 'pool'")
        t2 = s._all("SELECT MIN(created_at) FROM attempts WHERE generation_id = 1 AND purpose = 'pool' AND trial = 2")
        batch_s = t2[0][0] - refl[0][0]
    print(f"stop latency per phase, wall s (CPU s after SIGTERM): "
          f"{', '.join(f'{k} {v:.1f} ({cpu[k]:.1f})' for k, v in latency.items())}; the retry batch took {batch_s:.1f} s")
    assert batch_s > STOP_WITHIN_S


def test_a_second_sigterm_exits_at_once_and_leaves_no_lock(slow_world: Path, tmp_path: Path) -> None:
    """A stop that cannot come soon: the daemon's backend is a server (`evolver serve` on the slow model) still
    writing answers it asked for, and requests in flight are waited for. The first SIGTERM asks for a stop;
    the second, as `timeout` and impatient people send it, exits at once and releases the lock."""
    served = shutil.copytree(slow_world, tmp_path / "served")
    (served / "state").mkdir()
    server = subprocess.Popen([sys.executable, "-m", "evolver.cli.app", "serve", "--port", "0", "--json"], cwd=served,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        url = json.loads(server.stdout.readline())["url"]
        d = shutil.copytree(slow_world, tmp_path / "w")
        cfg = d / "evolver.toml"
        text = cfg.read_text().replace('backend = "transformers"', 'backend = "openai"')
        text = re.sub(r'(?m)^base_url = ".*"$', f'base_url = "{url}"', text).replace("timeout_s = 120.0", "timeout_s = 600.0")
        text = text.replace('model = ""', 'model = "base"')  # generation 0 is the server's base model
        cfg.write_text(text)
        db = d / "state" / "evolver.db"
        proc = _start(d)
        _when(proc, lambda: _phase(db, 0, "evaluate") == "running")
        time.sleep(3.0)  # its first requests are in flight: the server's batch takes about BATCH_S
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert proc.poll() is None, _err(d)[-2000:]  # the first stop waits for the answers under way
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        took = time.time() - t0
        err = _err(d)
        assert proc.returncode == 128 + signal.SIGTERM and took < 2.0, (proc.returncode, took, err[-2000:])
        assert err.rstrip().splitlines()[-1] == ("evolver: second signal: exiting at once; the interrupted phase"
                                                 " resumes on the next run") and "Traceback" not in err
        assert holder(d / "state") is None and (d / "state" / LOCK_NAME).read_text() == ""
        with Store.open(db) as s:
            assert s.integrity_ok() and s.phase(0, "evaluate").status == "running"  # resumable
    finally:
        end_process(server)
