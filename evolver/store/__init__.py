"""The versioned SQLite store: schema, migrations and the repository API."""

from evolver.store.migrations import SchemaTooNewError
from evolver.store.repo import Store, StoreError, canonical_hash

__all__ = ["SchemaTooNewError", "Store", "StoreError", "canonical_hash"]
