"""Build the configured backend; each implementation is imported only when selected."""

from __future__ import annotations

from evolver.backends.base import Backend
from evolver.config import LoadedConfig
from evolver.models import resolve_base


def make_backend(cfg: LoadedConfig) -> Backend:
    c = cfg.config
    base = resolve_base(c.model, cfg.root)
    if c.generation.backend == "transformers":
        from evolver.backends.transformers_backend import TransformersBackend

        return TransformersBackend(base, c.model, batch_size=c.generation.batch_size)
    if c.generation.backend == "vllm":
        from evolver.backends.vllm_backend import VLLMBackend

        return VLLMBackend(base, c.model, c.generation.vllm, seed=c.seed)
    from evolver.backends.openai_backend import OpenAIBackend

    return OpenAIBackend(base, c.generation.openai, c.model)
