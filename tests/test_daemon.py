"""The daemon end to end on a tiny real model: crash anywhere and resume to the same store,
one writer only, readers while it writes, clean stop on SIGTERM.

These run `evolver run` as a real subprocess, so SIGKILL is a real SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from evolver.states import STAGES as PHASES
from evolver.daemon.lock import holder
from evolver.store import Store

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Path:
    """A working dir: tiny model, a test suite whose verifier needs no competent model, the default policy."""
    from evolver.testing.worlds import hashy_world

    return hashy_world(tmp_path_factory.mktemp("world"), repo_root / "policies", levels=2)


def _copy(world: Path, dest: Path) -> Path:
    shutil.copytree(world, dest)
    return dest


def _evolver(cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evolver.cli.app", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def _start(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "evolver.cli.app", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def _snapshot(db: Path) -> dict:
    """Every row by its natural key (ids are not compared: only what they point to)."""
    with Store.open(db) as s:
        assert s.integrity_ok()
        q = {r[0]: r[1] for r in s._all("SELECT id, source || ':' || external_id FROM questions")}
        att = s._all("SELECT id, generation_id, purpose, question_id, trial, branch, prompt, output, correct FROM attempts")
        akey = {a[0]: (a[1], a[2], q[a[3]], a[4], a[5]) for a in att}
        return {
            "attempts": sorted((akey[a[0]], a[6], a[7], a[8]) for a in att),
            "reflections": sorted((r[0], r[1], akey[r[2]], r[3], r[4], r[5], r[6], r[7]) for r in s._all(
                "SELECT generation_id, purpose, attempt_id, branch, instruction_id, prompt, text, success FROM reflections")),
            "datasets": sorted(s._all("SELECT generation_id, kind, source, content_hash, n_rows FROM datasets")),
            "evals": sorted(s._all("SELECT generation_id, benchmark, protocol, metric, value, n, config_hash"
                                   " FROM eval_results")),
            "generations": sorted(s._all("SELECT id, parent_id, status, adapter_sha256 FROM generations")),
            "phases": sorted(s._all("SELECT generation_id, name, status FROM phases")),
            # what the work phases report sums all their attempts: a resumed one reports what an uninterrupted
            # one does (timings aside; training reports the attempt that made the adapter)
            "details": sorted((g, n, json.dumps({k: v for k, v in json.loads(d).items() if k != "seconds"},
                                                 sort_keys=True))
                              for g, n, d in s._all("SELECT generation_id, name, detail FROM phases WHERE name IN"
                                                    " ('generate', 'harvest', 'evaluate') AND detail IS NOT NULL")),
            "events": sorted(s._all("SELECT generation_id, kind FROM events")),
        }


def _kill_when_training(proc: subprocess.Popen, db: Path, phase: str, timeout: float = 300, gen: int = 1) -> None:
    """SIGKILL the daemon while its training child runs `phase` (the realistic OOM/power-cut case)."""
    end = time.time() + timeout
    while time.time() < end and proc.poll() is None:
        if db.exists():
            with Store.open(db) as s:
                ph = s.phase(gen, phase)
            if ph is not None and ph.status == "running" and psutil.Process(proc.pid).children(recursive=True):
                time.sleep(1.0)
                proc.kill()
                proc.wait()
                return
        time.sleep(0.2)
    raise AssertionError(f"never saw {phase} running (rc={proc.poll()}, stderr={proc.stderr.read() if proc.stderr else ''})")


def test_sigkill_in_every_phase_resumes_to_the_same_store(world: Path, tmp_path: Path) -> None:
    """Both runs happen in the same folder (one after the other), as two runs on one machine do: then every
    row matches, adapter sha256 and evaluation keys included (an adapter names its base model's path).
    The kills land in generation 2, whose pool draws on generation 1's history (failed questions return,
    solved ones retire) and on its per-level scores: a resumed generation draws the same pool."""
    run = tmp_path / "run"
    r = _evolver(_copy(world, run), "run", "--generations", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    ref = run.rename(tmp_path / "ref")

    cut = _copy(world, run)
    db = cut / "state" / "evolver.db"
    assert _evolver(cut, "run", "--generations", "1").returncode == 0
    crash_points = {"generate": "generate:4", "harvest": "harvest:2", "evaluate": "evaluate:4", "decide": "decide:2"}
    for phase in PHASES:
        if phase in crash_points:
            r = _evolver(cut, "run", "--generations", "1", env={"EVOLVER_CRASH_AT": crash_points[phase]})
            assert r.returncode == -signal.SIGKILL, (phase, r.returncode, r.stderr[-2000:])
        else:
            proc = _start(cut, "run", "--generations", "1")
            _kill_when_training(proc, db, phase, gen=2)
        with Store.open(db) as s:
            ph = s.phase(2, phase)
            assert ph is not None and ph.status == "running", f"{phase} should have been killed mid-way"
    r = _evolver(cut, "run", "--generations", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    got, want = _snapshot(db), _snapshot(ref / "state" / "evolver.db")
    for table in want:
        assert got[table] == want[table], table
    with Store.open(db) as s:
        pool = json.loads(s.phase(2, "generate").detail)["pool"]
        assert sum(v["returning"] for v in pool["levels"].values()) > 0  # generation 1's failures came back
        assert {r.benchmark for r in s.eval_results(2)} >= {"hashy", "hashy/L0", "hashy/L1"}  # per-level results


def test_single_writer_readers_and_clean_stop(world: Path, tmp_path: Path) -> None:
    d = _copy(world, tmp_path / "w")
    proc = _start(d, "run")
    lock = d / "state" / "daemon.lock"
    end = time.time() + 120
    while not (lock.exists() and (d / "state" / "evolver.db").exists()) and time.time() < end:
        time.sleep(0.2)
    second = _evolver(d, "run", "--generations", "1")
    assert second.returncode == 1
    assert f"already running (pid {proc.pid})" in second.stderr
    for _ in range(5):  # readers while the daemon writes: no "database is locked"
        st = _evolver(d, "status", "--json")
        assert st.returncode == 0, st.stderr
        assert json.loads(st.stdout)["daemon"]["pid"] == proc.pid
        time.sleep(0.5)
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert time.time() - t0 < 35
    assert holder(d / "state") is None and lock.read_text() == ""  # released: nobody holds it, no pid left
    # killed hard: the kernel drops the lock with the process, so the next daemon just takes it
    proc = _start(d, "run")
    while holder(d / "state") is None and time.time() < end + 60:
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    assert holder(d / "state") is None
    r = _evolver(d, "run", "--generations", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    with Store.open(d / "state" / "evolver.db") as s:
        assert s.integrity_ok()
        assert [g.status for g in s.generations()][-1] in ("promoted", "rejected")


def _with_config(world: Path, dest: Path, *changes: tuple[str, str]) -> Path:
    d = _copy(world, dest)
    text = (d / "evolver.toml").read_text()
    for old, new in changes:
        assert old in text
        text = text.replace(old, new)
    (d / "evolver.toml").write_text(text)
    return d


def test_a_run_into_a_log_file_shows_each_phase_moving(world: Path, tmp_path: Path) -> None:
    """`make run > log 2>&1`: no terminal, so every phase's start and end, each task's start and end, and the
    training steps with their loss are lines on stderr (a heartbeat at most every 30 s between them)."""
    d = _copy(world, tmp_path / "w")
    log = tmp_path / "log"
    with log.open("w") as fh:
        r = subprocess.run([sys.executable, "-m", "evolver.cli.app", "run", "--generations", "1"], cwd=d,
                           stdout=fh, stderr=subprocess.STDOUT, text=True, timeout=600)
    text = log.read_text()
    assert r.returncode == 0, text[-2000:]
    lines = text.splitlines()
    for phase in PHASES:
        for event in ("phase.start", "phase.done"):
            assert [ln for ln in lines if event in ln and f"phase={phase}" in ln and "generation=1" in ln], (event, phase)
    assert [ln for ln in text.splitlines() if "phase.done" in ln and "phase=evaluate" in ln and "generation=0" in ln]
    for task in ("'trial 1'", "'reflect r1'", "'eval hashy standard trial 1'", "sft", "dpo"):
        assert [ln for ln in text.splitlines() if "progress.done" in ln and f"task={task} " in ln + " "], task
    sft_done = next(ln for ln in text.splitlines() if "progress.done" in ln and "task=sft" in ln)
    assert "loss=" in sft_done and "total=" in sft_done
    assert "\x1b[" not in text  # no colour codes or bars in a log file


def test_a_failing_stage_fails_its_generation_and_the_daemon_goes_on_then_gives_up(world: Path, tmp_path: Path) -> None:
    """Every SFT attempt crashes: each generation fails after `retries` + 1 attempts, the daemon starts the
    next one, and after `max_consecutive_failures` failed generations `evolver run` exits 1 with one line."""
    d = _with_config(world, tmp_path / "w", ("retries = 0", "retries = 1"),
                     ("max_consecutive_failures = 3", "max_consecutive_failures = 2"))
    r = _evolver(d, "run", "--generations", "5", env={"EVOLVER_TRAIN_CRASH": "sft"})
    assert r.returncode == 1, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("evolver: error: gave up after 2 generation(s): 2 generations failed in a row; last:")
    assert "InjectedCrash" in last and "Traceback" not in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if "phase.failed" in ln]) == 4  # one line per failed attempt
    with Store.open(d / "state" / "evolver.db") as s:
        assert [(g.id, g.status) for g in s.generations()] == [(0, "base"), (1, "failed"), (2, "failed")]
        for gen in (1, 2):
            ph = s.phase(gen, "sft")
            assert (ph.status, ph.attempts) == ("failed", 2) and "InjectedCrash" in ph.error
        assert [e.kind for e in s.events() if e.kind == "failed"] == ["failed", "failed"]
        assert s.current_generation() == 0  # a failed generation is never promoted
    assert holder(d / "state") is None


def test_a_bad_model_base_exits_with_one_line_naming_the_key(world: Path, tmp_path: Path) -> None:
    d = _with_config(world, tmp_path / "w", ('base = "model"', 'base = "no-such-model"'), ("retries = 0", "retries = 1"))
    t0 = time.time()
    r = _evolver(d, "run", "--generations", "3", timeout=120)
    assert r.returncode == 1 and time.time() - t0 < 60, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("evolver: error: gave up after 0 generation(s): generation 0 (the base model) failed:")
    assert "model.base = 'no-such-model'" in last and "Traceback" not in r.stderr
    assert "Retrying" not in r.stderr  # a hub id neither cached nor reachable fails at once, not file by file
    with Store.open(d / "state" / "evolver.db") as s:
        ph = s.phase(0, "evaluate")
        assert (ph.status, ph.attempts) == ("failed", 2)  # retries + 1 attempts, then it gave up
    assert holder(d / "state") is None


def test_a_rewritten_current_adapter_is_never_used_and_current_rolls_back(world: Path, tmp_path: Path) -> None:
    """The current generation's weights rewritten on disk (same size): the next `evolver run` refuses them
    (an event names the generation and both hashes), rolls `current` back to the last verified generation and
    evolves from there; not one attempt is made with the tampered weights."""
    d = _copy(world, tmp_path / "w")
    r = _evolver(d, "run", "--generations", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    db = d / "state" / "evolver.db"
    with Store.open(db) as s:
        g1 = s.generation(1)
        assert g1.adapter_path, "generation 1 trained no adapter"
        if s.current_generation() != 1:
            assert _evolver(d, "promote", "1", "--reason", "test").returncode == 0
    weights = Path(g1.adapter_path) / "adapter_model.safetensors"
    weights.write_bytes(os.urandom(weights.stat().st_size))
    r = _evolver(d, "run", "--generations", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    with Store.open(db) as s:
        assert s.current_generation() in (0, 2)
        assert s.generation(1).status == "rolled_back" and s.generation(2).parent_id == 0
        kinds = [e.kind for e in s.events(1)]
        assert kinds[:2] == ["rolled_back", "adapter_refused"]
        refused = s.events(1)[1].reason
        assert refused.startswith("gen-0001: ") and f"recorded {g1.adapter_sha256[:12]}" in refused
        assert {a.model_ref for a in s.attempts(2, "pool")} == {"gen-0000"}
    assert holder(d / "state") is None


@contextlib.contextmanager
def _small_disk(path: Path, size: str) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]).returncode:
        pytest.skip("mounting a small tmpfs needs root; tests/test_faults.py injects SQLITE_FULL instead")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def _fill(path: Path) -> Path:
    filler = path / "filler"
    chunk = b"\0" * (1 << 20)
    with filler.open("wb") as fh:
        try:
            while True:
                fh.write(chunk)
                fh.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_mid_generation_gives_up_in_one_line_and_resumes_to_the_same_store(world: Path,
                                                                                         tmp_path: Path) -> None:
    """The state folder on a 64 MiB tmpfs, filled while generation 1 generates: `evolver run` exits 1 with one
    line naming the full disk (no traceback, no "Logging error"), leaves no lock and a whole store; once space is
    freed the run resumes to exactly the rows of an uninterrupted run."""
    run = tmp_path / "run"
    r = _evolver(_copy(world, run), "run", "--generations", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    ref = run.rename(tmp_path / "ref")
    d = _copy(world, run)
    with _small_disk(d / "state", "64m"):
        proc = _start(d, "run", "--generations", "1")
        db = d / "state" / "evolver.db"
        end = time.time() + 300
        while time.time() < end and proc.poll() is None:
            if db.exists():
                with Store.open(db) as s:
                    ph = s.phase(1, "generate")
                if ph is not None and ph.status == "running":
                    break
            time.sleep(0.1)
        filler = _fill(d / "state")
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 1, err[-3000:]
        assert "Traceback" not in err and "Logging error" not in err, err[-3000:]
        errors = [ln for ln in err.splitlines() if ln.startswith("evolver: error:")]
        assert len(errors) == 1 and errors[0] == err.rstrip().splitlines()[-1], err[-3000:]
        assert "disk is full" in errors[0] or "No space left on device" in errors[0], errors[0]
        assert holder(d / "state") is None
        filler.unlink()
        with Store.open(db) as s:
            assert s.integrity_ok()
        r = _evolver(d, "run", "--generations", "1")
        assert r.returncode == 0, r.stderr[-2000:]
        got, want = _snapshot(db), _snapshot(ref / "state" / "evolver.db")
    for table in want:
        assert got[table] == want[table], table
