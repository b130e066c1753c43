"""evolver: a daemon that evolves a small language model by learning from its own reflections."""

__version__ = "0.1.0"
