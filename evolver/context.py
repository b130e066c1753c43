"""What a stage receives: the config, the store, which generation, the backend holder and a stop flag.

Stages (`run(ctx) -> StageResult`) read their inputs from the store and write their outputs to
it; nothing else is shared. The cycle (evolver.daemon.cycle) makes one context per generation
and records the phase rows around each stage.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from evolver.backends.base import Backend
from evolver.backends.holder import BackendHolder
from evolver.config import LoadedConfig
from evolver.errors import Interrupted
from evolver.states import gen_name
from evolver.store import Store

class Progress(Protocol):
    """(label, done, total) plus counts worth a heartbeat line: `tokens` written so far, a training `loss`."""

    def __call__(self, label: str, done: int, total: int, **counts: Any) -> None: ...


def no_progress(label: str, done: int, total: int, **counts: Any) -> None:
    return None


class Stopped(Interrupted):
    """Raised at a safe point when a stop was requested; the phase stays resumable."""


@dataclass(frozen=True)
class StageResult:
    """What a stage did: `detail` is recorded on its phase row; `skipped` says why nothing was done."""

    detail: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None


@dataclass
class StageContext:
    cfg: LoadedConfig
    store: Store
    generation: int
    parent: int | None
    backends: BackendHolder
    stop: threading.Event = field(default_factory=threading.Event)
    progress: Progress = no_progress
    stage: str = ""
    safe_points: int = 0

    @property
    def state_dir(self) -> Path:
        return self.cfg.state_dir

    @property
    def model_ref(self) -> str:
        return gen_name(self.generation)

    def backend(self) -> Backend:
        return self.backends.get()

    def enter(self, stage: str) -> None:
        self.stage, self.safe_points = stage, 0

    def check_stop(self) -> None:
        """A safe point: stop here if asked (the phase stays resumable)."""
        self.safe_points += 1
        crash_for_test(self.stage, self.safe_points)
        if self.stop.is_set():
            raise Stopped(f"{gen_name(self.generation)}: stop requested")


CRASH_ENV = "EVOLVER_CRASH_AT"


def crash_for_test(stage: str, point: int) -> None:
    """Fault injection for crash tests: `EVOLVER_CRASH_AT=stage:n` SIGKILLs this process at the
    n-th safe point of that stage, exactly as a power cut or the OOM killer would."""
    spec = os.environ.get(CRASH_ENV)
    if not spec or not stage:
        return
    name, _, n = spec.partition(":")
    if name == stage and point >= int(n or 1):
        os.kill(os.getpid(), signal.SIGKILL)
