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


def test_reevaluation_scores_replaced_base_weights_and_rolls_back(tmp_path: Path) -> None:
    """A local base model folder replaced in place by a worse model (same path) is a new evaluation key:
    the scheduled re-evaluation scores the new weights (the backend reloads them) and rolls back."""
    import shutil

    from evolver.artifacts import adapter_dir
    from evolver.backends.holder import BackendHolder
    from evolver.context import StageContext
    from evolver.evaluation.run import evaluate, stored_report
    from evolver.policy.actions import adopt_base, manual_promote
    from evolver.reflection.prompts import trial_prompt
    from evolver.states import GenStatus, PointerName
    from evolver.testing.backends import build_stopping_model
    from evolver.testing.tasks import SumsTask
    from evolver.testing.tiny import build_tiny_model
    from evolver.training.adapters import save_adapter

    task = SumsTask()
    model = tmp_path / "model"
    build_stopping_model(model, tuple((trial_prompt(task.answer_format, it.text), f"Finish[{it.gold}]")
                                      for it in task.load()), steps=300)
    (tmp_path / "evals" / "sums").mkdir(parents=True)
    (tmp_path / "evals" / "sums" / "manifest.toml").write_text('name = "sums"\ntask = "evolver.testing.tasks:SumsTask"\n')
    shutil.copytree(Path(__file__).resolve().parents[1] / "policies", tmp_path / "policies")
    cfg = _cfg(tmp_path, '[model]\nbase = "model"\nprompt_style = "chat"\nthreads = 1\n[generation.trial]\n'
                         'max_new_tokens = 12\n[generation.reflection]\nmax_new_tokens = 12\n'
                         '[evaluation]\nbenchmarks = ["sums"]\npaper_protocol = false\n')
    store = Store.open(cfg.state_dir / "evolver.db")
    store.create_generation(0, None, str(model), cfg.hash, "{}", status=GenStatus.BASE)
    lora = _zero_lora(model)  # an adapter that changes nothing: generation 1 answers as the base does
    dest = adapter_dir(cfg.state_dir, 1, "sft")
    sha = save_adapter(lora, dest, str(model), {})
    store.create_generation(1, 0, str(model), cfg.hash, "{}", status=GenStatus.EVALUATED, adapter_path=str(dest),
                            adapter_sha256=sha)
    holder = BackendHolder(cfg)
    ctx = StageContext(cfg, store, 1, 0, holder)
    before = {g: evaluate(ctx, "sums", g) for g in (0, 1)}
    taught = stored_report(ctx, before[1])["sums"]["standard"]["acc@t2"]
    assert taught > 0  # the taught model answers some of its sums (a random one none)
    adopt_base(store, 0)
    manual_promote(store, 1, "taught model")

    shutil.rmtree(model)
    build_tiny_model(model, chat=True, hidden=128, seed=5)  # same path, same architecture, random weights
    d = Daemon(cfg, backends=holder)
    d.reevaluate(store)
    after = store.evaluation(1, "sums")
    assert after is not None and after.key != before[1].key  # evaluated afresh, under a new key
    assert stored_report(ctx, after)["sums"]["standard"]["acc@t2"] < taught
    assert store.pointer(PointerName.CURRENT) == 0 and store.generation(1).status == GenStatus.ROLLED_BACK
    assert "fell" in store.events(1, limit=1)[0].reason
    holder.close()


def _zero_lora(model_dir: Path):  # noqa: ANN202 - a PeftModel
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(model_dir))
    return get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules="all-linear", task_type="CAUSAL_LM"))


def test_invalid_cron_is_one_config_line_and_leaves_no_lock(tmp_path: Path) -> None:
    import pytest

    from evolver.config import ConfigError
    from evolver.daemon.lock import holder

    cfg = _cfg(tmp_path, '[daemon]\nschedule = "cron"\ncron = "61 * * * *"\n')
    with pytest.raises(ConfigError, match=r"daemon.cron: expected a crontab"):
        Daemon(cfg).run(signals=False)
    assert holder(cfg.state_dir) is None
