"""The served adapter, checked before the daemon trusts it (the store's pages: evolver.store.health).

The served generation's adapter is verified when the daemon starts, before every generation (its
parent is the model that generates) and in housekeeping. Weights that no longer match their
sha256 (rewritten, deleted, truncated) are never used: `current` is rolled back to the latest
earlier current generation whose adapter verifies (the base model always does), with an event
saying why. A pinned generation is a person's choice, so the daemon does not move it: it stops
with one line instead.
"""

from __future__ import annotations

from evolver.artifacts import AdapterError, verify_adapter
from evolver.daemon.faults import Fatal
from evolver.logs import get_logger
from evolver.policy.actions import previous_current, rollback
from evolver.reflection.common import adapter_for
from evolver.states import PointerName, gen_name
from evolver.store import Store
from evolver.store.schema import Generation


def verifies(g: Generation) -> bool:
    """True when the generation's model can be served as recorded (no adapter: the base model)."""
    if not g.adapter_path:
        return True
    try:
        verify_adapter(g.adapter_path, g.adapter_sha256)
    except AdapterError:
        return False
    return True


def ensure_served_verifies(store: Store) -> tuple[int, int] | None:
    """Roll `current` back from a generation whose adapter fails verification; returns (from, to) if it moved."""
    served = store.current_generation()
    try:
        adapter_for(store, served)  # records the refusal as an event
        return None
    except AdapterError as err:
        if store.pointer(PointerName.PINNED) is not None:
            raise Fatal(f"{err.line}; it is pinned, so the daemon will not move it: restore the adapter or"
                        " `evolver unpin`") from None
        target = previous_current(store, usable=verifies)
        if target is None:
            raise Fatal(f"{err.line}; no earlier current generation verifies to roll back to") from None
        moved = rollback(store, to=target, actor="daemon", reason=f"{err.line}; rolled back to {gen_name(target)},"
                         " the latest earlier current generation whose adapter verifies")
        get_logger().warning("adapter.rolled_back", error=err.line, to=gen_name(target))
        return moved

