"""The generation backend of one process, loaded on first use and shared by every stage.

Stages ask the holder (it lives on their context), so no stage decides whether it owns a
backend: whoever made the holder closes it (the daemon when it stops, a CLI command when it
returns). The holder remembers the fingerprint of the base model it loaded: when the weights on
disk change (a local model folder replaced in place), the next `get()` loads them again, so a
long-running daemon never evaluates stale weights under a new model's name.

The daemon hands its stop flag to the holder (`interrupt`), which passes it to the backend it
builds, so a stop request cuts a long batch short instead of waiting for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial

from evolver.backends.base import Backend
from evolver.config import LoadedConfig

BackendFactory = Callable[[LoadedConfig], Backend]


def base_fingerprint(cfg: LoadedConfig) -> str:
    """The configured base model's identity (content hash of a local folder, hub id@revision otherwise)."""
    from evolver.model_files import fingerprint
    from evolver.models import resolve_base

    m = cfg.config.model
    return fingerprint(resolve_base(m, cfg.root, cfg.state_dir), m.revision, cfg.state_dir / "cache" / "fingerprints.json")


class BackendHolder:
    def __init__(self, cfg: LoadedConfig, factory: BackendFactory | None = None,
                 interrupt: threading.Event | None = None) -> None:
        self.cfg = cfg
        self._factory = factory
        self._interrupt = interrupt
        self._backend: Backend | None = None
        self._loaded_from: str | None = None

    def get(self) -> Backend:
        now = base_fingerprint(self.cfg)
        if self._backend is not None and now != self._loaded_from:
            self.close()  # the base model changed on disk since it was loaded
        if self._backend is None:
            if self._factory is None:
                from evolver.backends.factory import make_backend

                self._factory = partial(make_backend, interrupt=self._interrupt.is_set if self._interrupt else None)
            self._backend = self._factory(self.cfg)
            self._loaded_from = now
        return self._backend

    def release_memory(self) -> None:
        """Hand back what the process holds but no longer uses (evolver.backends.memory); the model stays loaded."""
        from evolver.backends.memory import release

        release()

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
            self._loaded_from = None

    def __enter__(self) -> BackendHolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
