"""The lineage as the CLI reads and prints it: `evolver lineage` and `plot`, and the tree printed at
the end of `evolver run` (the newest generations). Imported inside command bodies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console

from evolver.store.lineage import Lineage, fill_lineage, lineage_skeleton, load_lineage
from evolver.store.reader import ReadStore, Rows
from evolver.views.lineage import lineage_view
from evolver.views.tree import window_ids

if TYPE_CHECKING:
    from evolver.config import LoadedConfig

LAST = 20  # generations drawn after a run; `evolver lineage --all` shows every one


def read_lineage(store: Rows, last: int | None) -> Lineage:
    """Every generation in full (`last` None), or the skeleton filled only where the newest-`last` window draws."""
    if last is None:
        return load_lineage(store)
    lin = lineage_skeleton(store)
    return fill_lineage(store, lin, window_ids(lin, last))


def print_lineage(cfg: LoadedConfig, out: Console, last: int | None = LAST) -> None:
    db = cfg.state_dir / "evolver.db"
    if not db.exists():
        return
    with ReadStore.open(db) as store:
        lin = read_lineage(store, last)
    out.print(lineage_view(lin, last=last))
