"""The OpenAI-compatible client: what it sends, how it retries, how it fails, and its chat endpoint and
run-time adapter loading against a real `evolver serve` app on 127.0.0.1.

Request shape and retry timing are checked with httpx's MockTransport (a fake server, not a fake
model); everything about answers runs against the real app over a tiny model.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from evolver.artifacts import hash_adapter
from evolver.backends.base import Adapter, Sampling
from evolver.backends.openai_backend import OpenAIBackend, ServerError
from evolver.config.schema import ModelConfig, OpenAIBackendConfig
from evolver.testing.backends import TAUGHT, add_generation, build_stopping_model, make_lora_adapter

PLAIN = ModelConfig(prompt_style="plain")  # no tokenizer needed for request-shape tests


def _mock(handler: Any, **cfg: Any) -> tuple[OpenAIBackend, list[float]]:
    sleeps: list[float] = []
    conf = OpenAIBackendConfig(**{"base_url": "http://127.0.0.1:9/v1", "concurrency": 2, **cfg})
    return OpenAIBackend("base-model", conf, PLAIN, sleep=sleeps.append, transport=httpx.MockTransport(handler),
                         jitter=lambda cap: cap), sleeps


def _answer(text: str = "ok", reason: str = "stop") -> httpx.Response:
    return httpx.Response(200, json={"choices": [{"index": 0, "text": text, "finish_reason": reason}],
                                     "usage": {"prompt_tokens": 3, "completion_tokens": 2}})


def test_one_request_per_prompt_with_its_own_seed_and_the_generation_as_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOLVER_TEST_KEY", "sk-123")
    seen: list[tuple[str, dict, str | None]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append((req.url.path, json.loads(req.content), req.headers.get("authorization")))
        return _answer(text=json.loads(req.content)["prompt"].upper())

    b, _ = _mock(handler, api_key_env="EVOLVER_TEST_KEY")
    adapter = Adapter("gen-0007", path=Path("/unused"), uid=7)
    outs = b.generate(["a", "b", "c"], Sampling(temperature=0.7, top_p=0.9, max_new_tokens=5), [11, 12, 13], adapter)
    assert [o.text for o in outs] == ["A", "B", "C"]  # in prompt order whatever the completion order
    assert outs[0].tokens_in == 3 and outs[0].tokens_out == 2 and outs[0].finish_reason == "stop"
    bodies = sorted((body for _, body, _ in seen), key=lambda body: body["seed"])
    assert [bd["seed"] for bd in bodies] == [11, 12, 13]
    assert bodies[0] == {"model": "gen-0007", "max_tokens": 5, "temperature": 0.7, "top_p": 0.9, "prompt": "a", "seed": 11}
    assert {p for p, _, _ in seen} == {"/v1/completions"}
    assert {auth for _, _, auth in seen} == {"Bearer sk-123"}
    b.generate(["a"], Sampling(), [1])  # no adapter: the base model's reference
    assert seen[-1][1]["model"] == "base-model" and seen[-1][1]["temperature"] == 0.0
    b.close()


def test_a_configured_model_name_wins_over_the_generation() -> None:
    seen: list[dict] = []
    b, _ = _mock(lambda req: (seen.append(json.loads(req.content)), _answer())[1], model="served-model")
    b.generate(["a"], Sampling(), [1], Adapter("gen-0001", path=Path("/x"), uid=1))
    assert seen[0]["model"] == "served-model"
    b.close()


def test_retries_429_and_5xx_with_exponential_backoff_then_succeeds() -> None:
    codes = iter([429, 503, 500])

    def handler(req: httpx.Request) -> httpx.Response:
        code = next(codes, 200)
        return _answer("done") if code == 200 else httpx.Response(code, json={"error": {"message": "busy"}})

    b, sleeps = _mock(handler, retries=4)
    assert b.generate(["a"], Sampling(), [1])[0].text == "done"
    assert sleeps == [0.5, 1.0, 2.0]
    b.close()


def test_backoff_is_fully_jittered_so_concurrent_retries_spread() -> None:
    """Without a fixed jitter each delay is drawn from [0, cap]: 40 requests failing at once do not retry together."""
    sleeps: list[float] = []
    conf = OpenAIBackendConfig(base_url="http://127.0.0.1:9/v1", retries=1, concurrency=4)
    calls: dict[int, int] = {}

    def handler(req: httpx.Request) -> httpx.Response:
        seed = json.loads(req.content)["seed"]
        calls[seed] = calls.get(seed, 0) + 1
        return _answer("ok") if calls[seed] > 1 else httpx.Response(503, json={"error": {"message": "busy"}})

    b = OpenAIBackend("base-model", conf, PLAIN, sleep=sleeps.append, transport=httpx.MockTransport(handler))
    assert [o.text for o in b.generate(["a"] * 40, Sampling(), list(range(40)))] == ["ok"] * 40
    b.close()
    assert len(sleeps) == 40 and all(0.0 <= s <= 0.5 for s in sleeps)
    assert len(set(sleeps)) > 30  # spread, not lockstep


def test_retry_after_is_honoured_and_retries_run_out_with_the_server_message() -> None:
    b, sleeps = _mock(lambda req: httpx.Response(503, headers={"retry-after": "3"},
                                                 json={"error": {"message": "overloaded"}}), retries=2)
    with pytest.raises(ServerError, match=r"^http://127.0.0.1:9/v1/completions: 503 overloaded$"):
        b.generate(["a"], Sampling(), [1])
    assert sleeps == [3.0, 3.0]
    b.close()


def test_client_errors_are_not_retried() -> None:
    calls: list[int] = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(400, json={"error": {"message": "temperature: too hot"}})

    b, sleeps = _mock(handler, retries=4)
    with pytest.raises(ServerError, match="400 temperature: too hot"):
        b.generate(["a"], Sampling(), [1])
    assert calls == [1] and sleeps == []
    b.close()


def test_unreachable_server_is_one_clear_line_after_retries() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps: list[float] = []
    b = OpenAIBackend("m", OpenAIBackendConfig(base_url=f"http://127.0.0.1:{port}/v1/", retries=2, timeout_s=5), PLAIN,
                      sleep=sleeps.append)
    with pytest.raises(ServerError) as err:
        b.generate(["a"], Sampling(), [1])
    assert str(err.value) == f"cannot reach http://127.0.0.1:{port}/v1: connection refused"
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0  # full jitter under the caps
    b.close()


def test_chat_endpoint_has_no_logprob() -> None:
    b, _ = _mock(lambda req: _answer(), endpoint="chat")
    with pytest.raises(ServerError, match="echo"):
        b.logprob(["a"], ["b"])
    b.close()


# -- against the real app ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import torch

    from evolver.backends.transformers_backend import TransformersBackend
    from evolver.serve.app import create_app
    from evolver.serve.run import serve_in_thread
    from evolver.store import Store

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("openai")
    model = str(build_stopping_model(root / "model"))
    make_lora_adapter(model, root / "adapters" / "gen-0001")
    make_lora_adapter(model, root / "adapters" / "side", seed=3)
    store = Store.open(root / "state" / "evolver.db")
    add_generation(store, 0, None, model, status="base")
    add_generation(store, 1, 0, model, root / "adapters" / "gen-0001")
    backend = TransformersBackend(model, ModelConfig(), batch_size=8)
    ref = TransformersBackend(model, ModelConfig(), batch_size=8)
    with serve_in_thread(create_app(store, backend, model)) as url:
        yield {"url": url, "model": model, "root": root, "ref": ref}
    backend.close()
    ref.close()
    store.close()


def _client(served: dict[str, Any], **cfg: Any) -> OpenAIBackend:
    return OpenAIBackend(served["model"], OpenAIBackendConfig(base_url=served["url"], retries=0, **cfg), ModelConfig())


def test_chat_endpoint_sends_messages_and_gets_the_templated_answer(served: dict[str, Any]) -> None:
    b = _client(served, endpoint="chat")
    assert b.render("Question: 12 + 34") == "Question: 12 + 34"  # the server applies the template
    outs = b.generate([q for q, _ in TAUGHT], Sampling(max_new_tokens=16), [0] * len(TAUGHT))
    assert [o.text for o in outs] == [a for _, a in TAUGHT]
    assert {o.finish_reason for o in outs} == {"stop"}
    b.close()


def test_unknown_generation_is_a_one_line_404(served: dict[str, Any]) -> None:
    b = _client(served)
    with pytest.raises(ServerError, match=r"/v1/completions: 404 model 'gen-0042' not found"):
        b.generate(["x"], Sampling(), [0], Adapter("gen-0042", served["root"], uid=42))
    b.close()


def test_adapters_load_at_run_time_once_under_a_name_that_is_never_reused(served: dict[str, Any]) -> None:
    b = _client(served, load_lora=True)
    side_dir = served["root"] / "adapters" / "side"
    side = Adapter("side-7", side_dir, uid=7, sha256=hash_adapter(side_dir))
    prompts = [b.render(t) for t in ("x", "0123", "Reflection:")]
    outs = b.generate(prompts, Sampling(max_new_tokens=10), [0, 0, 0], side)
    ref = served["ref"].generate(prompts, Sampling(max_new_tokens=10), [0, 0, 0], side)
    assert [o.text for o in outs] == [o.text for o in ref]
    assert [o.text for o in outs] != [o.text for o in served["ref"].generate(prompts, Sampling(max_new_tokens=10), [0] * 3)]
    other = Adapter("side-7", served["root"] / "adapters" / "gen-0001", uid=8)
    with pytest.raises(ServerError, match="side-7: already loaded"):
        b.generate(prompts, Sampling(), [0, 0, 0], other)
    gen_dir = served["root"] / "adapters" / "gen-0001"
    gen = Adapter("gen-0001", gen_dir, uid=1, sha256=hash_adapter(gen_dir))  # a generation the server knows
    assert b.generate(prompts[:1], Sampling(max_new_tokens=4), [0], gen)[0].text == \
        served["ref"].generate(prompts[:1], Sampling(max_new_tokens=4), [0], gen)[0].text
    b.close()
