"""Benchmarks: loaders, answer formats and scorers; model-written code runs in the sandbox here."""

from evolver.tasks.base import Item, Task, Verdict

__all__ = ["Item", "Task", "Verdict"]
