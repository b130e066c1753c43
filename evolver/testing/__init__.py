"""Helpers for tests and benches (tiny local models, fake backends and tasks, synthetic lineages);
importable by users' own tests too."""
