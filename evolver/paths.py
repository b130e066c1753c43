"""Where the shipped defaults live: inside the wheel (`evolver/_defaults`) or, in a checkout, the repo root."""

from __future__ import annotations

import os
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def defaults_dir() -> Path:
    packaged = _PKG / "_defaults"
    if (packaged / "evolver.toml").is_file():
        return packaged
    repo = _PKG.parent
    if (repo / "evolver.toml").is_file():
        return repo
    raise FileNotFoundError("evolver's default files (evolver.toml, policies/, evals/) are missing from this install")


def embedded_model_dir() -> Path:
    """Folder of the shipped generation-0 world model (config.json, safetensors, tokenizer).

    Named here rather than in `evolver.world` so that loading models never imports the world.
    """
    return _PKG / "world" / "assets" / "base"


CACHE_ENV = "EVOLVER_CACHE"


def cache_dir() -> Path:
    """Where downloaded packages live (the GGUF model, BIG-bench): $EVOLVER_CACHE, else ~/.cache/evolver."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/evolver").expanduser()


def expand_path(value: str) -> Path:
    """A path from a config or manifest: `~` and `$EVOLVER_CACHE` expanded (the latter defaults to ~/.cache/evolver)."""
    for token in ("${" + CACHE_ENV + "}", "$" + CACHE_ENV):
        if token in value:
            value = value.replace(token, str(cache_dir()))
    return Path(value).expanduser()
