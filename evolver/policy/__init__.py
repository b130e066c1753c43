"""evolver.policy."""
