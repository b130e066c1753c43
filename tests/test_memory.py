"""Memory a long-running daemon must not accumulate: model copies per adapter switch, freed heap, CUDA cache.

A tiny local model and two random LoRA adapters; the transformers backend switches between them as a
generation does (candidate, current, base) many times over.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import torch

from evolver.artifacts import hash_adapter
from evolver.backends.base import Adapter, Sampling
from evolver.backends.memory import release, rss_mb
from evolver.config.schema import ModelConfig


def live_models(cls: type) -> int:
    """Models of this class still reachable from anywhere, after a full collection."""
    gc.collect()
    return sum(type(o) is cls for o in gc.get_objects())


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Adapter]]:
    from evolver.testing.backends import make_lora_adapter
    from evolver.testing.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("mem")
    base = build_tiny_model(root / "tiny", arch="llama")
    out = []
    for i in (1, 2):
        path = make_lora_adapter(base, root / f"gen-{i:04d}", seed=i)
        out.append(Adapter(f"gen-{i:04d}", path, i, hash_adapter(path)))
    return base, out


def test_adapter_switches_keep_one_copy(adapters: tuple[Path, list[Adapter]], monkeypatch: pytest.MonkeyPatch) -> None:
    """However often generation switches adapters, the backend holds the base and at most one adapter
    model, and it lets the old one go before it loads the next (never three copies at once)."""
    from evolver.backends import transformers_backend as tb

    base, (a, b) = adapters
    backend = tb.TransformersBackend(str(base), ModelConfig(device="cpu"))
    cls = type(backend._base)
    at_load: list[int] = []
    load = tb.load_causal_lm

    def counting_load(*args: object, **kw: object) -> object:
        at_load.append(live_models(cls))
        return load(*args, **kw)

    monkeypatch.setattr(tb, "load_causal_lm", counting_load)
    sampling = Sampling(max_new_tokens=4)
    first = backend.generate(["1 + 1 ="], sampling, [0], adapter=a)
    for adapter in [b, None, a, b, a, None, b]:
        backend.generate(["1 + 1 ="], sampling, [0], adapter=adapter)
        assert live_models(cls) <= 2  # base + the active adapter's merged copy
    assert at_load and set(at_load) == {1}  # only the base is alive when the next copy loads
    backend.generate(["1 + 1 ="], sampling, [0], adapter=None)
    assert live_models(cls) == 1  # back on the base: the adapter's copy is gone
    assert backend.generate(["1 + 1 ="], sampling, [0], adapter=a) == first  # same answers after all that
    backend.close()


def test_release_hands_freed_heap_back() -> None:
    """A freed burst of 1 KB objects (glibc's heap, not Python's arenas) goes back to the kernel on release()."""
    release()
    start = rss_mb()
    burst = [bytes(1024) + i.to_bytes(8, "little") for i in range(300_000)]  # ~300 MB of heap chunks
    held = rss_mb()
    del burst[:-1]  # the last one stays: the heap's top is pinned, so only trimming can return the rest
    gc.collect()
    freed = rss_mb()
    release()
    after = rss_mb()
    assert start is not None and held is not None and freed is not None and after is not None
    assert held - start > 200  # the burst was resident ...
    assert freed - start > 0.5 * (held - start)  # ... freed, glibc kept most of it ...
    assert after - start < 0.25 * (held - start)  # ... and release() handed it back
    del burst


def test_release_is_harmless_without_cuda() -> None:
    x = torch.ones(1000)
    release()
    assert float(x.sum()) == 1000.0
