"""evolver.reflection."""
