"""What a well-formed configuration refers to, checked before anything runs.

`validate` (load.py) checks the file's shape. This checks what the values point at: the model
folder (relative to the config file) or hub id, the policy file (validated as strictly as
`evolver.toml`), the suites to evaluate and the reflection task with their data, instruction ids,
the cron expression, and sizes that can never work. Each of these used to pass `config check` and
fail later: a whole generation before the decide phase, or a daemon that retried for ever.

`check_references(loaded)` returns every problem, one line each, naming the file, the key and the
value; `evolver config check` prints them and exits 2, and `evolver run` calls it before doing
anything. It looks into several rooms (tasks, policy, reflection), so it lives above them, not in
`evolver.config` (which imports nothing of evolver's).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from evolver.config.load import LoadedConfig, describe_value

if TYPE_CHECKING:
    from evolver.tasks.suites import Suite

# Hub repo ids: "name" or "owner/name"; letters, digits, '-', '_', '.'; no '--' or '..'; at most 96 each.
_HUB_PART = r"(?!.*(?:--|\.\.))[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9_])?"
_HUB_ID = re.compile(rf"^(?:{_HUB_PART}/)?{_HUB_PART}$", re.ASCII)


def check_references(loaded: LoadedConfig) -> list[str]:
    """Every problem with what `loaded` refers to, one line each ('FILE: key: problem, got value'); [] when none."""
    source = str(loaded.path) if loaded.path else "<built-in defaults>"
    problems: list[str] = []
    for check in (_model, _state_dir, _suites, _instructions, _schedule, _backend, _sizes, _trackers):
        problems += [f"{source}: {line}" for line in check(loaded)]
    problems += _policy(loaded, source)  # its lines name the policy file when the problem is inside it
    return problems


# training.report_to names -> the module each tracker needs (transformers reports only to installed ones).
TRACKER_MODULES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "trackio": "trackio"}


def _trackers(cfg: LoadedConfig) -> list[str]:
    import importlib.util

    return [_bad("training.report_to", f"{name} is not installed (pip install {TRACKER_MODULES[name]})", name)
            for name in cfg.config.training.report_to if importlib.util.find_spec(TRACKER_MODULES[name]) is None]


def _bad(key: str, problem: str, value: object) -> str:
    return f"{key}: {problem}, got {describe_value(value)}"


def _start(cfg: LoadedConfig) -> str:
    """Where relative paths start, for messages about files not found."""
    return "relative paths start at the config file" if cfg.path else "relative paths start at the working directory"


def _model(cfg: LoadedConfig) -> list[str]:
    from evolver.models import is_gguf
    from evolver.paths import expand_path

    m = cfg.config.model
    base = m.base
    if base == "embedded":
        return [_bad("model.gguf_file", "the embedded model is no GGUF file", m.gguf_file)] if m.gguf_file else []
    path = cfg.resolve(expand_path(base))
    if is_gguf(m):
        return _gguf(cfg, path)
    first = Path(base).parts[0] if Path(base).parts else base
    looks_local = base.startswith((".", "/", "~", "$")) or base.count("/") > 1 or (cfg.root / first).is_dir()
    if not looks_local:
        return [] if _HUB_ID.match(base) else [_bad("model.base", "expected 'embedded', a hub id ('owner/name'),"
                                                      " a model folder or a .gguf file", base)]
    if not path.exists():
        return [_bad("model.base", f"model folder not found ({path}; {_start(cfg)})", base)]
    if not path.is_dir():
        return [_bad("model.base", f"not a folder ({path})", base)]
    if not (path / "config.json").is_file():
        return [_bad("model.base", f"not a model folder (no config.json in {path})", base)]
    return []


def _gguf(cfg: LoadedConfig, path: Path) -> list[str]:
    """A GGUF base: the file exists and its header and metadata read (dequantizing waits for the first use)."""
    from evolver.gguf_base import GGUFError, check_gguf, gguf_path

    m = cfg.config.model
    if m.gguf_file and not path.is_dir():
        return [_bad("model.base", f"expected the folder holding model.gguf_file ({path} is not a folder)", m.base)]
    gguf = gguf_path(path, m.gguf_file)
    assert gguf is not None
    key, value = ("model.gguf_file", m.gguf_file) if m.gguf_file else ("model.base", m.base)
    if not gguf.is_file():
        return [_bad(key, f"GGUF file not found ({gguf}; {_start(cfg)})", value)]
    try:
        check_gguf(gguf)
    except GGUFError as err:
        return [_bad(key, str(err).removeprefix(f"{gguf}: ") + f" ({gguf})", value)]
    return []


def _state_dir(cfg: LoadedConfig) -> list[str]:
    path = cfg.state_dir
    if path.exists() and not path.is_dir():
        return [_bad("state_dir", f"not a folder ({path})", cfg.config.state_dir)]
    return []


def _suites(cfg: LoadedConfig) -> list[str]:
    from evolver.reflection.common import evals_dirs
    from evolver.tasks.suites import SuiteError, find_suite

    dirs = evals_dirs(cfg)
    wanted = [(f"evaluation.benchmarks.{i}", name, "test") for i, name in enumerate(cfg.config.evaluation.benchmarks)]
    wanted.append(("reflection.task", cfg.config.reflection.task, "train"))
    problems = []
    if not cfg.config.evaluation.benchmarks:
        problems.append(_bad("evaluation.benchmarks", "expected at least one suite to evaluate on", []))
    twice = [name for name, n in Counter(cfg.config.evaluation.benchmarks).items() if n > 1]
    if twice:
        problems.append(_bad("evaluation.benchmarks", "a suite is listed twice", twice[0]))
    for key, name, split in wanted:
        try:
            suite = find_suite(name, dirs)
        except SuiteError as err:
            problems.append(_bad(key, str(err), name))
            continue
        missing = _split_problem(suite, split)
        if missing:
            problems.append(_bad(key, missing, name))
    return problems


def _split_problem(suite: Suite, split: str) -> str | None:
    """Why `suite` cannot give `split` (evaluation reads 'test', the reflection pool 'train'), or None."""
    m = suite.manifest
    if m.generated:
        offered = m.splits
    elif m.format == "bigbench_json":
        return _task_file_problem(suite, split)
    elif m.datasets is not None and m.datasets.path is not None:
        folder = suite.source().path  # type: ignore[attr-defined]
        return None if folder.is_dir() else f"suite {m.name!r} has no data ({folder} not found)"
    elif m.datasets is not None:
        return None  # a hub dataset: its splits are only known once fetched
    else:
        files = suite.data_files()
        path = files.get(split)
        if path is not None and not path.is_file():
            hint = f": download {m.download}" if m.download else ""
            return f"suite {m.name!r} has no data ({path} not found{hint})"
        offered = sorted(files)
    if offered is not None and split not in offered:
        return f"suite {m.name!r} has no {split!r} split (it offers {', '.join(offered) or 'none'})"
    return None


def _task_file_problem(suite: Suite, split: str) -> str | None:
    """A BIG-bench suite: its task file (or tarball member) reads and has examples in `split`."""
    from evolver.tasks.rows import DataError
    from evolver.tasks.suites import SuiteError

    m = suite.manifest
    files = suite.data_files()
    path = next(iter(files.values()))
    if not path.is_file():
        hint = f": download {m.download}" if m.download else ""
        return f"suite {m.name!r} has no data ({path} not found{hint})"
    try:
        if not suite.task().load(split):
            return f"suite {m.name!r} has no {split!r} questions"
    except (DataError, SuiteError) as err:
        return f"suite {m.name!r}: {err}"
    return None


def _instructions(cfg: LoadedConfig) -> list[str]:
    from evolver.reflection.instructions import build_pool, default_pool

    r = cfg.config.reflection
    extra = [(i.id, i.text) for i in r.extra_instructions]
    known = {i.id for i in default_pool()} | {i for i, _ in extra}
    problems = [_bad(f"reflection.instruction_ids.{n}", "unknown instruction id (built in: 1-1-1 ... 2-8-2, or an"
                     " extra instruction's id)", i) for n, i in enumerate(r.instruction_ids) if i not in known]
    pool = {i.id for i in build_pool([i for i in r.instruction_ids if i in known] or None, extra)}
    wanted = cfg.config.evaluation.instruction
    if wanted not in pool:
        where = ("reflection.instruction_ids" if r.instruction_ids
                 else "built in: 1-1-1 ... 2-8-2, or an extra instruction's id")
        problems.append(_bad("evaluation.instruction", f"not in the instruction pool ({where})", wanted))
    return problems


def _schedule(cfg: LoadedConfig) -> list[str]:
    from apscheduler.triggers.cron import CronTrigger

    cron = cfg.config.daemon.cron
    try:
        CronTrigger.from_crontab(cron)
    except (ValueError, TypeError, KeyError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return [_bad("daemon.cron", f"not a crontab expression ({reason})", cron)]
    return []


def _backend(cfg: LoadedConfig) -> list[str]:
    c = cfg.config
    g = c.generation
    problems = []
    if g.backend == "openai":
        if not re.match(r"^https?://[^/\s]+", g.openai.base_url) or not g.openai.base_url.rstrip("/").endswith("/v1"):
            problems.append(_bad("generation.openai.base_url", "expected an http(s) URL ending in /v1", g.openai.base_url))
        if g.openai.endpoint == "chat" and c.reflection.judge == "self":
            problems.append(_bad("reflection.judge", "'self' needs prompt log-probabilities, which"
                                 " generation.openai.endpoint = 'chat' does not give (use 'none' or 'completions')",
                                 c.reflection.judge))
    if g.backend == "vllm":
        longest = max(g.trial.max_new_tokens, g.reflection.max_new_tokens)
        if g.vllm.max_model_len <= longest:
            problems.append(_bad("generation.vllm.max_model_len", f"expected more than the longest generation"
                                 f" ({longest} new tokens) plus its prompt", g.vllm.max_model_len))
    return problems


def _sizes(cfg: LoadedConfig) -> list[str]:
    """Thresholds no generation can ever reach, so a phase would be skipped for ever."""
    c = cfg.config
    r, t = c.reflection, c.training
    rows = r.pool_size * (r.k * r.max_rounds + 1) * t.data_window  # D+ (and T1) rows the window can hold
    problems = []
    if t.sft.min_samples > rows:
        problems.append(_bad("training.sft.min_samples", f"expected <= {rows} (the most rows reflection.pool_size,"
                             " k, max_rounds and training.data_window allow): SFT would never run", t.sft.min_samples))
    if t.dpo.enabled:
        builds = [d for d in t.dpo.data if d != "dpref" or r.judge == "self"]
        if not builds:
            problems.append(_bad("training.dpo.data", "only 'dpref', which reflection.judge = 'none' never builds:"
                                 " DPO would never run", t.dpo.data))
        pairs = r.pool_size * r.pairs_per_question * len(builds) * t.data_window
        if builds and t.dpo.min_pairs > pairs:
            problems.append(_bad("training.dpo.min_pairs", f"expected <= {pairs} (the most pairs reflection.pool_size,"
                                 " pairs_per_question and training.data_window allow): DPO would never run",
                                 t.dpo.min_pairs))
    return problems


def _policy(cfg: LoadedConfig, source: str) -> list[str]:
    from evolver.policy.rules import PolicyFileError, load_policy

    name = cfg.config.policy.file
    path = cfg.resolve(name)
    if not path.is_file():
        return [f"{source}: " + _bad("policy.file", f"policy file not found ({path}; {_start(cfg)})", name)]
    try:
        policy = load_policy(path)
    except PolicyFileError as err:
        return [str(err)]
    evaluated = cfg.config.evaluation.benchmarks
    return [f"{path}: " + _bad(f"benchmarks.{i}", f"not evaluated (evaluation.benchmarks in {source} is"
                               f" {evaluated}): every candidate would be rejected", b)
            for i, b in enumerate(policy.benchmarks) if b not in evaluated]
