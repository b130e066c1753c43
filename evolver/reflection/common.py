"""Pieces the generate, harvest and evaluate stages share: tasks by name, adapters by generation, specs."""

from __future__ import annotations

from pathlib import Path

from evolver.artifacts import AdapterError, verify_adapter
from evolver.backends.base import Adapter, Sampling
from evolver.config import LoadedConfig
from evolver.config.schema import SamplingConfig
from evolver.reflection.instructions import Instruction, build_pool
from evolver.states import EventKind, gen_name
from evolver.store import Store
from evolver.tasks.base import Item, Task
from evolver.tasks.rows import Loaded


def evals_dirs(cfg: LoadedConfig) -> list[Path]:
    """Where suites are looked up: the config's evals/ first, then the shipped defaults."""
    from evolver.paths import defaults_dir

    dirs = [cfg.resolve("evals")]
    try:
        shipped = defaults_dir() / "evals"
        if shipped not in dirs:
            dirs.append(shipped)
    except FileNotFoundError:
        pass
    return dirs


def load_task(cfg: LoadedConfig, name: str) -> Task:
    from evolver.tasks.suites import find_suite

    return find_suite(name, evals_dirs(cfg)).task()


def load_split(cfg: LoadedConfig, name: str, split: str, limit: int | None) -> tuple[Task, Loaded]:
    """A suite's task and one split's items, with the rows dropped on loading (for the evaluation's report)."""
    from evolver.tasks.suites import find_suite

    suite = find_suite(name, evals_dirs(cfg))
    return suite.task(), suite.load(split, limit)


def suite_limit(cfg: LoadedConfig, name: str) -> int | None:
    """Held-out questions to evaluate (per level, for a suite with levels): `evaluation.limit`, else None
    (the suite's manifest `limit`, else the whole split)."""
    return cfg.config.evaluation.limit


def sampling(s: SamplingConfig) -> Sampling:
    return Sampling(temperature=s.temperature, top_p=s.top_p, max_new_tokens=s.max_new_tokens)


def instruction_pool(cfg: LoadedConfig) -> list[Instruction]:
    r = cfg.config.reflection
    return build_pool(r.instruction_ids or None, [(i.id, i.text) for i in r.extra_instructions])


def adapter_for(store: Store, generation: int | None) -> Adapter | None:
    """The adapter a generation's model uses (None for the base model), verified against its sha256.

    Every use goes through here (generate, evaluate, judge, serve), so weights that changed on
    disk are refused with one line naming the generation before any answer is made with them,
    and the refusal is recorded as an event (once per distinct refusal in a row).
    """
    if generation is None:
        return None
    g = store.generation(generation)
    if g is None or not g.adapter_path:
        return None
    try:
        path = verify_adapter(g.adapter_path, g.adapter_sha256)
    except AdapterError as err:
        refused = AdapterError(f"{gen_name(g.id)}: {err}", detail=err.detail)
        _record_refusal(store, g.id, refused)
        raise refused from None
    return Adapter(name=gen_name(g.id), path=path, uid=g.id, sha256=g.adapter_sha256)


def _record_refusal(store: Store, generation: int, err: AdapterError) -> None:
    last = store.events(generation, limit=1)
    if last and last[0].kind == EventKind.ADAPTER_REFUSED and last[0].reason == err.line:
        return  # the same refusal again (a retry, another request): the first event says it
    store.record_event(EventKind.ADAPTER_REFUSED, generation, "evolver", err.line, {"detail": err.detail})


def register_items(store: Store, task: Task, items: list[Item]) -> dict[int, Item]:
    """Put questions in the store once; return question id -> item."""
    ids = store.upsert_questions(
        {"source": task.name, "external_id": it.id, "split": it.split, "text": it.text, "gold": it.gold,
         "meta": it.meta or None} for it in items)
    return {ids[it.id]: it for it in items}
