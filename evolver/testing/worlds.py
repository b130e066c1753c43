"""A working folder for end-to-end daemon tests: a tiny model, the `hashy` suite (a verifier that needs no
competent model), the shipped policies and a validated evolver.toml.

Tests that run `evolver run` as a subprocess build their folder here and differ only in what they
override, so a crash test and a stop test run the same daemon on the same kind of world.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

# A generation in about a minute on one CPU thread: 16 questions, 2 reflections each, one epoch.
HASHY: dict[str, Any] = {
    "model": {"base": "model", "threads": 1},
    "generation": {"batch_size": 16, "trial": {"temperature": 1.0, "max_new_tokens": 10},
                   "reflection": {"max_new_tokens": 10}},
    "reflection": {"task": "hashy", "pool_size": 16, "k": 2},
    "training": {"sft": {"epochs": 1, "batch_size": 8, "min_samples": 2}, "dpo": {"batch_size": 4, "min_pairs": 2}},
    "evaluation": {"benchmarks": ["hashy"]},
    "daemon": {"retries": 0, "backoff_seconds": 0.1},
}


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`base` with `over`'s keys replaced, table by table."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def hashy_world(dest: Path, policies: Path, over: dict[str, Any] | None = None, limit: int = 16, levels: int = 1,
                **model: Any) -> Path:
    """Build the folder at `dest`: `model/` (build_tiny_model's keyword arguments), `evals/hashy` with `limit`
    held-out questions in `levels` levels, `policies/` and evolver.toml (HASHY with `over`)."""
    from evolver.config.load import to_toml
    from evolver.config.schema import EvolverConfig
    from evolver.testing.tiny import build_tiny_model

    build_tiny_model(dest / "model", **model)
    suite = dest / "evals" / "hashy"
    suite.mkdir(parents=True)
    (suite / "manifest.toml").write_text(
        f'name = "hashy"\ntask = "evolver.testing.tasks:HashTask"\nseed = 0\nlimit = {limit}\n'
        f'[options]\nlevels = {levels}\n')
    shutil.copytree(policies, dest / "policies")
    config = EvolverConfig.model_validate(merged(HASHY, over or {}))
    (dest / "evolver.toml").write_text(to_toml(config))
    return dest
