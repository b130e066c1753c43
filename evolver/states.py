"""The names of states, defined once: generation statuses, stages, phase statuses, event kinds;
and how generations and evaluation units are named.

They are `StrEnum`s, so they are stored in SQLite and JSON as the plain words below and compare
equal to them; code never spells a state as a string literal of its own.

Generation lifecycle::

    base (generation 0, current from the start)
    running -> evaluated -> promoted | rejected      (the decide stage)
    running -> failed                                 (a stage failed beyond its retries)
    promoted -> rolled_back                           (rollback moved `current` away from it)

A phase (one stage of one generation) is running, then done, skipped (nothing to do, recorded
why) or failed (retried by the cycle; a failed phase fails its generation after the retries).
"""

from __future__ import annotations

from enum import StrEnum


class GenStatus(StrEnum):
    BASE = "base"
    RUNNING = "running"
    EVALUATED = "evaluated"
    PROMOTED = "promoted"
    REJECTED = "rejected"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


class Stage(StrEnum):
    """The stages of a generation, in the order data flows through them."""

    GENERATE = "generate"
    HARVEST = "harvest"
    SFT = "sft"
    DPO = "dpo"
    EVALUATE = "evaluate"
    DECIDE = "decide"


STAGES: tuple[Stage, ...] = tuple(Stage)
TRAINING_STAGES: tuple[Stage, ...] = (Stage.SFT, Stage.DPO)


class PhaseStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


FINISHED = (PhaseStatus.DONE, PhaseStatus.SKIPPED)


class EventKind(StrEnum):
    """Entries of the append-only event table."""

    PROMOTED = "promoted"
    REJECTED = "rejected"
    ROLLED_BACK = "rolled_back"
    PINNED = "pinned"
    UNPINNED = "unpinned"
    MANUAL_PROMOTE = "manual_promote"
    FAILED = "failed"
    NOTE = "note"
    ADAPTER_REFUSED = "adapter_refused"  # an adapter whose files no longer match their recorded sha256


DECISIONS = (EventKind.PROMOTED, EventKind.REJECTED, EventKind.FAILED, EventKind.MANUAL_PROMOTE)
NOTICES = (EventKind.NOTE, EventKind.ADAPTER_REFUSED)  # events that record, and decide nothing


class EvalProtocol(StrEnum):
    """'standard': the generation answers trial 1 itself; 'paper': trial 1 fixed at generation 0's answers."""

    STANDARD = "standard"
    PAPER = "paper"


class PointerName(StrEnum):
    CURRENT = "current"  # what the policy promoted
    PINNED = "pinned"  # a person's override; served while set


BASE_GENERATION = 0
POOL_PURPOSE = "pool"  # attempts and reflections of the generate stage (training data)


def gen_name(gen_id: int | None) -> str:
    """'gen-0007' (or 'none'): how generations are named everywhere, folders included."""
    return "none" if gen_id is None else f"gen-{gen_id:04d}"


def unit_name(suite: str, level: str | None) -> str:
    """'arith/b9' (or 'arith' for the suite's own unit): the units evaluation reports and the policy tests."""
    return suite if level is None else f"{suite}/{level}"


def split_unit(unit: str) -> tuple[str, str | None]:
    """A unit's suite and level (None for the suite's own unit): the inverse of `unit_name`."""
    suite, _, level = unit.partition("/")
    return suite, level or None
