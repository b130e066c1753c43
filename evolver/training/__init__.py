"""evolver.training."""
