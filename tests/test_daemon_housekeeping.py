"""Housekeeping jobs of the daemon, without models: backup, adapter pruning, scheduling choices."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from evolver.config import load_config
from evolver.daemon.runner import Daemon
from evolver.store import Store


def _cfg(tmp_path: Path, extra: str = ""):  # noqa: ANN202
    p = tmp_path / "evolver.toml"
    p.write_text(f'state_dir = "state"\n{extra}')
    return load_config(p)


def test_backup_is_a_consistent_copy(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    store = Store.open(cfg.state_dir / "evolver.db")
    store.create_generation(0, None, "base", "h", "{}", status="base")
    store.record_event("note", 0, "test", "hello")
    dest = Daemon(cfg).backup(store)
    with sqlite3.connect(dest) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT reason FROM events").fetchone()[0] == "hello"


def test_prune_keeps_recent_rejected_and_never_current(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "[daemon]\nkeep_rejected_adapters = 1\n")
    store = Store.open(cfg.state_dir / "evolver.db")
    store.create_generation(0, None, "base", "h", "{}", status="base")
    paths = {}
    for g in (1, 2, 3):
        d = cfg.state_dir / "adapters" / f"gen-{g:04d}" / "sft"
        d.mkdir(parents=True)
        (d / "adapter_model.safetensors").write_bytes(b"x")
        paths[g] = d
        store.create_generation(g, 0, "base", "h", "{}", status="rejected", adapter_path=str(d))
    Daemon(cfg).prune(store)
    assert not paths[1].exists() and not paths[2].exists()
    assert paths[3].exists()  # the newest rejected one is kept
    assert store.generation(1) is not None  # rows stay: history is never deleted


def test_schedule_triggers(tmp_path: Path) -> None:
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    assert isinstance(Daemon(_cfg(tmp_path)).trigger(), IntervalTrigger)
    assert isinstance(Daemon(_cfg(tmp_path, '[daemon]\nschedule = "cron"\ncron = "0 3 * * *"\n')).trigger(), CronTrigger)
    t = Daemon(_cfg(tmp_path, '[daemon]\nschedule = "interval"\ninterval_minutes = 90\n')).trigger()
    assert t.interval.total_seconds() == 90 * 60


def test_pin_pauses_the_daemon_when_configured(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, '[policy]\nwhile_pinned = "pause"\n')
    store = Store.open(cfg.state_dir / "evolver.db")
    store.create_generation(0, None, "base", "h", "{}", status="base")
    store.set_pointer("pinned", 0)
    d = Daemon(cfg)
    d.cycle(store)  # would load a model and run a generation if it did not pause
    assert d.result.generations == [] and store.latest_generation().id == 0
