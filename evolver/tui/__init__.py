"""evolver.tui."""
