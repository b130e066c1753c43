"""Training's error type: one line for users, the long story (stderr tail) kept for the phase row."""

from __future__ import annotations

from evolver.artifacts import AdapterError
from evolver.errors import EvolverError

__all__ = ["AdapterError", "TrainingError"]


class TrainingError(EvolverError):
    """A training stage that could not finish; the message names the generation and stage."""
