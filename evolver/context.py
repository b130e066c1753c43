"""What a phase receives: the config, the store, which generation, and a stop flag.

Phases (`run(ctx)`) read inputs from the store and write outputs to it; nothing else is shared.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from evolver.config import LoadedConfig
from evolver.store import Store

Progress = Callable[[str, int, int], None]  # (label, done, total)


def _no_progress(label: str, done: int, total: int) -> None:
    return None


class Stopped(Exception):
    """Raised at a safe point when a stop was requested; the phase stays resumable."""


@dataclass
class PhaseContext:
    cfg: LoadedConfig
    store: Store
    generation: int
    parent: int | None
    stop: threading.Event = field(default_factory=threading.Event)
    progress: Progress = _no_progress

    @property
    def state_dir(self) -> Path:
        return self.cfg.state_dir

    @property
    def model_ref(self) -> str:
        return f"gen-{self.generation:04d}"

    def check_stop(self) -> None:
        if self.stop.is_set():
            raise Stopped(f"gen-{self.generation:04d}: stop requested")
