"""evolver.world."""
