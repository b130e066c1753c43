"""Training's error types: one line for users, the long story kept for the phase row."""

from __future__ import annotations


class TrainingError(Exception):
    """A training phase that could not finish; the message names the generation and phase."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or message  # recorded as the phase error (e.g. with the child's stderr tail)


class AdapterError(TrainingError):
    """An adapter that is missing, incomplete or does not match its recorded sha256."""
