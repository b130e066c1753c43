"""What a phase receives: the config, the store, which generation, and a stop flag.

Phases (`run(ctx)`) read inputs from the store and write outputs to it; nothing else is shared.
"""

from __future__ import annotations

import os
import signal
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
    phase: str = ""
    safe_points: int = 0

    @property
    def state_dir(self) -> Path:
        return self.cfg.state_dir

    @property
    def model_ref(self) -> str:
        return f"gen-{self.generation:04d}"

    def check_stop(self) -> None:
        """A safe point: stop here if asked (the phase stays resumable)."""
        self.safe_points += 1
        crash_for_test(self.phase, self.safe_points)
        if self.stop.is_set():
            raise Stopped(f"gen-{self.generation:04d}: stop requested")


CRASH_ENV = "EVOLVER_CRASH_AT"


def crash_for_test(phase: str, point: int) -> None:
    """Fault injection for crash tests: `EVOLVER_CRASH_AT=phase:n` SIGKILLs this process at the
    n-th safe point of that phase, exactly as a power cut or the OOM killer would."""
    spec = os.environ.get(CRASH_ENV)
    if not spec or not phase:
        return
    name, _, n = spec.partition(":")
    if name == phase and point >= int(n or 1):
        os.kill(os.getpid(), signal.SIGKILL)
