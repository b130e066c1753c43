"""The daemon: orders the phases of each generation, owns the lock, signals and the scheduler."""
