"""Which weights a request's `model` names: the store's pointers are read per request, so a promotion,
pin or rollback takes effect on the next request without a restart.

Names: 'current' (or none) = the pinned generation, else the promoted one, else the base; 'base' (or
the base model's reference, vLLM's default name) = no adapter; 'gen-0007' = that generation's
adapter; plus names loaded at run time through /v1/load_lora_adapter.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evolver.artifacts import hash_adapter
from evolver.backends.base import Adapter
from evolver.reflection.common import adapter_for
from evolver.states import GenStatus, gen_name
from evolver.store import Store

GEN_NAME = re.compile(r"^gen-(\d+)$")
# Statuses whose model is final (an unfinished or failed generation has nothing to serve).
SERVABLE = (GenStatus.BASE, GenStatus.EVALUATED, GenStatus.PROMOTED, GenStatus.REJECTED, GenStatus.ROLLED_BACK)


class ModelNotFound(Exception):
    """A `model` that names nothing servable; the message says what to ask for instead."""


@dataclass(frozen=True)
class Served:
    name: str  # what answers: 'base', 'gen-0007', or a run-time adapter's name
    generation: int | None
    adapter: Adapter | None


class Registry:
    def __init__(self, store: Store, base_ref: str) -> None:
        self.store = store
        self.base_ref = base_ref
        self._extra: dict[str, Adapter] = {}
        self._lock = threading.Lock()

    def resolve(self, model: str | None) -> Served:
        name = (model or "current").strip()
        if name == "current":
            cur = self.store.current_generation()
            return Served("base", None, None) if cur is None else self._generation(cur)
        if name in ("base", self.base_ref):
            return Served("base", None, None)
        m = GEN_NAME.match(name)
        if m:
            return self._generation(int(m.group(1)))
        with self._lock:
            extra = self._extra.get(name)
        if extra is not None:
            return Served(name, None, extra)
        raise ModelNotFound(f"model {name!r} not found; GET /v1/models lists 'current', 'base' and the generations")

    def _generation(self, gen_id: int) -> Served:
        g = self.store.generation(gen_id)
        if g is None:
            raise ModelNotFound(f"model {gen_name(gen_id)!r} not found: no such generation")
        if g.status not in SERVABLE and not g.adapter_path:
            raise ModelNotFound(f"model {gen_name(gen_id)!r} has no model yet (status {g.status!r})")
        adapter = adapter_for(self.store, gen_id)
        if adapter is not None and not (adapter.path / "adapter_config.json").is_file():
            raise ModelNotFound(f"model {gen_name(gen_id)!r}: adapter missing at {adapter.path}")
        return Served(gen_name(gen_id), gen_id, adapter)

    def load(self, name: str, path: str) -> bool:
        """Register an adapter under a new name; False if exactly this one is already there."""
        if name in ("current", "base", self.base_ref) or GEN_NAME.match(name):
            if GEN_NAME.match(name):
                served = self.resolve(name)
                if served.adapter is not None and served.adapter.path.resolve() == Path(path).resolve():
                    return False
            raise ValueError(f"lora_name {name!r} is reserved (generations are served by their own name)")
        p = Path(path).expanduser().resolve()
        if not (p / "adapter_config.json").is_file():
            raise ValueError(f"lora_path {path!r}: no adapter_config.json there")
        with self._lock:
            seen = self._extra.get(name)
            if seen is not None:
                if seen.path == p:
                    return False
                raise ValueError(f"lora_name {name!r} is already loaded from {seen.path}; a new adapter needs a new name")
            uid = 1_000_000 + len(self._extra)  # beyond any generation id
            self._extra[name] = Adapter(name=name, path=p, uid=uid, sha256=hash_adapter(p))
        return True

    def models(self) -> list[dict[str, Any]]:
        """The OpenAI model list: 'current' (an alias), 'base', then every servable generation with its parent."""
        cur = self.store.current_generation()
        pinned = self.store.pointer("pinned")
        rows: list[dict[str, Any]] = []
        gens = self.store.generations()
        created = int(gens[0].created_at) if gens else 0
        rows.append({"id": "current", "object": "model", "created": created, "owned_by": "evolver",
                     "root": gen_name(cur) if cur is not None else "base", "parent": None, "pinned": pinned is not None})
        rows.append({"id": "base", "object": "model", "created": created, "owned_by": "evolver", "root": self.base_ref,
                     "parent": None})
        for g in gens:
            if g.status not in SERVABLE and not g.adapter_path:
                continue
            rows.append({"id": gen_name(g.id), "object": "model", "created": int(g.created_at), "owned_by": "evolver",
                         "root": self.base_ref, "parent": gen_name(g.parent_id) if g.parent_id is not None else "base",
                         "status": g.status, "current": g.id == cur, "adapter": g.adapter_path})
        with self._lock:
            for name, a in self._extra.items():
                rows.append({"id": name, "object": "model", "created": created, "owned_by": "evolver",
                             "root": self.base_ref, "parent": "base", "adapter": str(a.path)})
        return rows
