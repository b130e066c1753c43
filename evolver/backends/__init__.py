"""evolver.backends."""
