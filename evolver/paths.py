"""Where the shipped defaults live: inside the wheel (`evolver/_defaults`) or, in a checkout, the repo root."""

from __future__ import annotations

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
