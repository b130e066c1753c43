"""Build the configured backend; each implementation is imported only when selected."""

from __future__ import annotations

from collections.abc import Callable

from evolver.backends.base import Backend
from evolver.config import LoadedConfig
from evolver.models import ModelLoadError, resolve_base


def make_backend(cfg: LoadedConfig, interrupt: Callable[[], bool] | None = None) -> Backend:
    """The backend `generation.backend` names, on the configured base model.

    A model that cannot be loaded is reported against the key that names it (`model.base`).
    `interrupt` (the daemon's stop flag) lets the in-process transformers backend give up a long
    batch between two decoding steps; vLLM's engine and remote servers finish their batch.
    """
    c = cfg.config
    base = resolve_base(c.model, cfg.root, cfg.state_dir)
    try:
        if c.generation.backend == "transformers":
            from evolver.backends.transformers_backend import TransformersBackend

            return TransformersBackend(base, c.model, batch_size=c.generation.batch_size, interrupt=interrupt)
        if c.generation.backend == "vllm":
            from evolver.backends.vllm_backend import VLLMBackend

            return VLLMBackend(base, c.model, c.generation.vllm, seed=c.seed)
    except ModelLoadError as err:
        where = f"{cfg.path}: " if cfg.path else ""
        raise ModelLoadError(f"{where}model.base = {c.model.base!r}: {err}") from None
    from evolver.backends.openai_backend import OpenAIBackend

    return OpenAIBackend(base, c.generation.openai, c.model)
