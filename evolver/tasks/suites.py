"""Benchmark suites: a folder with a `manifest.toml` naming a format and where the rows are.

    name = "logiqa"                 # suite name (required)
    format = "logiqa"               # logiqa | math | mbpp | bigbench | gsm8k | arith | bigbench_json
    # or, for a Task written in Python:  task = "package.module:Class"  (built with `seed` and [options])
    data = "logiqa_test.jsonl"      # JSONL, relative to the manifest (or { test = "...", train = "..." });
                                    # `~` and $EVOLVER_CACHE (default ~/.cache/evolver) are expanded
    member = "bigbench/benchmark_tasks/navigate/task.json"   # bigbench_json: the task file inside the
                                    # tarball `data` names (or a list: several tasks in one suite);
                                    # without it `data` is the task.json itself
    instruction = "..."             # optional: replaces the format's answer instruction (write it for chat models)
    examples = [{ question = "...", solution = "... Finish[b]" }]   # optional worked examples, in every prompt
    split = "test"                  # the split `data` holds when it is a single file
    limit = 500                     # optional cap on items
    ids = "auto"                    # "auto": the rows' own ids when all are present and distinct, else line
                                    # numbers; "row": own ids (a repeat is an error); "line": line numbers
    download = "..."                # optional: where to get a missing data file (shown in the error)
    description = "..."             # optional
    answer = "Finish[<number>]"     # optional: the answer format, for listings
    seed = 0                        # optional: passed to generated tasks (arith, `task = ...`)
    splits = ["train", "test"]      # optional: the splits a generated task offers
    [datasets]                      # instead of `data`: a hub dataset, fetched only when the suite is loaded
    id = "openai/gsm8k"             # ... or path = "gsm8k-disk" (a `save_to_disk` folder, read offline)
    config = "main"
    [options]                       # optional keyword arguments for the task (e.g. mbpp's challenge_tests)

Users add a suite without code: a folder with such a manifest and a JSONL file in one of the formats.
Nothing here touches the data until `Suite.task().load()` is called.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from evolver.paths import expand_path
from evolver.tasks.base import Task
from evolver.tasks.fewshot import WorkedExample, preamble
from evolver.tasks.rows import DiskSource, HubSource, JsonlSource, Loaded, RowSource

MANIFEST = "manifest.toml"
Format = Literal["logiqa", "math", "mbpp", "bigbench", "gsm8k", "arith", "bigbench_json"]


class SuiteError(Exception):
    """A suite that cannot be found or used; the message is one line naming the file and key."""


class DatasetsSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, min_length=1, description="Hub dataset id, e.g. 'openai/gsm8k'.")
    path: str | None = Field(None, min_length=1, description="A `save_to_disk` folder, relative to the manifest.")
    config: str | None = Field(None, description="Dataset configuration name, e.g. 'main'.")
    split: str | None = Field(None, description="The hub's split name for the manifest's `split` (default: the same).")
    revision: str | None = Field(None, description="Commit or tag to pin.")

    @model_validator(mode="after")
    def _one(self) -> DatasetsSpec:
        if (self.id is None) == (self.path is None):
            raise ValueError("give exactly one of `id` (a hub dataset) or `path` (a save_to_disk folder)")
        return self


class Shot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(..., min_length=1, description="The example's question.")
    solution: str = Field(..., min_length=1, description="Its worked solution, finished as the answer format asks.")


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, description="Suite name, as used by --benchmark and evaluation.benchmarks.")
    format: Format | None = Field(None, description="Row format and scorer.")
    task: str | None = Field(None, pattern=r"^[\w.]+:\w+$", description="'module:Class' of a Task written in Python.")
    description: str = Field("", description="One line shown by listings.")
    answer: str = Field("", description="The answer format, for listings.")
    seed: int | None = Field(None, ge=0, description="Seed for generated tasks (arith, `task`).")
    splits: list[str] | None = Field(None, description="Splits a generated task offers.")
    data: str | dict[str, str] | None = Field(None, description="JSONL file (or split -> file), relative to the manifest.")
    datasets: DatasetsSpec | None = Field(None, description="Hub dataset to load instead of `data`.")
    split: str = Field("test", min_length=1, description="The split `data` (or `datasets`) holds.")
    limit: int | None = Field(None, ge=1, description="Cap on items.")
    ids: Literal["auto", "row", "line"] = Field("auto", description="How items get their ids (see evolver.tasks.rows).")
    member: str | list[str] | None = Field(None, description="bigbench_json: task.json member(s) of the tarball `data`.")
    instruction: str = Field("", description="Answer instruction replacing the format's own (for chat models).")
    examples: list[Shot] = Field(default_factory=list, description="Worked examples carried by every prompt.")
    download: str = Field("", description="Where to get a missing data file.")
    options: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for the task.")

    @model_validator(mode="after")
    def _one_source(self) -> Manifest:
        if (self.format is None) == (self.task is None):
            raise ValueError("give exactly one of `format` or `task`")
        if self.data is not None and self.datasets is not None:
            raise ValueError("give either `data` or `[datasets]`, not both")
        if self.data is None and self.datasets is None and self.generated is False:
            raise ValueError(f"format {self.format!r} needs `data` (a JSONL file) or a `[datasets]` table")
        if self.format == "bigbench_json" and not isinstance(self.data, str):
            raise ValueError("format 'bigbench_json' needs `data`: a task.json file, or a tarball with `member`")
        if self.member is not None and self.format != "bigbench_json":
            raise ValueError("`member` is for format 'bigbench_json'")
        if self.generated and (self.instruction or self.examples):
            raise ValueError("`instruction` and `examples` are for suites of rows (a generated task keeps its own format)")
        return self

    @property
    def generated(self) -> bool:
        """Items come from code (arith, `task = ...`), not from rows."""
        return self.format == "arith" or self.task is not None


@dataclass(frozen=True)
class Suite:
    manifest: Manifest
    path: Path  # the manifest file

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def root(self) -> Path:
        return self.path.parent

    def data_files(self) -> dict[str, Path]:
        data = self.manifest.data
        if data is None:
            return {}
        files = {self.manifest.split: data} if isinstance(data, str) else dict(data)
        return {split: self._path(f) for split, f in files.items()}

    def _path(self, value: str) -> Path:
        p = expand_path(value)
        return p if p.is_absolute() else (self.root / p).resolve()

    def members(self) -> tuple[str, ...]:
        m = self.manifest.member
        return () if m is None else (m,) if isinstance(m, str) else tuple(m)

    def source(self) -> RowSource:
        m = self.manifest
        if m.datasets is not None:
            splits = {m.split: m.datasets.split or m.split}
            if m.datasets.path is not None:
                return DiskSource(self._path(m.datasets.path), splits, m.ids)
            return HubSource(m.datasets.id or "", m.datasets.config, splits, m.datasets.revision, m.ids)
        hint = f"download {m.download} there" if m.download else f"named by key 'data' in {self.path}"
        return JsonlSource(self.data_files(), m.ids, hint)

    def task(self) -> Task:
        """The suite's Task; loading its items is what reads the data (or fetches it from the hub)."""
        m = self.manifest
        if m.generated:
            kwargs = {**({"seed": m.seed} if m.seed is not None else {}), **m.options}
            try:
                task = _task_class(m.task or "evolver.world.task:ArithTask")(**kwargs)  # imported only when asked for
            except TypeError as err:
                raise SuiteError(f"{self.path}: options: not accepted by {m.task or 'arith'} ({err})") from None
            return task if m.limit is None else _Capped(task, m.limit, m.split)
        return self._row_task()

    def load(self, split: str | None = None, limit: int | None = None) -> Loaded:
        """Items of `split` (default: the manifest's) with what a report needs: dropped rows and the id scheme."""
        split = split or self.manifest.split
        if self.manifest.generated:
            return Loaded(self.task().load(split, limit), [], "generated by the task")
        return self._row_task().load_report(split, limit)

    def _row_task(self) -> RowTask:
        from evolver.tasks.gsm8k import GSM8KTask
        from evolver.tasks.reflectevo import BigBenchTask, LogiQATask, MathTask, MBPPTask

        m = self.manifest
        assert m.format is not None and m.format != "arith"
        shots = [WorkedExample(e.question, e.solution) for e in m.examples]
        if m.format == "bigbench_json":
            return self._bigbench_task(shots)
        cls = {"logiqa": LogiQATask, "math": MathTask, "mbpp": MBPPTask, "bigbench": BigBenchTask, "gsm8k": GSM8KTask}[m.format]
        try:
            task = cls(source=self.source(), name=m.name, cap=m.limit, **m.options)
        except TypeError as err:
            raise SuiteError(f"{self.path}: options: not accepted by format {m.format!r} ({err})") from None
        if m.instruction or shots:
            task.answer_format = preamble(m.instruction or task.answer_format, shots)
        return task

    def _bigbench_task(self, shots: list[WorkedExample]) -> RowTask:
        from evolver.tasks.bigbench_json import BigBenchJsonTask, BigBenchSource

        m = self.manifest
        opts = dict(m.options)
        split_opts = {k: opts.pop(k) for k in ("test_share", "shots") if k in opts}
        data = m.data if isinstance(m.data, str) else ""
        try:
            source = BigBenchSource(self._path(data), self.members(), **split_opts)
            extra = {"instruction": m.instruction} if m.instruction else {}
            return BigBenchJsonTask(source=source, name=m.name, cap=m.limit, examples=shots, **extra, **opts)
        except (TypeError, ValueError) as err:
            raise SuiteError(f"{self.path}: options: not accepted by format 'bigbench_json' ({err})") from None


class RowTask(Task, Protocol):
    """A task built from rows, which can say what it dropped on loading."""

    def load_report(self, split: str = "test", limit: int | None = None) -> Loaded: ...


def _task_class(spec: str) -> Any:
    import importlib

    module, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise SuiteError(f"task {spec!r} cannot be imported: {err}") from None


@dataclass
class _Capped:
    """A task whose evaluated split returns `cap` items unless the caller asks for another number
    (for tasks that take no cap themselves): the manifest's limit is the default size of an evaluation.

    Other splits (a generated task's training pool) are not capped: the manifest's limit is about evaluation.
    """

    inner: Task
    cap: int
    split: str = "test"

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def answer_format(self) -> str:
        return self.inner.answer_format

    def load(self, split: str = "test", limit: int | None = None) -> list:
        if split != self.split:
            return self.inner.load(split, limit)
        return self.inner.load(split, self.cap if limit is None else limit)  # an explicit limit is the caller's

    def score(self, item, output):  # noqa: ANN001, ANN201
        return self.inner.score(item, output)

    def as_first_trial(self, output: str) -> str:
        from evolver.tasks.base import first_trial_text

        return first_trial_text(self.inner, output)


def _format_error(path: Path, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"{path}: {loc}: unknown key"
    if first["type"] == "missing":
        return f"{path}: {loc}: required key is missing"
    msg = first["msg"].removeprefix("Value error, ")
    return f"{path}: {loc}: {msg}" if loc else f"{path}: {msg}"


def load_manifest(path: Path) -> Suite:
    """Read and validate one manifest; every problem is one SuiteError line naming the file and key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SuiteError(f"{path}: manifest not found") from None
    except tomllib.TOMLDecodeError as err:
        raise SuiteError(f"{path}: invalid TOML: {err}") from None
    except UnicodeDecodeError:
        raise SuiteError(f"{path}: not UTF-8 text") from None
    try:
        return Suite(Manifest.model_validate(data), path.resolve())
    except ValidationError as err:
        raise SuiteError(_format_error(path, err)) from None


def find_suite(name_or_path: str | Path, search_dirs: list[Path] | tuple[Path, ...]) -> Suite:
    """A suite by path (its folder or manifest file) or by name (a folder under one of `search_dirs`).

    Any BIG-bench task is a suite too, without a manifest: a `task.json` path, or `bigbench:<task>`
    (`bigbench:logical_deduction/three_objects`), read from the sdist in the cache (`BIGBENCH_SDIST`).
    """
    p = Path(name_or_path).expanduser()
    if str(name_or_path).startswith(BIGBENCH_PREFIX):
        task = str(name_or_path)[len(BIGBENCH_PREFIX):].strip("/")
        return _bigbench_suite(f"bigbench-{task.replace('/', '-')}", BIGBENCH_SDIST,
                               f"bigbench/benchmark_tasks/{task}/task.json")
    if p.is_file() and p.suffix == ".json":
        return _bigbench_suite(p.parent.name, str(p.resolve()), None)
    if p.is_file():
        return load_manifest(p)
    if p.is_dir():
        if not (p / MANIFEST).is_file():
            raise SuiteError(f"{p}: no {MANIFEST} in this folder")
        return load_manifest(p / MANIFEST)
    name = str(name_or_path)
    if "/" not in name and "\\" not in name and not name.endswith(".toml"):
        for d in search_dirs:
            candidate = Path(d) / name / MANIFEST
            if candidate.is_file():
                return load_manifest(candidate)
    known = sorted({s.name for s in list_suites(search_dirs, strict=False)})
    where = ", ".join(str(d) for d in search_dirs) or "no search folders"
    listing = f"; suites: {', '.join(known)}" if known else ""
    raise SuiteError(f"no suite {name!r} (looked in {where}){listing}")


BIGBENCH_PREFIX = "bigbench:"
BIGBENCH_SDIST = "$EVOLVER_CACHE/pkgs/bigbench-1.0.0.tar.gz"  # where scripts/real_model.sh puts the sdist


def _bigbench_suite(name: str, data: str, member: str | None) -> Suite:
    """A suite for one BIG-bench task file, with the format's defaults (what a two-line manifest would say)."""
    manifest = Manifest(name=name, format="bigbench_json", data=data, member=member,
                        description="a BIG-bench task named on the command line")
    return Suite(manifest, (expand_path(data) if member else Path(data)).parent / MANIFEST)


def list_suites(search_dirs: list[Path] | tuple[Path, ...], strict: bool = True) -> list[Suite]:
    """Every `<dir>/<suite>/manifest.toml`, sorted by name; a broken manifest raises unless `strict=False`."""
    suites: list[Suite] = []
    for d in search_dirs:
        d = Path(d)
        if not d.is_dir():
            continue
        for manifest in sorted(d.glob(f"*/{MANIFEST}")):
            try:
                suites.append(load_manifest(manifest))
            except SuiteError:
                if strict:
                    raise
    return sorted(suites, key=lambda s: s.name)
