"""The embedded world: a verifiable task family and the small base model evolver builds itself."""

from __future__ import annotations

from evolver.paths import embedded_model_dir as base_model_path

__all__ = ["base_model_path"]
