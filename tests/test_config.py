"""`evolver config check|show`: every bad config is one readable line and exit 2; good ones round-trip."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from evolver.config import EvolverConfig, config_hash, load_config, to_toml, validate

# (id, file content, key path the message must name, fragments the message must hold)
# key path None: the problem is the file itself, not a key.
MALFORMED: list[tuple[str, str | bytes, str | None, tuple[str, ...]]] = [
    ("unknown-top-level-key", 'colour = "blue"\n', "colour", ("unknown key", "'blue'")),
    ("unknown-nested-key", '[model]\nbase_model = "x"\n', "model.base_model", ("unknown key",)),
    ("unknown-deep-key", "[generation.trial]\ntemprature = 0.5\n", "generation.trial.temprature", ("unknown key",)),
    ("unknown-table", "[sampling]\ntemperature = 1.0\n", "sampling", ("unknown key",)),
    ("string-for-int", 'seed = "7"\n', "seed", ("expected a valid integer", "got '7'")),
    ("bool-for-int", "[generation]\nbatch_size = true\n", "generation.batch_size", ("expected a valid integer", "got true")),
    ("float-for-int", "[reflection]\nk = 2.5\n", "reflection.k", ("expected a valid integer", "got 2.5")),
    ("string-for-float", '[generation.trial]\ntemperature = "hot"\n', "generation.trial.temperature",
     ("expected a valid number", "got 'hot'")),
    ("above-max", "[generation.trial]\ntop_p = 1.5\n", "generation.trial.top_p", ("expected <= 1", "got 1.5")),
    ("zero-not-allowed", "[reflection]\nk = 0\n", "reflection.k", ("expected >= 1", "got 0")),
    ("negative-int", "seed = -1\n", "seed", ("expected >= 0", "got -1")),
    ("negative-nested-int", "[daemon]\nretries = -3\n", "daemon.retries", ("expected >= 0", "got -3")),
    ("negative-float", "[training.sft]\nlearning_rate = -0.001\n", "training.sft.learning_rate",
     ("expected > 0", "got -0.001")),
    ("too-large", "[model]\nthreads = 100000\n", "model.threads", ("expected <= 512", "got 100000")),
    ("bad-enum", '[model]\ndtype = "int8"\n', "model.dtype", ("'bfloat16'", "got 'int8'")),
    ("bad-enum-in-list", '[training.dpo]\ndata = ["dpm", "dpo"]\n', "training.dpo.data.1", ("'dpref'", "got 'dpo'")),
    ("bad-enum-daemon", '[daemon]\nschedule = "weekly"\n', "daemon.schedule", ("'cron'", "got 'weekly'")),
    ("list-instead-of-table", 'model = ["a"]\n', "model", ("expected a table", 'got ["a"]')),
    ("scalar-instead-of-table", "training = 3\n", "training", ("expected a table", "got 3")),
    ("table-instead-of-list", "[training.dpo]\ndata = { kind = \"dpm\" }\n", "training.dpo.data",
     ("expected an array",)),
    ("string-instead-of-list", '[evaluation]\nbenchmarks = "arith"\n', "evaluation.benchmarks", ("expected an array",)),
    ("union-neither", '[training.lora]\ntarget_modules = "attention"\n', "training.lora.target_modules",
     ("an array or 'all-linear'", "got 'attention'")),
    ("date-for-string", "state_dir = 2024-01-01\n", "state_dir", ("expected a valid string",)),
    ("duplicate-instruction-ids",
     '[[reflection.extra_instructions]]\nid = "mine"\ntext = "Check units."\n'
     '[[reflection.extra_instructions]]\nid = "mine"\ntext = "Check signs."\n',
     "reflection.extra_instructions", ("expected unique ids", "got 'mine'")),
    ("empty-instruction-id", '[[reflection.extra_instructions]]\nid = ""\ntext = "x"\n',
     "reflection.extra_instructions.0.id", ("at least 1 character", "got ''")),
    ("instruction-missing-text", '[[reflection.extra_instructions]]\nid = "a"\n',
     "reflection.extra_instructions.0.text", ("required key is missing",)),
    ("vllm-rank-below-lora-r",
     '[generation]\nbackend = "vllm"\n[generation.vllm]\nmax_lora_rank = 8\n[training.lora]\nr = 16\n',
     "generation.vllm.max_lora_rank", ("expected >= training.lora.r (16)", "got 8")),
    ("invalid-toml", "seed = = 1\n", None, ("invalid TOML", "line 1")),
    ("duplicate-toml-key", "seed = 1\nseed = 2\n", None, ("invalid TOML",)),
    ("unclosed-table", "[model\nbase = 'x'\n", None, ("invalid TOML",)),
    ("not-utf8", b"seed = 1\n# caf\xe9 \xff\xfe\n", None, ("not UTF-8",)),
]


def _one_error_line(result) -> str:  # noqa: ANN001
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("evolver: error: ")
    return lines[0]


def test_the_table_is_big_enough() -> None:
    assert len(MALFORMED) >= 15
    assert len({case[0] for case in MALFORMED}) == len(MALFORMED)


@pytest.mark.parametrize(("content", "key", "fragments"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_config_is_one_line_exit_2(tmp_path: Path, cli, content: str | bytes, key: str | None,
                                             fragments: tuple[str, ...]) -> None:
    path = tmp_path / "bad.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    line = _one_error_line(cli("config", "check", path))
    assert f"{path}: " in line
    if key is not None:
        assert f"{path}: {key}: " in line, line
    for fragment in fragments:
        assert fragment in line, (fragment, line)


def test_missing_file_is_one_line_exit_2(tmp_path: Path, cli) -> None:
    path = tmp_path / "nowhere" / "evolver.toml"
    line = _one_error_line(cli("config", "check", path))
    assert line == f"evolver: error: {path}: config file not found"


def test_bad_global_config_fails_other_commands_the_same_way(tmp_path: Path, cli) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[reflection]\nk = 0\n")
    line = _one_error_line(cli("--config", path, "status"))
    assert f"{path}: reflection.k: expected >= 1, got 0" in line


def test_run_takes_config_after_the_command(tmp_path: Path, cli) -> None:
    """`evolver run --config FILE` (the issue's spelling, and what a systemd unit writes) reads FILE."""
    path = tmp_path / "bad.toml"
    path.write_text("[reflection]\nk = 0\n")
    line = _one_error_line(cli("run", "--generations", "1", "--config", path))
    assert f"{path}: reflection.k: expected >= 1, got 0" in line
    assert not (tmp_path / "state").exists()


def test_shipped_config_validates_and_equals_the_defaults(repo_root: Path, cli) -> None:
    shipped = repo_root / "evolver.toml"
    loaded = load_config(shipped)
    assert loaded.config == EvolverConfig()
    assert loaded.hash == config_hash(EvolverConfig())
    result = cli("config", "check", shipped)
    assert result.exit_code == 0, result.stderr
    assert "well-formed" in result.stdout


def test_shipped_config_names_every_top_level_section(repo_root: Path) -> None:
    data = tomllib.loads((repo_root / "evolver.toml").read_text(encoding="utf-8"))
    assert set(data) == set(EvolverConfig.model_fields)


# A config far from the defaults: nested tables, arrays of tables, unions, None-able keys, awkward text.
NON_DEFAULT = """\
seed = 7
state_dir = "elsewhere/state"
[model]
base = "some/hub-id"
revision = "abc123"
dtype = "bfloat16"
[generation]
backend = "vllm"
[generation.vllm]
max_lora_rank = 64
[generation.trial]
temperature = 1
[reflection]
k = 8
instruction_ids = ["1-1-1", "2-3-1"]
[[reflection.extra_instructions]]
id = "emoji"
text = "Check the units \U0001F9EA, the \\"quotes\\", a tab\\t and a backslash \\\\ — and café."
[[reflection.extra_instructions]]
id = "second"
text = "Plan again."
[training.lora]
r = 32
target_modules = ["q_proj", "v_proj"]
[training.dpo]
data = ["dpm", "dpref"]
[evaluation]
limit = 50
benchmarks = ["arith", "gsm8k"]
"""


@pytest.fixture
def non_default(tmp_path: Path) -> Path:
    path = tmp_path / "custom.toml"
    path.write_text(NON_DEFAULT, encoding="utf-8")
    return path


def test_non_default_config_loads(non_default: Path) -> None:
    cfg = load_config(non_default).config
    assert cfg.generation.trial.temperature == 1.0
    assert cfg.training.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.reflection.extra_instructions[0].text.startswith("Check the units \U0001F9EA")
    assert cfg != EvolverConfig()


@pytest.mark.parametrize("use_file", [False, True], ids=["defaults", "custom"])
def test_show_json_round_trips(non_default: Path, cli, use_file: bool) -> None:
    args = ["--config", non_default] if use_file else []
    result = cli(*args, "config", "show", "--json")
    assert result.exit_code == 0, result.stderr
    expected = load_config(non_default).config if use_file else EvolverConfig()
    assert validate(json.loads(result.stdout)["config"]) == expected


@pytest.mark.parametrize("use_file", [False, True], ids=["defaults", "custom"])
def test_show_toml_revalidates(non_default: Path, cli, use_file: bool) -> None:
    args = ["--config", non_default] if use_file else []
    result = cli(*args, "config", "show")
    assert result.exit_code == 0, result.stderr
    expected = load_config(non_default).config if use_file else EvolverConfig()
    assert validate(tomllib.loads(result.stdout)) == expected


def test_annotated_toml_revalidates(non_default: Path) -> None:
    cfg = load_config(non_default).config
    text = to_toml(cfg, annotated=True)
    assert "# LoRA rank." in text
    assert validate(tomllib.loads(text)) == cfg


def test_hash_ignores_layout(tmp_path: Path) -> None:
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text("[training.lora]\nr = 8\nalpha = 16\n")
    b.write_text("training = { lora = { alpha = 16, r = 8 } }\n")
    assert load_config(a).hash == load_config(b).hash != load_config(None).hash


def test_config_is_found_through_the_environment(tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "env.toml"
    path.write_text("seed = 99\n")
    monkeypatch.setenv("EVOLVER_CONFIG", str(path))
    result = cli("config", "show", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["config"]["seed"] == 99


def test_relative_state_dir_resolves_against_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "proj" / "evolver.toml"
    path.parent.mkdir()
    path.write_text('state_dir = "run/state"\n')
    assert load_config(path).state_dir == (tmp_path / "proj" / "run" / "state").resolve()
