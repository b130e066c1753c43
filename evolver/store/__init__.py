"""The versioned SQLite store: schema, migrations, the repository (writes) and the read side (queries:
evolver.store.lineage, .detail, .watch). Nothing outside this package opens the database."""

from evolver.store.hashing import canonical_hash
from evolver.store.migrations import SchemaTooNewError
from evolver.store.repo import Store, StoreError

__all__ = ["SchemaTooNewError", "Store", "StoreError", "canonical_hash"]
