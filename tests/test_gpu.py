"""On a CUDA device (marker `gpu`; `make test` leaves them out, scripts/gpu_bench.sh runs them).

Seeded sampling draws its noise on the device and stays batch-independent there; `dtype = "auto"`
keeps a small model in float32 on the GPU, so adapters merge exactly as on the CPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from evolver.artifacts import hash_adapter
from evolver.backends.base import Adapter, Sampling
from evolver.config.schema import ModelConfig

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
SAMPLED = Sampling(temperature=1.0, top_p=0.9, max_new_tokens=12)


@pytest.fixture(scope="module")
def cuda_backend(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from evolver.backends.transformers_backend import TransformersBackend
    from evolver.testing.backends import make_lora_adapter
    from evolver.testing.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("gpu")
    base = build_tiny_model(root / "tiny", arch="llama")
    path = make_lora_adapter(base, root / "gen-0001")
    backend = TransformersBackend(str(base), ModelConfig(device="cuda"), batch_size=3)
    yield backend, Adapter("gen-0001", Path(path), 1, hash_adapter(path))
    backend.close()


def test_sampling_noise_is_drawn_on_the_device_and_batch_independent(cuda_backend, monkeypatch) -> None:  # noqa: ANN001
    from evolver.backends import transformers_backend as tb

    backend, _ = cuda_backend
    devices: set[str] = set()
    draw = tb._SeededGumbel._draw

    def watching(self, like):  # noqa: ANN001, ANN202
        noise = draw(self, like)
        devices.update(g.device.type for g in self.gens)
        devices.add(noise.device.type)
        return noise

    monkeypatch.setattr(tb._SeededGumbel, "_draw", watching)
    prompts = ["1 + 1 =", "The quick brown fox", "def add(a, b):", "x", "0123456789"]
    seeds = [11, 12, 13, 14, 15]
    first = [o.text for o in backend.generate(prompts, SAMPLED, seeds)]
    assert devices == {"cuda"}
    assert [o.text for o in backend.generate(prompts[::-1], SAMPLED, seeds[::-1])] == first[::-1]
    assert [o.text for o in backend.generate(prompts[2:3], SAMPLED, seeds[2:3])] == first[2:3]


def test_small_model_stays_float32_and_merges(cuda_backend) -> None:  # noqa: ANN001
    backend, adapter = cuda_backend
    assert next(backend._base.parameters()).dtype == torch.float32
    model = backend._use(adapter)
    assert not hasattr(model, "peft_config")  # merged into a float32 copy, as on the CPU
