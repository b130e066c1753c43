"""The versioned SQLite store: schema, migrations, the repository (writes) and the read side (queries:
evolver.store.lineage, .detail, .watch, over `ReadStore` or `Store`). Nothing outside this package opens
the database.

The names below load on first use: `Store` brings sqlalchemy and sqlmodel (half a second), which the
read-only commands never need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evolver.store.hashing import canonical_hash
    from evolver.store.migrations import SchemaTooNewError
    from evolver.store.repo import Store, StoreError

__all__ = ["SchemaTooNewError", "Store", "StoreError", "canonical_hash"]

_WHERE = {"Store": "repo", "StoreError": "repo", "SchemaTooNewError": "migrations", "canonical_hash": "hashing"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'evolver.store' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"evolver.store.{_WHERE[name]}"), name)
