"""evolver.evaluation."""
