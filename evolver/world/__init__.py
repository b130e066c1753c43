"""The embedded world: a verifiable task family and the small base model evolver builds itself."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"


def base_model_path() -> Path:
    """Folder of the shipped generation-0 model (config.json, safetensors, tokenizer)."""
    return ASSETS / "base"
