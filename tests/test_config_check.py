"""`evolver config check` checks what a well-formed config refers to, and policy files strictly.

Each broken case starts from a project that passes (`test_the_project_passes`) and breaks one
thing; `config check` must then say so in exactly one line naming the file, the key and the value,
and exit 2, with no traceback. None may be accepted.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from evolver.config import load_config
from evolver.preflight import check_references

REPO = Path(__file__).resolve().parents[1]

SUITE_ROWS = [{"question": "q\nA. x\nB. y", "answer": "a", "id": "q1"}]


def project(root: Path, config: str, policy: str | None = None) -> Path:
    """A folder holding evolver.toml, policies/, an evals/ with small suites and a few model-like files."""
    (root / "policies").mkdir(parents=True)
    (root / "policies" / "default.toml").write_text((REPO / "policies" / "default.toml").read_text())
    if policy is not None:
        (root / "policies" / "custom.toml").write_text(policy)
    suites = {
        "mine": 'name = "mine"\nformat = "logiqa"\ndata = "rows.jsonl"\n',
        "pool": 'name = "pool"\nformat = "logiqa"\n[data]\ntrain = "rows.jsonl"\ntest = "rows.jsonl"\n',
        "trainonly": 'name = "trainonly"\nformat = "logiqa"\n[data]\ntrain = "rows.jsonl"\n',
        "nodata": 'name = "nodata"\nformat = "logiqa"\ndata = "absent.jsonl"\ndownload = "absent.jsonl from example.org"\n',
        "broken": 'name = "broken"\nformat = "logiqa"\ndata = "rows.jsonl"\nlimt = 3\n',
    }
    for name, manifest in suites.items():
        (root / "evals" / name).mkdir(parents=True)
        (root / "evals" / name / "manifest.toml").write_text(manifest)
        (root / "evals" / name / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in SUITE_ROWS))
    (root / "models" / "empty").mkdir(parents=True)
    (root / "models" / "tiny").mkdir()
    (root / "models" / "tiny" / "config.json").write_text("{}")
    (root / "weights.bin").write_bytes(b"\0")
    (root / "model.gguf").write_bytes(b"GGUF")
    (root / "state.txt").write_text("not a folder")
    path = root / "evolver.toml"
    path.write_text(config)
    return path


GOOD = ('[model]\nbase = "models/tiny"\n[evaluation]\nbenchmarks = ["arith", "mine"]\n'
        '[reflection]\ntask = "pool"\n[daemon]\nschedule = "cron"\ncron = "30 2 * * 1-5"\n')
CUSTOM_POLICY = '[policy]\nfile = "policies/custom.toml"\n'

# (id, config, policy file text or None, file the line names ("config" or "policy"), key, value as quoted)
BROKEN: list[tuple[str, str, str | None, str, str, str]] = [
    ("model-folder-missing", '[model]\nbase = "./models/absent"\n', None, "config", "model.base", "'./models/absent'"),
    ("model-folder-missing-no-dot", '[model]\nbase = "models/absent"\n', None, "config", "model.base", "'models/absent'"),
    ("model-not-a-folder", '[model]\nbase = "./weights.bin"\n', None, "config", "model.base", "'./weights.bin'"),
    ("model-folder-without-config", '[model]\nbase = "models/empty"\n', None, "config", "model.base", "'models/empty'"),
    ("model-gguf-missing", '[model]\nbase = "./model.Q4_K_M.gguf"\n', None, "config", "model.base", "'./model.Q4_K_M.gguf'"),
    ("model-gguf-file", '[model]\nbase = "model.gguf"\n', None, "config", "model.base", "'model.gguf'"),
    ("model-hub-id-with-spaces", '[model]\nbase = "meta llama/Llama 3"\n', None, "config", "model.base", "'meta llama/Llama 3'"),
    ("model-hub-id-double-dash", '[model]\nbase = "Qwen/Qwen2.5--0.5B"\n', None, "config", "model.base", "'Qwen/Qwen2.5--0.5B'"),
    ("unknown-benchmark", '[evaluation]\nbenchmarks = ["arith", "logica"]\n', None, "config",
     "evaluation.benchmarks.1", "'logica'"),
    ("no-benchmark", "[evaluation]\nbenchmarks = []\n", None, "config", "evaluation.benchmarks", "[]"),
    ("benchmark-twice", '[evaluation]\nbenchmarks = ["arith", "arith"]\n', None, "config", "evaluation.benchmarks", "'arith'"),
    ("benchmark-without-data", '[evaluation]\nbenchmarks = ["nodata"]\n', None, "config",
     "evaluation.benchmarks.0", "'nodata'"),
    ("benchmark-broken-manifest", '[evaluation]\nbenchmarks = ["broken"]\n', None, "config",
     "evaluation.benchmarks.0", "'broken'"),
    ("benchmark-without-test-split", '[evaluation]\nbenchmarks = ["trainonly"]\n', None, "config",
     "evaluation.benchmarks.0", "'trainonly'"),
    ("unknown-reflection-task", '[reflection]\ntask = "arithmetic"\n', None, "config", "reflection.task", "'arithmetic'"),
    ("reflection-task-without-train-split", '[reflection]\ntask = "mine"\n', None, "config", "reflection.task", "'mine'"),
    ("unknown-evaluation-instruction", '[evaluation]\ninstruction = "9-9-9"\n', None, "config",
     "evaluation.instruction", "'9-9-9'"),
    ("evaluation-instruction-outside-pool", '[reflection]\ninstruction_ids = ["1-1-1"]\n[evaluation]\ninstruction = "1-1-2"\n',
     None, "config", "evaluation.instruction", "'1-1-2'"),
    ("unknown-instruction-id", '[reflection]\ninstruction_ids = ["1-1-1", "3-1-1"]\n[evaluation]\ninstruction = "1-1-1"\n',
     None, "config", "reflection.instruction_ids.1", "'3-1-1'"),
    ("cron-four-fields", '[daemon]\nschedule = "cron"\ncron = "0 * * *"\n', None, "config", "daemon.cron", "'0 * * *'"),
    ("cron-minute-out-of-range", '[daemon]\nschedule = "cron"\ncron = "61 * * * *"\n', None, "config",
     "daemon.cron", "'61 * * * *'"),
    ("cron-words", '[daemon]\ncron = "every hour"\n', None, "config", "daemon.cron", "'every hour'"),
    ("policy-file-missing", '[policy]\nfile = "policies/nope.toml"\n', None, "config", "policy.file", "'policies/nope.toml'"),
    ("state-dir-is-a-file", 'state_dir = "state.txt"\n', None, "config", "state_dir", "'state.txt'"),
    ("sft-never-runs", "[reflection]\npool_size = 10\n[training.sft]\nmin_samples = 100000\n", None, "config",
     "training.sft.min_samples", "100000"),
    ("dpo-never-runs", "[reflection]\npool_size = 10\n[training.dpo]\nmin_pairs = 10000\n", None, "config",
     "training.dpo.min_pairs", "10000"),
    ("dpref-without-a-judge", '[reflection]\njudge = "none"\n[training.dpo]\ndata = ["dpref"]\n', None, "config",
     "training.dpo.data", '["dpref"]'),
    ("openai-url-without-scheme", '[generation]\nbackend = "openai"\n[generation.openai]\nbase_url = "localhost:8000/v1"\n',
     None, "config", "generation.openai.base_url", "'localhost:8000/v1'"),
    ("openai-chat-with-self-judge", '[generation]\nbackend = "openai"\n[generation.openai]\nendpoint = "chat"\n', None,
     "config", "reflection.judge", "'self'"),
    ("vllm-context-too-short", '[generation]\nbackend = "vllm"\n[generation.vllm]\nmax_model_len = 128\n', None, "config",
     "generation.vllm.max_model_len", "128"),
    ("policy-unknown-primary", CUSTOM_POLICY, 'primary = "acc@t9"\n', "policy", "primary", "'acc@t9'"),
    ("policy-primary-without-outcomes", CUSTOM_POLICY, 'primary = "parse_rate"\n', "policy", "primary", "'parse_rate'"),
    ("policy-string-for-number", CUSTOM_POLICY, 'margin = "1.0"\n', "policy", "margin", "'1.0'"),
    ("policy-bool-for-number", CUSTOM_POLICY, "alpha = true\n", "policy", "alpha", "true"),
    ("policy-float-for-integer", CUSTOM_POLICY, "n_boot = 1e4\n", "policy", "n_boot", "10000.0"),
    ("policy-unknown-key", CUSTOM_POLICY, "alpah = 0.1\n", "policy", "alpah", "0.1"),
    ("policy-alpha-out-of-range", CUSTOM_POLICY, "alpha = 1.5\n", "policy", "alpha", "1.5"),
    ("policy-unknown-test", CUSTOM_POLICY, 'test = "ttest"\n', "policy", "test", "'ttest'"),
    ("policy-benchmark-not-evaluated", CUSTOM_POLICY, 'benchmarks = ["gsm8k"]\n', "policy", "benchmarks.0", "'gsm8k'"),
    ("policy-negative-margin", CUSTOM_POLICY, "margin = -1\n", "policy", "margin", "-1"),
]


def test_the_table_is_big_enough() -> None:
    assert len(BROKEN) >= 30 and len({case[0] for case in BROKEN}) == len(BROKEN)


def test_the_project_passes(tmp_path: Path, cli) -> None:  # noqa: ANN001
    config = project(tmp_path, GOOD)
    assert check_references(load_config(config)) == []
    result = cli("config", "check", config)
    assert result.exit_code == 0 and "well-formed" in result.stdout, result.stderr


@pytest.mark.parametrize(("config", "policy", "names", "key", "value"), [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_broken_config_is_one_line_naming_file_key_and_value(tmp_path: Path, cli, config: str, policy: str | None,
                                                              names: str, key: str, value: str) -> None:
    path = project(tmp_path, config, policy)
    result = cli("config", "check", path)
    assert result.exit_code == 2 and result.stdout == "" and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    named = path if names == "config" else tmp_path / "policies" / "custom.toml"
    assert lines[0].startswith(f"evolver: error: {named}: {key}: "), lines[0]
    assert re.search(rf"got {re.escape(value)}(\)|,| |$)", lines[0]), lines[0]


def test_paths_are_relative_to_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = project(tmp_path / "proj", '[model]\nbase = "./models/absent"\n')
    monkeypatch.chdir(tmp_path)   # elsewhere: the message names the folder beside the config file
    [line] = check_references(load_config(config))
    assert f"model folder not found ({tmp_path / 'proj' / 'models' / 'absent'};" in line
    good = project(tmp_path / "other", '[model]\nbase = "models/tiny"\n')
    assert check_references(load_config(good)) == []


def test_every_problem_is_reported_at_once(tmp_path: Path, cli) -> None:  # noqa: ANN001
    config = project(tmp_path, '[model]\nbase = "./absent"\n[evaluation]\nbenchmarks = ["nope"]\ninstruction = "x"\n'
                               '[daemon]\ncron = "bad"\n[policy]\nfile = "missing.toml"\n')
    result = cli("config", "check", config)
    keys = [line.split(": ")[3] for line in result.stderr.splitlines()]
    assert result.exit_code == 2 and keys == ["model.base", "evaluation.benchmarks.0", "evaluation.instruction",
                                              "daemon.cron", "policy.file"]


def test_shipped_config_and_policies_pass(cli) -> None:  # noqa: ANN001
    assert check_references(load_config(REPO / "evolver.toml")) == []
    for policy in ("default", "strict"):
        result = cli("policy", "check", REPO / "policies" / f"{policy}.toml")
        assert result.exit_code == 0, result.stderr
