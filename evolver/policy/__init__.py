"""Promotion policy: rules from policies/*.toml, paired statistics, pure decisions, and the
actions that move the `current` / `pinned` pointers with an append-only event."""

from evolver.policy.actions import (
    CAN_BE_CURRENT,
    PolicyActionError,
    adopt_base,
    apply,
    check_can_be_current,
    is_pinned,
    manual_promote,
    pin,
    previous_current,
    promote,
    promotion_scores,
    reject,
    rollback,
    scores_from_store,
    unpin,
)
from evolver.policy.decide import BenchmarkScores, Decision, PolicyInputError, Scores, decide, should_rollback
from evolver.policy.rules import Policy, PolicyFileError, load_policy, parse_policy

__all__ = [
    "CAN_BE_CURRENT", "BenchmarkScores", "Decision", "Policy", "PolicyActionError", "PolicyFileError",
    "PolicyInputError", "Scores", "adopt_base", "apply", "check_can_be_current", "decide", "is_pinned",
    "load_policy", "manual_promote", "parse_policy", "pin", "previous_current", "promote", "promotion_scores",
    "reject", "rollback", "scores_from_store", "should_rollback", "unpin",
]
