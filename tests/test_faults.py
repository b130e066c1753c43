"""Faults without a model (issue 21): adapters that no longer verify, a store that is damaged, emptied or
full, the lock under a race, and `evolver run`'s one error path. The daemon runs as a real subprocess
wherever the exit code, the stderr line and the lock matter; the refusals come before any model loads.
"""

from __future__ import annotations

import errno
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import event

from evolver.artifacts import AdapterError, hash_adapter
from evolver.config import load_config
from evolver.context import StageContext
from evolver.daemon.faults import DaemonError, describe, permanent
from evolver.daemon.health import ensure_served_verifies
from evolver.daemon.lock import LOCK_NAME, AlreadyRunning, StateLock, holder
from evolver.daemon.runner import Daemon
from evolver.policy.actions import adopt_base, manual_promote, pin
from evolver.states import EventKind, GenStatus, PhaseStatus, PointerName, Stage
from evolver.store import Store
from evolver.store.health import StoreDamaged, check_store, problems

REPO = Path(__file__).resolve().parents[1]


# -- a store with a lineage of adapters (no model: verification only hashes files) ---------------------
def _adapter(state: Path, gen: int, weights: bytes) -> tuple[Path, str]:
    d = state / "adapters" / f"gen-{gen:04d}" / "sft"
    d.mkdir(parents=True)
    (d / "adapter_config.json").write_text('{"r": 8}')
    (d / "adapter_model.safetensors").write_bytes(weights)
    return d, hash_adapter(d)


def _lineage(state: Path, gens: int = 2) -> Store:
    """gen-0000 (base) then gens 1..n, each promoted in turn with an adapter of its own; n is current."""
    store = Store.open(state / "evolver.db")
    store.create_generation(0, None, "base", "h", "{}", status=GenStatus.BASE)
    store.phase_start(0, Stage.EVALUATE)
    store.phase_finish(0, Stage.EVALUATE, PhaseStatus.DONE, detail={})
    store.put_eval_results(0, "arith", "standard", "k0", {"acc@t1": (0.5, 10)})
    adopt_base(store, 0)
    for g in range(1, gens + 1):
        path, sha = _adapter(state, g, bytes([g]) * 4096)
        store.create_generation(g, g - 1, "base", "h", "{}", status=GenStatus.EVALUATED, adapter_path=str(path),
                                adapter_sha256=sha)
        store.put_eval_results(g, "arith", "standard", f"k{g}", {"acc@t1": (0.5 + g / 10, 10)})
        manual_promote(store, g, "test lineage", actor="policy")
    return store


def _weights(state: Path, gen: int) -> Path:
    return state / "adapters" / f"gen-{gen:04d}" / "sft" / "adapter_model.safetensors"


def test_rewritten_adapter_weights_are_refused_and_current_rolls_back_to_the_last_verified_one(tmp_path: Path) -> None:
    store = _lineage(tmp_path, gens=2)
    w = _weights(tmp_path, 2)
    w.write_bytes(os.urandom(w.stat().st_size))  # same size, other bytes
    assert ensure_served_verifies(store) == (2, 1)
    assert store.pointer(PointerName.CURRENT) == 1 and store.generation(2).status == GenStatus.ROLLED_BACK
    refused, rolled = store.events(2, limit=2)[::-1]
    assert refused.kind == EventKind.ADAPTER_REFUSED and refused.reason.startswith("gen-0002: ")
    recorded = store.generation(2).adapter_sha256
    assert f"recorded {recorded[:12]}" in refused.reason and "adapter is corrupt (sha256 " in refused.reason
    assert json.loads(refused.metrics)["detail"] == f"sha256 {hash_adapter(w.parent)}, recorded {recorded}"
    assert rolled.kind == EventKind.ROLLED_BACK and rolled.actor == "daemon"
    assert "gen-0002" in rolled.reason and "rolled back to gen-0001" in rolled.reason
    n_events = len(store.events())
    assert ensure_served_verifies(store) is None and len(store.events()) == n_events  # gen 1 verifies: nothing to do


def test_a_deleted_adapter_rolls_back_past_every_broken_one_down_to_the_base(tmp_path: Path) -> None:
    store = _lineage(tmp_path, gens=3)
    shutil.rmtree(_weights(tmp_path, 3).parent)
    _weights(tmp_path, 2).write_bytes(b"")  # truncated to 0 bytes
    w1 = _weights(tmp_path, 1)
    with w1.open("r+b") as fh:  # one scribbled byte in the middle
        fh.seek(2000)
        fh.write(b"\xff")
    assert ensure_served_verifies(store) == (3, 0)
    assert store.current_generation() == 0
    assert "adapter not found" in store.events(3, limit=2)[1].reason


def test_the_same_refusal_is_recorded_once(tmp_path: Path) -> None:
    from evolver.reflection.common import adapter_for

    store = _lineage(tmp_path, gens=1)
    _weights(tmp_path, 1).write_bytes(b"x" * 4096)
    for _ in range(3):  # a phase's retries, or requests to `evolver serve`
        with pytest.raises(AdapterError, match=r"^gen-0001: .*adapter is corrupt"):
            adapter_for(store, 1)
    assert [e.kind for e in store.events(1)].count(EventKind.ADAPTER_REFUSED) == 1


def test_a_pinned_generation_with_a_broken_adapter_is_not_moved_but_stops_the_daemon(tmp_path: Path) -> None:
    from evolver.daemon.faults import Fatal

    store = _lineage(tmp_path, gens=2)
    pin(store, 2)
    _weights(tmp_path, 2).unlink()
    with pytest.raises(Fatal, match=r"gen-0002: .*incomplete.*it is pinned, so the daemon will not move it") as err:
        ensure_served_verifies(store)
    assert permanent(err.value)
    assert store.pointer(PointerName.PINNED) == 2 and store.pointer(PointerName.CURRENT) == 2


def test_a_resumed_generation_whose_parent_no_longer_verifies_fails_before_any_stage(tmp_path: Path) -> None:
    from evolver.backends.holder import BackendHolder
    from evolver.daemon.cycle import run_generation

    cfg = _config(tmp_path)
    store = _lineage(cfg.state_dir, gens=1)
    store.create_generation(2, 1, "base", "h", "{}", status=GenStatus.RUNNING)
    store.phase_start(2, Stage.GENERATE)  # it was generating with gen 1 when it stopped
    _weights(cfg.state_dir, 1).write_bytes(b"\0" * 4096)

    def no_model(_cfg):  # noqa: ANN001, ANN202
        raise AssertionError("no stage may run on an unverified parent")

    outcome = run_generation(StageContext(cfg, store, 0, None, BackendHolder(cfg, factory=no_model)))
    assert outcome.generation == 2 and "its parent's adapter is refused: gen-0001" in (outcome.failed or "")
    assert store.generation(2).status == GenStatus.FAILED
    assert store.phase(2, Stage.GENERATE).attempts == 1  # no new attempt was started


def test_decide_resumed_after_its_decision_returns_that_decision_even_after_a_rollback(tmp_path: Path) -> None:
    """A kill between decide's decision (one transaction) and its phase mark: the resumed decide reads the
    decision back from the events and decides nothing again, so the two are as good as one transaction."""
    from evolver.policy.actions import promote, rollback
    from evolver.policy.decide import Decision
    from evolver.stages import decide

    cfg = _config(tmp_path)
    store = _lineage(cfg.state_dir, gens=1)
    path, sha = _adapter(cfg.state_dir, 2, b"\2" * 4096)
    store.create_generation(2, 1, "base", "h", "{}", status=GenStatus.EVALUATED, adapter_path=str(path),
                            adapter_sha256=sha)
    store.put_eval_results(2, "arith", "standard", "k2", {"acc@t1": (0.9, 10)})
    store.phase_start(2, Stage.DECIDE)
    promote(store, 2, Decision("promote", "acc@t1 +20.0 pts", 2, 1, "default"))  # ... and the process dies here
    rollback(store, reason="a person rolled it back before the restart")
    before = len(store.events())
    result = decide.run(StageContext(cfg, store, 2, 1, None))  # type: ignore[arg-type]
    assert result.detail["decision"] == "promote" and result.detail["recorded"] is True
    assert result.detail["reason"] == "acc@t1 +20.0 pts" and result.detail["moved"] is True
    assert len(store.events()) == before and store.pointer(PointerName.CURRENT) == 1


# -- the store ------------------------------------------------------------------------------------------
def _filled_store(state: Path) -> Store:
    store = _lineage(state, gens=1)
    store.upsert_questions({"source": "s", "external_id": str(i), "text": f"question {i} " * 20, "gold": str(i)}
                           for i in range(3000))
    return store


def test_a_full_disk_raises_the_real_error_not_a_failed_rollback(tmp_path: Path) -> None:
    """SQLite ends the transaction itself when the disk fills; the old ROLLBACK then raised "cannot rollback -
    no transaction is active" and hid the cause. A page cap gives SQLite's own SQLITE_FULL, as a full disk does."""
    store = Store.open(tmp_path / "evolver.db")
    store.engine.dispose()
    event.listen(store.engine, "connect", lambda conn, _r: conn.execute("PRAGMA max_page_count = 40"))
    with pytest.raises(Exception) as err:
        for i in range(100):
            store.upsert_questions({"source": "s", "external_id": f"{i}-{j}", "text": "q" * 2000, "gold": "1"}
                                   for j in range(20))
    assert "database or disk is full" in str(err.value) and "cannot rollback" not in str(err.value)
    assert permanent(err.value)
    assert describe(err.value).startswith("OperationalError: database or disk is full (the disk is full: free space")
    d = Daemon(_config(tmp_path / "cfg"))
    d._cycle_failed(store, err.value)  # noqa: SLF001 - what the cycle does with it
    assert d.result.fatal == describe(err.value) and d.done.is_set()


def test_os_errors_are_one_line_naming_the_file_and_what_to_do() -> None:
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/srv/state/adapters/gen-0003/sft/x.safetensors")
    assert describe(RuntimeError("while saving")) == "RuntimeError: while saving"
    wrapped = RuntimeError("while saving")
    wrapped.__cause__ = full
    assert describe(wrapped) == ("/srv/state/adapters/gen-0003/sft/x.safetensors: No space left on device (the disk is"
                                 " full: free space, then run again (the run resumes where it stopped))")
    assert permanent(wrapped) and not permanent(OSError(errno.EAGAIN, "try again"))
    assert "read-only file system" in describe(OSError(errno.EROFS, os.strerror(errno.EROFS), "state/daemon.lock"))


def test_a_scribbled_store_is_refused(tmp_path: Path) -> None:
    store = _filled_store(tmp_path)
    store.close()
    db = tmp_path / "evolver.db"
    assert problems(db) == []
    _scribble(db)
    with pytest.raises(StoreDamaged, match=r"evolver.db: the store is damaged \(.+\); refusing to write into it"):
        check_store(db, tmp_path)


def test_an_emptied_or_missing_store_is_refused_when_the_folder_shows_history(tmp_path: Path) -> None:
    check_store(tmp_path / "evolver.db", tmp_path)  # a fresh folder: the store is created
    _lineage(tmp_path, gens=1).close()
    db = tmp_path / "evolver.db"
    db.write_bytes(b"")
    with pytest.raises(StoreDamaged, match=r"the store is empty \(0 bytes\) but the state folder holds history"
                                           r" \(adapters/gen-0001\); refusing to start afresh"):
        check_store(db, tmp_path)
    db.unlink()
    with pytest.raises(StoreDamaged, match="the store is missing"):
        check_store(db, tmp_path)
    Store.open(db).close()  # a reader re-created it empty: still no generation under those adapters
    with pytest.raises(StoreDamaged, match="holds no generation but the state folder holds history"):
        check_store(db, tmp_path)


def test_the_latest_backup_is_a_floor(tmp_path: Path) -> None:
    store = _lineage(tmp_path, gens=2)
    store.backup(tmp_path / "backups" / "evolver-20240101-000000.db")
    check_store(store.path, tmp_path)
    with store.tx() as c:  # history lost behind the daemon's back (an older copy put in its place)
        c.exec_driver_sql("DELETE FROM events WHERE generation_id = 2")
    with pytest.raises(StoreDamaged, match=r"fewer rows than its backup evolver-20240101-000000.db \(events 2 < 3\)"):
        check_store(store.path, tmp_path)


def test_backup_refuses_to_copy_a_damaged_store(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    store = _filled_store(cfg.state_dir)
    store.close()
    _scribble(store.path)
    with pytest.raises(StoreDamaged):
        Daemon(cfg).backup(store)
    assert not (cfg.state_dir / "backups").exists() or not list((cfg.state_dir / "backups").iterdir())
    d = Daemon(cfg)
    d.housekeeping(d.backup)(store)  # as scheduled: the damage ends the daemon, in one line
    assert d.done.is_set() and (d.result.fatal or "").startswith(f"{store.path}: the store is damaged (")


# -- the lock -------------------------------------------------------------------------------------------
def _racer(state: str, trials: int, barrier, wins) -> None:  # noqa: ANN001 - multiprocessing objects
    lock = StateLock(Path(state))
    for t in range(trials):
        barrier.wait()  # all three try at the same instant
        try:
            lock.acquire()
            got = True
        except AlreadyRunning:
            got = False
        barrier.wait()  # everyone has tried while the winner holds it
        if got:
            wins.put((t, os.getpid(), holder(Path(state))))
            lock.release()
        barrier.wait()


def test_three_processes_racing_for_the_lock_100_times_have_one_holder_each_time(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    barrier, wins, trials = ctx.Barrier(3), ctx.Queue(), 100
    procs = [ctx.Process(target=_racer, args=(str(tmp_path), trials, barrier, wins)) for _ in range(3)]
    t0 = time.time()
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    got = [wins.get(timeout=5) for _ in range(trials)]
    assert wins.empty()
    per_trial = {t: [pid for tt, pid, _ in got if tt == t] for t in range(trials)}
    assert all(len(v) == 1 for v in per_trial.values()), {t: v for t, v in per_trial.items() if len(v) != 1}
    assert all(pid == seen for _, pid, seen in got)  # holder() names the winner while it holds
    assert holder(tmp_path) is None and (tmp_path / LOCK_NAME).read_text() == ""
    print(f"lock race: {trials} trials x 3 processes, 1 holder each time, {time.time() - t0:.1f} s")


def test_a_lock_file_naming_a_live_process_that_is_not_a_daemon_does_not_block(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / LOCK_NAME).write_text(str(other.pid))
        assert holder(tmp_path) is None  # nobody holds the flock, whatever the file says
        with StateLock(tmp_path):
            assert holder(tmp_path) == os.getpid()
    finally:
        other.kill()
        other.wait()


# -- `evolver run`: one line, exit 1, no lock, the store untouched ---------------------------------------
def _config(d: Path, base: str | None = None):  # noqa: ANN202 - a LoadedConfig
    d.mkdir(parents=True, exist_ok=True)
    model = f'[model]\nbase = "{base}"\n' if base else ""
    (d / "evolver.toml").write_text(f'state_dir = "state"\n{model}')
    return load_config(d / "evolver.toml")


@pytest.fixture
def world(tmp_path: Path, tiny_model_dir: Path) -> Path:
    d = tmp_path / "w"
    _config(d, str(tiny_model_dir))
    shutil.copytree(REPO / "policies", d / "policies")
    return d


def _run(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evolver.cli.app", "run", "--generations", "1"], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _digest(state: Path) -> dict[str, str]:
    return {str(p.relative_to(state)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(state.rglob("*")) if p.is_file() and p.name != LOCK_NAME and "logs" not in p.parts}


def _one_error_line(r: subprocess.CompletedProcess, *needles: str) -> str:
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "Logging error" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("evolver: error:")]
    assert len(errors) == 1 and r.stderr.rstrip().splitlines()[-1] == errors[0], r.stderr
    for n in needles:
        assert n in errors[0], errors[0]
    return errors[0]


def _scribble(db: Path) -> None:
    size = db.stat().st_size
    with db.open("r+b") as fh:  # 8 KiB of noise in the middle of the file
        fh.seek(size // 2 // 4096 * 4096)
        fh.write(os.urandom(8192))


def _with_lineage(world: Path) -> Path:
    state = world / "state"
    state.mkdir()
    _filled_store(state).close()
    return state


def test_run_refuses_a_scribbled_store_in_one_line_and_writes_nothing(world: Path) -> None:
    state = _with_lineage(world)
    _scribble(state / "evolver.db")
    before = _digest(state)
    _one_error_line(_run(world), "evolver.db: the store is damaged", "restore a backup")
    assert _digest(state) == before and holder(state) is None


def test_run_refuses_a_store_truncated_to_zero_and_does_not_start_afresh(world: Path) -> None:
    state = _with_lineage(world)
    (state / "evolver.db").write_bytes(b"")
    for stale in state.glob("evolver.db-*"):
        stale.unlink()
    before = _digest(state)
    _one_error_line(_run(world), "the store is empty (0 bytes)", "refusing to start afresh")
    assert _digest(state) == before and (state / "evolver.db").stat().st_size == 0 and holder(state) is None


def test_run_refuses_a_newer_schema_in_one_line(world: Path) -> None:
    state = _with_lineage(world)
    with Store.open(state / "evolver.db") as s, s.tx() as c:
        c.exec_driver_sql("INSERT INTO schema_migrations (name, applied_at) VALUES ('m999_from_the_future', 1.0)")
    before = _digest(state)
    _one_error_line(_run(world), "m999_from_the_future", "newer evolver")
    assert _digest(state) == before and holder(state) is None


@contextmanager
def _read_only(path: Path) -> Iterator[None]:
    """The folder read-only for evolver: a read-only bind mount as root (root ignores modes), else modes."""
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
            yield
        finally:
            subprocess.run(["umount", str(path)], check=True)
        return
    modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
    for p in modes:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        yield
    finally:
        for p, m in modes.items():
            p.chmod(m)


def test_run_in_a_read_only_state_folder_says_so_in_one_line(world: Path) -> None:
    state = _with_lineage(world)
    before = _digest(state)
    try:
        with _read_only(state):
            line = _one_error_line(_run(world), "daemon.lock")
            status = subprocess.run([sys.executable, "-m", "evolver.cli.app", "status"], cwd=world,
                                    capture_output=True, text=True, timeout=120)
    except subprocess.CalledProcessError:
        pytest.skip("no bind mount here")
    assert "read-only file system" in line or "not writable by this user" in line
    assert "unable to open database file" not in line
    # a reader cannot open a WAL store in a read-only folder either, and says why
    if status.returncode:
        reader = _one_error_line(status, "cannot open the store")
        assert "read-only file system" in reader or "not writable by this user" in reader
    assert _digest(state) == before and holder(state) is None


def test_every_escaping_error_is_one_evolver_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever escapes the daemon (here the scheduler failing to start) is one line naming the root cause,
    and the lock is released."""
    from apscheduler.schedulers.background import BackgroundScheduler

    def broken(_self):  # noqa: ANN001, ANN202
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/tmp/jobstore")

    monkeypatch.setattr(BackgroundScheduler, "start", broken)
    cfg = _config(tmp_path)
    with pytest.raises(DaemonError, match=r"^/tmp/jobstore: No space left on device \(the disk is full"):
        Daemon(cfg).run(signals=False)
    assert holder(cfg.state_dir) is None


class _FullDisk:
    def write(self, _text: str) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


def test_a_log_file_that_cannot_be_written_is_one_warning_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from evolver.logs import get_logger, setup_logging

    setup_logging("error", tmp_path / "logs")
    handler = next(h for h in __import__("logging").getLogger("evolver").handlers if h.__class__.__name__ == "LogFile")
    handler.stream.close()
    handler.stream = _FullDisk()  # every write now fails, as on a full disk
    for i in range(5):
        get_logger().info("event", i=i)
    err = capsys.readouterr().err
    assert err.count("cannot write") == 1 and "Logging error" not in err and "Traceback" not in err
