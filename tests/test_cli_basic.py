"""The CLI's first faces: --help, init, status (text and --json), and structured logs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evolver.store import Store

EVOLVER = Path(sys.executable).with_name("evolver")
HEAVY = ("torch", "transformers", "trl", "peft", "datasets")


def test_help_is_fast_and_lists_the_commands() -> None:
    assert EVOLVER.exists(), f"console script missing next to {sys.executable}"
    t0 = time.perf_counter()
    out = subprocess.run([str(EVOLVER), "--help"], capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr
    for name in ("init", "status", "config"):
        assert f" {name} " in out.stdout, out.stdout
    assert elapsed < 5.0, f"evolver --help took {elapsed:.1f}s"


def test_help_imports_no_ml_stack() -> None:
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom evolver.cli.app import app\n"
            "r = CliRunner().invoke(app, ['--help'])\nassert r.exit_code == 0, r.output\n"
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"--help imported {out.stdout.strip()}"


def test_init_lays_out_a_working_directory(tmp_path: Path, cli, repo_root: Path) -> None:
    target = tmp_path / "proj"
    result = cli("init", target)
    assert result.exit_code == 0, result.stderr
    assert (target / "evolver.toml").read_text() == (repo_root / "evolver.toml").read_text()
    assert (target / "policies" / "default.toml").is_file()
    assert (target / "evals").is_dir()
    assert (target / "state").is_dir()
    shipped_evals = sorted(p.relative_to(repo_root / "evals") for p in (repo_root / "evals").rglob("*")
                           if "__pycache__" not in p.parts and p.suffix != ".pyc")
    assert sorted(p.relative_to(target / "evals") for p in (target / "evals").rglob("*")) == shipped_evals
    assert "wrote" in result.stdout and str(target / "evolver.toml") in result.stdout
    check = cli("config", "check", target / "evolver.toml")
    assert check.exit_code == 0, check.stderr


def test_init_refuses_to_overwrite_without_force(tmp_path: Path, cli, repo_root: Path) -> None:
    target = tmp_path / "proj"
    assert cli("init", target).exit_code == 0
    (target / "evolver.toml").write_text("seed = 5\n")
    (target / "policies" / "mine.toml").write_text('name = "mine"\n')
    refused = cli("init", target)
    assert refused.exit_code == 2
    lines = refused.stderr.splitlines()
    assert len(lines) == 1 and str(target / "evolver.toml") in lines[0] and "--force" in lines[0]
    assert (target / "evolver.toml").read_text() == "seed = 5\n"  # untouched
    forced = cli("init", target, "--force")
    assert forced.exit_code == 0, forced.stderr
    assert (target / "evolver.toml").read_text() == (repo_root / "evolver.toml").read_text()
    assert not (target / "policies" / "mine.toml").exists()


def test_init_into_the_current_directory(tmp_path: Path, cli) -> None:
    result = cli("init")
    assert result.exit_code == 0, result.stderr
    assert (Path.cwd() / "evolver.toml").is_file()


def test_status_json_on_an_empty_directory(cli) -> None:
    result = cli("status", "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["generations"] == 0
    assert info["current"] is None and info["pinned"] is None and info["latest"] is None
    assert info["daemon"] == {"pid": None, "alive": False}
    assert info["state_dir"] == str(Path.cwd() / "state")
    assert list(Path.cwd().iterdir()) == []  # a read command creates nothing


def _project_with_generations(root: Path, cli) -> Path:  # noqa: ANN001
    assert cli("init", root).exit_code == 0
    with Store.open(root / "state" / "evolver.db") as s:
        s.create_generation(0, None, "embedded", "h", "{}", status="promoted")
        s.record_event("promoted", 0, "policy", "baseline")
        s.set_pointer("current", 0)
        for g in (1, 2):
            s.create_generation(g, g - 1, "embedded", "h", "{}", status="done")
            for name in ("generate", "harvest", "sft", "dpo", "evaluate", "decide"):
                s.phase_start(g, name)
                s.phase_finish(g, name)
        s.put_eval_results(2, "arith", "t2", "h", {"acc@t2": (0.6, 100)})
        s.record_event("promoted", 2, "policy", "acc@t2 [+0.05] over gen-0000")
        s.set_pointer("current", 2)
        s.create_generation(3, 2, "embedded", "h", "{}")
        s.phase_start(3, "generate")
        s.phase_finish(3, "generate")
        s.phase_start(3, "sft")
        s.record_event("note", 3, "daemon", "started")
    return root / "evolver.toml"


def test_status_on_a_store_with_generations(tmp_path: Path, cli) -> None:
    cfg = _project_with_generations(tmp_path / "proj", cli)
    result = cli("--config", cfg, "status", "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["generations"] == 4
    assert info["current"] == 2 and info["pinned"] is None
    assert info["latest"]["id"] == 3 and info["latest"]["status"] == "running" and info["latest"]["phase"] == "sft"
    assert info["last_decision"]["kind"] == "promoted" and info["last_decision"]["generation"] == 2
    with Store.open(tmp_path / "proj" / "state" / "evolver.db") as s:
        assert info["schema"] == s.schema_version()[-1]

    text = cli("--config", cfg, "status")
    assert text.exit_code == 0, text.stderr
    assert "current     gen-0002\n" in text.stdout
    assert "latest      gen-0003 running, phase sft\n" in text.stdout
    assert "decision    promoted gen-0002: acc@t2 [+0.05] over gen-0000\n" in text.stdout  # brackets kept, no wrap


def test_status_finds_evolver_toml_in_the_cwd(tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    _project_with_generations(tmp_path / "proj", cli)
    monkeypatch.chdir(tmp_path / "proj")
    info = json.loads(cli("status", "--json").stdout)
    assert info["generations"] == 4


def _log_lines(state: Path) -> list[dict]:
    path = state / "logs" / "evolver.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_logs_are_json_lines_under_state(tmp_path: Path, cli) -> None:
    root = tmp_path / "proj"
    assert cli("init", root).exit_code == 0
    quiet = cli("--config", root / "evolver.toml", "status", "--json")
    assert quiet.exit_code == 0 and quiet.stderr == ""  # console stays at warning by default
    json.loads(quiet.stdout)  # stdout is pure JSON
    events = _log_lines(root / "state")
    assert [e["event"] for e in events] == ["init"]  # a read command (status) writes nothing, not even a log line
    for e in events:
        assert e["level"] == "info" and e["timestamp"].endswith("Z")
    assert events[0]["force"] is False

    loud = cli("--log-level", "info", "init", root, "--force", "--json")
    assert loud.exit_code == 0
    assert "init" in loud.stderr and json.loads(loud.stdout)["written"]
    assert [e["force"] for e in _log_lines(root / "state")] == [False, True]


def test_debug_level_reaches_the_file_and_bad_levels_are_refused(tmp_path: Path, cli) -> None:
    root = tmp_path / "proj"
    assert cli("init", root).exit_code == 0
    from evolver.logs import get_logger, setup_logging

    setup_logging("debug", root / "state" / "logs", console=False)
    get_logger(generation=7, phase="sft").debug("step", loss=1.25)
    setup_logging("warning", root / "state" / "logs", console=False)
    get_logger().debug("hidden")
    get_logger().info("kept")
    events = _log_lines(root / "state")
    assert {"event": "step", "generation": 7, "phase": "sft", "loss": 1.25, "level": "debug"}.items() <= events[-2].items()
    assert events[-1]["event"] == "kept" and "hidden" not in {e["event"] for e in events}

    bad = cli("--log-level", "loud", "status")
    assert bad.exit_code == 2
    assert "loud" in bad.stderr
