"""Helpers for tests and benches (tiny local models); importable by users' own tests too."""
