"""Shared fixtures. Every test runs in its own temporary cwd, so nothing a test does lands in the checkout.

Fixtures: `repo_root`, `state_dir`, `store`, `runner` / `cli` (the typer app in-process), and the
session-wide `tiny_model_dir` (a random llama-shaped model built locally in about a second).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Two shared cores: torch must not spread each test over every core. No hub, ever.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh cwd per test, no inherited config, and no logging handlers left pointing at closed streams."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("EVOLVER_CONFIG", raising=False)
    yield
    root = logging.getLogger("evolver")
    for handler in root.handlers:
        handler.close()
    root.handlers.clear()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    d.mkdir()
    return d


@pytest.fixture
def world_config(tmp_path: Path) -> Callable[[str], object]:
    """A config in tmp_path over the repository's suites (evals/ linked), state in tmp_path/state: pass the
    TOML after `state_dir`, get the loaded config."""
    from evolver.config import load_config

    def make(toml: str = "") -> object:
        (tmp_path / "evals").symlink_to(REPO_ROOT / "evals")
        (tmp_path / "evolver.toml").write_text('state_dir = "state"\n' + toml)
        return load_config(tmp_path / "evolver.toml")

    return make


@pytest.fixture
def store(state_dir: Path):  # noqa: ANN201
    from evolver.store import Store

    s = Store.open(state_dir / "evolver.db")
    yield s
    s.close()


@pytest.fixture
def runner():  # noqa: ANN201
    from typer.testing import CliRunner

    return CliRunner()


@pytest.fixture
def cli(runner) -> Callable[..., object]:  # noqa: ANN001
    """`cli("status", "--json")` runs the app in-process and returns click's Result (stdout/stderr apart)."""
    from evolver.cli.app import app

    def invoke(*args: str, input: str | None = None):  # noqa: ANN202, A002
        return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random llama + byte-level BPE tokenizer, shared by the session (read-only by convention)."""
    import torch

    from evolver.testing.tiny import build_tiny_model

    torch.set_num_threads(1)
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "llama")
