"""Apply decisions to the store: move the `current` / `pinned` pointers and append an event, atomically.

Promotion moves a pointer; history is append-only. Each action checks the store's state and
writes its pointer change, its event (with reason, metrics and deltas) and the generation
status in one BEGIN IMMEDIATE transaction, so no reader ever sees a pointer without the
event that explains it. The checks read after the write lock is taken, so two writers
cannot both pass them.

Pins: `pinned` overrides `current` (Store.current_generation() returns the pin when set).
A pin is a human decision, so the policy never moves what is served while one exists:
`promote()` under a pin records the policy's verdict as a "rejected" event whose reason
starts "pinned to gen-N", leaves `current` where it was and marks the candidate rejected
(a person can still `evolver promote` it later). `rollback()` refuses while pinned.
Manual promotion moves `current` even under a pin (the person asked for it); the pin
stays what is served until `unpin()`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from evolver.errors import EvolverError
from evolver.policy.decide import BenchmarkScores, Decision, Scores
from evolver.states import EvalProtocol, EventKind, GenStatus, PointerName, gen_name
from evolver.store import Store
from evolver.store.schema import Generation

# Every status a generation that passed evaluation can have, plus the base model. "rejected" is
# here on purpose: overruling the policy is what `evolver promote N` is for; so is "rolled_back"
# (rollback --to an older one). Failed, running and unevaluated generations never become current.
CAN_BE_CURRENT = (GenStatus.BASE, GenStatus.EVALUATED, GenStatus.PROMOTED, GenStatus.REJECTED, GenStatus.ROLLED_BACK)
MOVES_CURRENT = (EventKind.PROMOTED, EventKind.MANUAL_PROMOTE, EventKind.ROLLED_BACK)
# Events quote the protocol in which the served model answers trial 1 itself: what serving sees.
STANDARD = EvalProtocol.STANDARD


class PolicyActionError(EvolverError):
    """An action the store's state forbids; the message names the generation (exit 1 at the CLI)."""



def is_pinned(store: Store) -> bool:
    return store.pointer(PointerName.PINNED) is not None


def eval_metrics(store: Store, gen_id: int, protocol: str = STANDARD) -> dict[str, dict[str, float]]:
    """benchmark -> metric -> value from eval_results of one protocol (the latest row wins on a re-evaluation)."""
    out: dict[str, dict[str, float]] = {}
    for r in store.eval_results(gen_id):
        if r.protocol == protocol:
            out.setdefault(r.benchmark, {})[r.metric] = r.value
    return out


def scores_from_store(store: Store, gen_id: int, outcomes: Mapping[str, Mapping[Hashable, bool]] | None = None,
                      protocol: str = STANDARD) -> Scores:
    """A generation's side of a decision: its status and stored metrics, plus per-question outcomes
    of the primary metric (benchmark -> question key -> correct) supplied by the evaluation phase."""
    g = store.generation(gen_id)
    if g is None:
        raise PolicyActionError(f"{gen_name(gen_id)} does not exist")
    outcomes = outcomes or {}
    return Scores(gen_id, g.status, {b: BenchmarkScores(m, dict(outcomes.get(b, {})))
                                     for b, m in eval_metrics(store, gen_id, protocol).items()})


def check_can_be_current(store: Store, gen_id: int) -> Generation:
    """The generation row, if it may be served; otherwise a one-line refusal naming why."""
    g = store.generation(gen_id)
    name = gen_name(gen_id)
    if g is None:
        raise PolicyActionError(f"{name} does not exist")
    if g.status == GenStatus.FAILED:
        raise PolicyActionError(f"{name} failed; a failed generation can never become current")
    if g.status not in CAN_BE_CURRENT:
        raise PolicyActionError(f"{name} is {g.status!r}, not evaluated; only evaluated generations"
                                " (or the base) can become current")
    if g.status != GenStatus.BASE and not store.eval_results(gen_id):
        raise PolicyActionError(f"{name} has no evaluation results; it cannot become current")
    return g


def _deltas(new: dict[str, dict[str, float]], old: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {b: {m: 100 * (v - old[b][m]) for m, v in ms.items() if m in old[b]} for b, ms in new.items() if b in old}


def _adapter(g: Generation) -> dict[str, Any]:
    return {"path": g.adapter_path, "sha256": g.adapter_sha256}


def _set_status(store: Store, g: Generation, status: str, conn: Any) -> None:
    if g.status != GenStatus.BASE and g.status != status:  # the base stays recognisable as the base
        store.update_generation(g.id, conn=conn, status=status)


def adopt_base(store: Store, gen_id: int = 0) -> bool:
    """Make generation 0 (the base model) current when nothing is yet; False if something already is."""
    with store.tx() as conn:
        if store.pointer(PointerName.CURRENT) is not None:
            return False
        g = check_can_be_current(store, gen_id)
        store.set_pointer(PointerName.CURRENT, gen_id, conn=conn)
        store.record_event(EventKind.PROMOTED, gen_id, "policy", f"{gen_name(gen_id)} (the base model) is current from the start",
                           {"metrics": eval_metrics(store, gen_id), "current": {"from": None, "to": gen_id},
                            "adapter": _adapter(g)}, conn=conn)
    return True


def _check_decision(gen_id: int, decision: Decision, kind: str) -> None:
    if decision.candidate != gen_id or decision.kind != kind:
        raise PolicyActionError(f"{gen_name(gen_id)}: {kind}() needs a {kind!r} decision about this generation,"
                                f" got {decision.kind!r} about {gen_name(decision.candidate)}")


def promote(store: Store, gen_id: int, decision: Decision, actor: str = "policy") -> bool:
    """Apply a "promote" decision; True if `current` moved, False if a pin held it (recorded as rejected)."""
    _check_decision(gen_id, decision, "promote")
    with store.tx() as conn:
        g = check_can_be_current(store, gen_id)
        cur, pinned = store.pointer(PointerName.CURRENT), store.pointer(PointerName.PINNED)
        if cur == gen_id:
            raise PolicyActionError(f"{gen_name(gen_id)} is already current")
        payload = {**decision.to_json(), "adapter": _adapter(g), "pinned": pinned}
        if pinned is not None:
            payload["current"] = {"from": cur, "to": cur}
            store.record_event(EventKind.REJECTED, gen_id, actor, f"pinned to {gen_name(pinned)}, current stays"
                               f" {gen_name(cur)}; the policy would promote: {decision.reason}", payload, conn=conn)
            _set_status(store, g, GenStatus.REJECTED, conn)
            return False
        payload["current"] = {"from": cur, "to": gen_id}
        store.set_pointer(PointerName.CURRENT, gen_id, conn=conn)
        store.record_event(EventKind.PROMOTED, gen_id, actor, decision.reason, payload, conn=conn)
        _set_status(store, g, GenStatus.PROMOTED, conn)
    return True


def reject(store: Store, gen_id: int, decision: Decision, actor: str = "policy") -> None:
    """Record a "reject" decision; an evaluated candidate becomes "rejected" (a failed one stays failed)."""
    _check_decision(gen_id, decision, "reject")
    with store.tx() as conn:
        g = store.generation(gen_id)
        if g is None:
            raise PolicyActionError(f"{gen_name(gen_id)} does not exist")
        store.record_event(EventKind.REJECTED, gen_id, actor, decision.reason,
                           {**decision.to_json(), "current": {"from": store.pointer(PointerName.CURRENT),
                                                              "to": store.pointer(PointerName.CURRENT)}}, conn=conn)
        if g.status == GenStatus.EVALUATED:
            store.update_generation(gen_id, conn=conn, status=GenStatus.REJECTED)


def apply(store: Store, gen_id: int, decision: Decision, actor: str = "policy") -> bool:
    """promote() or reject() as the decision says; True if `current` moved."""
    if decision.promote:
        return promote(store, gen_id, decision, actor)
    reject(store, gen_id, decision, actor)
    return False


def current_history(store: Store) -> list[int]:
    """Every generation `current` has pointed to, oldest first, from the append-only events."""
    out: list[int] = []
    for e in reversed(store.events()):
        if e.kind not in MOVES_CURRENT or not e.metrics:
            continue
        move = json.loads(e.metrics).get("current") or {}
        if move.get("to") is not None and move.get("to") != move.get("from"):
            out.append(int(move["to"]))
    return out


def previous_current(store: Store, usable: Callable[[Generation], bool] = lambda g: True) -> int | None:
    """The latest earlier current generation that may still be served (rolled-away ones skipped), and
    passes `usable` (the daemon asks for one whose adapter verifies)."""
    cur = store.pointer(PointerName.CURRENT)
    for gen_id in reversed(current_history(store)):
        g = store.generation(gen_id)
        if (gen_id != cur and g is not None and g.status in CAN_BE_CURRENT and g.status != GenStatus.ROLLED_BACK
                and usable(g)):
            return gen_id
    return None


def rollback(store: Store, to: int | None = None, reason: str = "rolled back by hand", actor: str = "user") -> tuple[int, int]:
    """Point `current` back at the previous current generation (or at `to`); returns (from, to).

    The target's generation row is untouched, so what is served again is exactly the adapter
    (path and sha256) it was promoted with. The generation rolled away from becomes "rolled_back".
    """
    with store.tx() as conn:
        pinned, cur = store.pointer(PointerName.PINNED), store.pointer(PointerName.CURRENT)
        if pinned is not None:
            raise PolicyActionError(f"{gen_name(pinned)} is pinned; unpin before rolling back")
        if cur is None:
            raise PolicyActionError("nothing is current; there is nothing to roll back")
        target = previous_current(store) if to is None else to
        if target is None:
            raise PolicyActionError(f"{gen_name(cur)} has no earlier current generation to roll back to")
        if target == cur:
            raise PolicyActionError(f"{gen_name(target)} is already current")
        t = check_can_be_current(store, target)
        old = store.generation(cur)
        assert old is not None  # foreign key
        store.set_pointer(PointerName.CURRENT, target, conn=conn)
        store.record_event(EventKind.ROLLED_BACK, cur, actor, reason, {
            "current": {"from": cur, "to": target}, "adapter": _adapter(t), "rolled_away_adapter": _adapter(old),
            "metrics": eval_metrics(store, target), "from_metrics": eval_metrics(store, cur),
        }, conn=conn)
        _set_status(store, old, GenStatus.ROLLED_BACK, conn)
        _set_status(store, t, GenStatus.PROMOTED, conn)
    return cur, target


def manual_promote(store: Store, gen_id: int, reason: str, actor: str = "user") -> int | None:
    """A recorded human override: make `gen_id` current whatever the policy said; returns the pin, if any
    (it stays what is served)."""
    with store.tx() as conn:
        g = check_can_be_current(store, gen_id)
        cur, pinned = store.pointer(PointerName.CURRENT), store.pointer(PointerName.PINNED)
        if cur == gen_id:
            raise PolicyActionError(f"{gen_name(gen_id)} is already current")
        new = eval_metrics(store, gen_id)
        old = eval_metrics(store, cur) if cur is not None else {}
        store.set_pointer(PointerName.CURRENT, gen_id, conn=conn)
        store.record_event(EventKind.MANUAL_PROMOTE, gen_id, actor, reason, {
            "candidate": gen_id, "incumbent": cur, "metrics": new, "incumbent_metrics": old,
            "deltas": _deltas(new, old), "current": {"from": cur, "to": gen_id}, "adapter": _adapter(g),
            "pinned": pinned}, conn=conn)
        _set_status(store, g, GenStatus.PROMOTED, conn)
    return pinned


def pin(store: Store, gen_id: int, reason: str | None = None, actor: str = "user") -> bool:
    """Serve `gen_id` whatever the policy decides until unpin(); False if it was already pinned."""
    with store.tx() as conn:
        g = check_can_be_current(store, gen_id)
        prev = store.pointer(PointerName.PINNED)
        if prev == gen_id:
            return False
        store.set_pointer(PointerName.PINNED, gen_id, conn=conn)
        store.record_event(EventKind.PINNED, gen_id, actor, reason or f"{gen_name(gen_id)} pinned by hand", {
            "pinned": {"from": prev, "to": gen_id}, "current": store.pointer(PointerName.CURRENT), "adapter": _adapter(g),
            "metrics": eval_metrics(store, gen_id)}, conn=conn)
    return True


def unpin(store: Store, reason: str | None = None, actor: str = "user") -> int | None:
    """Drop the pin so the promoted `current` is served again; returns the generation that was pinned."""
    with store.tx() as conn:
        prev, cur = store.pointer(PointerName.PINNED), store.pointer(PointerName.CURRENT)
        if prev is None:
            return None
        store.set_pointer(PointerName.PINNED, None, conn=conn)
        store.record_event(EventKind.UNPINNED, prev, actor, reason or f"{gen_name(prev)} unpinned; {gen_name(cur)} is served",
                           {"pinned": {"from": prev, "to": None}, "current": cur}, conn=conn)
    return prev


def promotion_scores(store: Store, gen_id: int) -> dict[str, dict[str, float]] | None:
    """The metrics a generation had when it last became current (what re-evaluation is compared with)."""
    for e in store.events():  # newest first
        if e.kind not in MOVES_CURRENT or not e.metrics:
            continue
        m = json.loads(e.metrics)
        if (m.get("current") or {}).get("to") == gen_id and (m.get("current") or {}).get("from") != gen_id:
            return m.get("metrics") or None
    return None
