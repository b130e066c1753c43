"""The operator's side of the CLI: --json on every command (errors too), layered config, --version and
`env`, versions per generation, progress lines without a terminal, log rotation, the plot, fast reads."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from evolver.cli.common import SCHEMA_VERSION
from evolver.config import load_config, to_toml, validate
from evolver.store import Store
from evolver.testing import synthetic

EVOLVER = Path(sys.executable).with_name("evolver")


@pytest.fixture
def project(tmp_path: Path, cli: Any) -> Path:
    """An initialised folder whose store holds the small synthetic lineage (gen 2 rejected, gen 4 failed)."""
    root = tmp_path / "proj"
    assert cli("init", root).exit_code == 0
    synthetic.small(root / "state" / "evolver.db").close()
    return root / "evolver.toml"


def _doc(result: Any) -> dict[str, Any]:
    data = json.loads(result.stdout)
    assert data["schema_version"] == SCHEMA_VERSION, result.stdout[:200]
    return data


# -- --json everywhere ------------------------------------------------------------------------------------


def test_every_command_has_json(cli: Any) -> None:
    """Every leaf command offers the shared --json flag."""
    import typer.main

    from evolver.cli.app import app

    group = typer.main.get_command(app)
    missing = []

    def walk(cmd: Any, name: str) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for sub_name, sub in subs.items():
                walk(sub, f"{name} {sub_name}".strip())
        elif not any("--json" in p.opts for p in cmd.params):
            missing.append(name)

    walk(group, "")
    assert missing == []
    assert len(group.commands) >= 20


def test_json_documents_of_read_and_write_commands(project: Path, cli: Any, tmp_path: Path) -> None:
    c = ["--config", project]
    assert _doc(cli(*c, "status", "--json"))["generations"] == 5
    assert len(_doc(cli(*c, "lineage", "--json"))["generations"]) == 5
    assert _doc(cli(*c, "show", "3", "--json"))["id"] == 3
    assert [e["kind"] for e in _doc(cli(*c, "events", "--json"))["events"]][:2] == ["promoted", "promoted"]
    assert _doc(cli(*c, "watch", "--json"))["watch"]["lineage_size"] == 5
    assert _doc(cli(*c, "pin", "1", "--json"))["pinned"] == 1
    assert _doc(cli(*c, "unpin", "--json"))["unpinned"] == 1
    assert _doc(cli(*c, "rollback", "--json"))["to"] == 1
    assert _doc(cli(*c, "promote", "3", "--reason", "by hand", "--json"))["promoted"] == 3
    assert _doc(cli(*c, "policy", "check", "--json"))["ok"] is True
    assert _doc(cli(*c, "config", "check", "--json"))["ok"] is True
    assert _doc(cli(*c, "config", "show", "--json"))["config"]["seed"] == 0
    assert _doc(cli(*c, "plot", "--out", tmp_path / "p.png", "--json"))["wrote"] == str(tmp_path / "p.png")
    assert set(_doc(cli(*c, "export", "--generation", "1", "--out", tmp_path / "x", "--json"))["written"]) == {
        "D+",
        "D±",
    }
    assert _doc(cli("init", tmp_path / "other", "--json"))["written"]
    assert "torch" in _doc(cli("env", "--json"))["env"]


@pytest.mark.parametrize(
    "args, code, needle",
    [
        (("show", "42"), 1, "gen-0042 does not exist"),
        (("pin", "abc"), 2, "gen"),
        (("eval",), 2, "--generation"),
        (("config", "show", "--nope"), 2, "--nope"),
        (("--set", "training.sft.epochs=-1", "status"), 2, "training.sft.epochs"),
    ],
)
def test_errors_under_json_are_json(project: Path, cli: Any, args: tuple, code: int, needle: str) -> None:
    r = cli("--config", project, *args, "--json")
    assert r.exit_code == code, r.output
    doc = _doc(r)
    assert doc["error"] in ("usage", "runtime") and needle in doc["message"] and doc["problems"]


# -- layered config ---------------------------------------------------------------------------------------


def test_precedence_defaults_file_env_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Any) -> None:
    path = tmp_path / "e.toml"
    path.write_text("seed = 3\n[training.sft]\nepochs = 4.0\nbatch_size = 8\n[training.dpo]\nbeta = 0.2\n")
    env = {"EVOLVER_TRAINING__SFT__EPOCHS": "2", "EVOLVER_TRAINING__DPO__BETA": "0.3", "EVOLVER_CONFIG": "x"}
    cfg = load_config(path, ["training.dpo.beta=0.05", 'evaluation.benchmarks=["arith", "gsm8k"]'], env)
    c = cfg.config
    assert (c.seed, c.training.sft.batch_size, c.training.sft.epochs, c.training.dpo.beta) == (3, 8, 2.0, 0.05)
    assert c.evaluation.benchmarks == ["arith", "gsm8k"] and c.training.lora.r == 16
    assert cfg.sources["seed"] == str(path) and cfg.sources["training.lora.r"] == "default"
    assert cfg.sources["training.sft.epochs"] == "env EVOLVER_TRAINING__SFT__EPOCHS"
    assert cfg.sources["training.dpo.beta"] == "--set"
    monkeypatch.setenv("EVOLVER_TRAINING__SFT__EPOCHS", "2")
    shown = cli("--config", path, "--set", "training.dpo.beta=0.05", "config", "show", "--sources")
    assert shown.exit_code == 0, shown.stderr
    assert "epochs = 2.0 # from env EVOLVER_TRAINING__SFT__EPOCHS" in shown.stdout
    assert "beta = 0.05 # from --set" in shown.stdout and f"batch_size = 8 # from {path}" in shown.stdout
    assert validate(tomllib.loads(shown.stdout)) == load_config(path, ["training.dpo.beta=0.05"]).config


@pytest.mark.parametrize(
    "env, sets, needle",
    [
        ({"EVOLVER_TRAINING__SFT__EPOCS": "2"}, [], "training.sft.epocs: unknown key"),
        ({"EVOLVER_TRAINING__SFT__EPOCHS": "many"}, [], "EVOLVER_TRAINING__SFT__EPOCHS: training.sft.epochs:"),
        ({"EVOLVER_TRAINING__SFT__EPOCHS": "-2"}, [], "environment (EVOLVER_*): training.sft.epochs: expected > 0"),
        ({}, ["training.dpo.beta"], "expected KEY=VALUE"),
        ({}, ["training.nope=1"], "--set training.nope: training.nope: unknown key"),
        ({}, ["daemon.schedule=weekly"], "daemon.schedule"),
    ],
)
def test_bad_layers_name_their_source(env: dict, sets: list, needle: str) -> None:
    from evolver.config import ConfigError

    with pytest.raises(ConfigError) as err:
        load_config(None, sets, env)
    assert needle in str(err.value)


def test_config_check_validates_every_layer(project: Path, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOLVER_EVALUATION__BENCHMARKS", '["nosuch"]')
    r = cli("--config", project, "config", "check")
    assert r.exit_code == 2 and "nosuch" in r.stderr
    monkeypatch.delenv("EVOLVER_EVALUATION__BENCHMARKS")
    r = cli("--config", project, "--set", 'training.report_to=["trackio"]', "config", "check")
    if r.exit_code == 2:  # trackio is not a dependency: where it is missing, the check says so
        assert "training.report_to: trackio is not installed" in r.stderr
    ok = cli("--config", project, "--set", "seed=7", "config", "check")
    assert ok.exit_code == 0 and "--set" in ok.stdout


def test_show_writes_toml_that_loads_again_with_inf(tmp_path: Path, cli: Any) -> None:
    path = tmp_path / "inf.toml"
    path.write_text(
        '[daemon]\nbackup_hours = inf\nreeval_hours = 1e300\n[model]\nbase = "a \\"quoted\\" ✓ \U0001f9ea"\n'
    )
    cfg = load_config(path).config
    shown = cli("--config", path, "config", "show")
    assert shown.exit_code == 0, shown.stderr
    assert "backup_hours = inf" in shown.stdout
    assert validate(tomllib.loads(shown.stdout)) == cfg
    assert validate(tomllib.loads(to_toml(cfg, annotated=True))) == cfg


# -- provenance ---------------------------------------------------------------------------------------------


def test_version_and_env(cli: Any) -> None:
    from evolver import __version__

    r = cli("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"evolver {__version__}"
    env = cli("env")
    assert env.exit_code == 0
    for key in ("platform", "python", "torch", "cuda", "transformers", "trl", "peft", "vllm", "evolver"):
        assert f"\n{key} " in "\n" + env.stdout, key


def test_each_generation_records_versions_and_show_warns_on_change(tmp_path: Path, cli: Any) -> None:
    from evolver.config import load_config as load
    from evolver.daemon.cycle import create_generation
    from evolver.provenance import versions

    (tmp_path / "evolver.toml").write_text(f'state_dir = "{tmp_path / "state"}"\n')
    cfg = load(tmp_path / "evolver.toml")
    with Store.open(tmp_path / "state" / "evolver.db") as s:
        create_generation(cfg, s, 0, None, "base")
        create_generation(cfg, s, 1, 0, "running")
        recorded = json.loads(s.rows("SELECT versions FROM generation_versions WHERE generation_id = 1")[0][0])
        assert recorded == versions() and recorded["torch"] and recorded["transformers"] and recorded["python"]
        old = {**recorded, "torch": "2.0.0"}
        s.engine.dispose()
    import sqlite3

    with sqlite3.connect(tmp_path / "state" / "evolver.db") as db:
        db.execute("UPDATE generation_versions SET versions = ? WHERE generation_id = 0", (json.dumps(old),))
    shown = cli("--config", tmp_path / "evolver.toml", "show", "1")
    assert shown.exit_code == 0, shown.stderr
    assert f"torch {recorded['torch']}" in shown.stdout
    assert f"warning: made with other versions than gen-0000: torch 2.0.0 -> {recorded['torch']}" in shown.stdout
    doc = _doc(cli("--config", tmp_path / "evolver.toml", "show", "1", "--json"))
    assert doc["versions"] == recorded and doc["versions_changed"] == {
        "torch": {"parent": "2.0.0", "value": recorded["torch"]}
    }


# -- progress, logs -----------------------------------------------------------------------------------------


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **kw: Any) -> None:
        self.lines.append((event, kw))


def test_line_progress_starts_beats_at_most_every_30_s_and_ends() -> None:
    from evolver.cli.progress import LineProgress

    now = [0.0]
    log = _Log()
    p = LineProgress(log, every=30.0, clock=lambda: now[0])
    for step in range(1, 101):  # 100 chunks, 2 s apart: 200 s
        now[0] += 2.0
        p("trial 1", step * 6, 600, tokens=step * 600)
    p("sft", 1, 4, loss=2.5)
    now[0] += 40
    p("sft", 2, 4, loss=1.25)
    p("sft", 4, 4, loss=0.5)
    kinds = [e for e, _ in log.lines]
    assert kinds[0] == "progress.start" and kinds.count("progress.done") == 2
    beats = [kw for e, kw in log.lines if e == "progress" and kw["task"] == "trial 1"]
    assert 5 <= len(beats) <= 7  # 200 s at most one per 30 s
    assert beats[0]["tokens_per_s"] == pytest.approx(300.0) and beats[0]["per_s"] == pytest.approx(3.0)
    sft = [kw for e, kw in log.lines if e == "progress" and kw["task"] == "sft"]
    assert sft == [{"task": "sft", "done": 2, "total": 4, "per_s": pytest.approx(1 / 40, abs=0.01), "loss": 1.25}]


def test_run_progress_without_a_terminal_writes_phase_and_progress_lines(tmp_path: Path) -> None:
    from rich.console import Console

    from evolver.cli.progress import run_progress
    from evolver.logs import get_logger, setup_logging

    setup_logging("warning", tmp_path / "logs")
    buf = io.StringIO()
    with run_progress(Console(file=buf, force_terminal=False)) as progress:
        get_logger(generation=1, phase="generate").info("phase.start", attempt=1)
        get_logger().info("phase.traceback", traceback="long")
        progress("trial 1", 10, 10, tokens=100)
        get_logger(generation=1, phase="generate").info("phase.done", seconds=3.0)
    lines = buf.getvalue().splitlines()
    assert [ln for ln in lines if "phase.start" in ln and "generation=1" in ln and "phase=generate" in ln]
    assert [ln for ln in lines if "progress.done" in ln and "task='trial 1'" in ln]
    assert [ln for ln in lines if "phase.done" in ln] and not [ln for ln in lines if "traceback" in ln]


def test_log_file_rotates_by_size(tmp_path: Path) -> None:
    from evolver.logs import get_logger, setup_logging

    setup_logging("warning", tmp_path / "logs", max_bytes=2000, backups=2)
    for i in range(200):
        get_logger().info("tick", i=i, pad="x" * 40)
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert files == ["evolver.jsonl", "evolver.jsonl.1", "evolver.jsonl.2"]
    assert all(p.stat().st_size <= 2200 for p in (tmp_path / "logs").iterdir())


# -- plot, reads ------------------------------------------------------------------------------------------


def test_plot_has_integer_ticks_a_panel_per_unit_and_every_candidate(tmp_path: Path) -> None:
    from evolver.store.lineage import load_lineage
    from evolver.views.plot import accuracy_figure

    with synthetic.small(tmp_path / "s.db") as s:
        s.put_eval_results(3, "arith/5d", "standard", "e", {"acc@t1": (0.2, 40), "acc@t2": (0.35, 40)})
        lin = load_lineage(s)
    fig = accuracy_figure(lin)
    axes = fig.get_axes()
    assert [a.get_ylabel().split("\n")[0] for a in axes] == ["arith", "arith/5d"]
    fig.canvas.draw()
    ticks = [t for t in axes[-1].get_xticks() if axes[-1].get_xlim()[0] <= t <= axes[-1].get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    labels = axes[0].get_legend().get_texts()
    assert {"rejected candidate", "promoted", "failed (no model)"} <= {t.get_text() for t in labels}
    assert "1 rejected, 1 failed" in fig._suptitle.get_text()


def test_read_commands_import_no_sqlalchemy_torch_or_textual(project: Path) -> None:
    for args in (["status"], ["lineage"], ["show", "3"], ["events"], ["config", "show"]):
        code = (
            "import sys\nfrom typer.testing import CliRunner\nfrom evolver.cli.app import app\n"
            f"r = CliRunner().invoke(app, ['--config', {str(project)!r}, *{args!r}])\n"
            "assert r.exit_code == 0, r.output\n"
            "print(','.join(m for m in ('sqlalchemy', 'sqlmodel', 'torch', 'textual', 'matplotlib', 'transformers')"
            " if m in sys.modules))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "", f"{args}: imported {out.stdout.strip()}"
