"""The lineage printed at the end of `evolver run`: the same tree as `evolver lineage` (newest generations)."""

from __future__ import annotations

from rich.console import Console

from evolver.config import LoadedConfig
from evolver.store import Store

LAST = 20  # generations drawn after a run; `evolver lineage --all` shows every one


def print_lineage(cfg: LoadedConfig, out: Console, last: int | None = LAST) -> None:
    from evolver.tui.data import load_lineage, load_window
    from evolver.tui.views import lineage_view

    db = cfg.state_dir / "evolver.db"
    if not db.exists():
        return
    with Store.open(db) as store:
        lin = load_lineage(store) if last is None else load_window(store, last)
    out.print(lineage_view(lin, last=last))
