"""`evolver serve`: the OpenAI-compatible app over a tiny chat model and a store of three generations.

Most tests drive the app in-process (starlette's TestClient); one starts the real command on
127.0.0.1 with a free port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from evolver.backends.base import Sampling
from evolver.config.schema import ModelConfig
from evolver.testing.backends import TAUGHT, add_generation, build_stopping_model, make_lora_adapter


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import torch
    from fastapi.testclient import TestClient

    from evolver.backends.transformers_backend import TransformersBackend
    from evolver.reflection.common import adapter_for
    from evolver.serve.app import create_app
    from evolver.store import Store

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("serve")
    model = str(build_stopping_model(root / "model"))
    for gen, seed in ((1, 1), (2, 2)):
        make_lora_adapter(model, root / "adapters" / f"gen-{gen:04d}", seed=seed)
    store = Store.open(root / "state" / "evolver.db")
    add_generation(store, 0, None, model, status="base")
    add_generation(store, 1, 0, model, root / "adapters" / "gen-0001")
    add_generation(store, 2, 1, model, root / "adapters" / "gen-0002")
    add_generation(store, 3, 2, model, status="running")  # not trained yet: not servable
    for gen in (1, 2):
        store.put_eval_results(gen, "arith", "standard", "test", {"acc@t2": (0.5, 10)})
    store.set_pointer("current", 1)
    ref = TransformersBackend(model, ModelConfig(), batch_size=8)
    served = TransformersBackend(model, ModelConfig(), batch_size=8)
    app = create_app(store, served, model, max_batch=8)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield {"root": root, "model": model, "store": store, "ref": ref, "client": client,
               "adapters": {g: adapter_for(store, g) for g in (1, 2)}}
    served.close()
    ref.close()
    store.close()


def _complete(client: Any, **body: Any) -> dict[str, Any]:
    r = client.post("/v1/completions", json={"max_tokens": 16, "temperature": 0, **body})
    assert r.status_code == 200, r.text
    return r.json()


def _ref_text(world: dict[str, Any], prompt: str, gen: int | None, sampling: Sampling = Sampling(max_new_tokens=16),
              seed: int = 0) -> str:
    adapter = world["adapters"][gen] if gen else None
    return world["ref"].generate([prompt], sampling, [seed], adapter=adapter)[0].text


def test_models_lists_generations_with_their_parent(world: dict[str, Any]) -> None:
    data = world["client"].get("/v1/models").json()
    assert data["object"] == "list"
    rows = {m["id"]: m for m in data["data"]}
    assert list(rows) == ["current", "base", "gen-0000", "gen-0001", "gen-0002"]  # gen-0003 is still running
    assert rows["gen-0002"]["parent"] == "gen-0001" and rows["gen-0001"]["parent"] == "gen-0000"
    assert rows["gen-0000"]["parent"] == "base"
    assert rows["current"]["root"] == "gen-0001" and rows["gen-0001"]["current"] is True


def test_current_follows_promotion_pin_and_rollback_without_restart(world: dict[str, Any]) -> None:
    from evolver.policy import actions

    client, store = world["client"], world["store"]
    prompt = world["ref"].render("x")
    texts = {g: _ref_text(world, prompt, g) for g in (None, 1, 2)}
    assert len(set(texts.values())) == 3  # three different models

    def current() -> tuple[str, str]:
        body = _complete(client, prompt=prompt)  # no model: the current one
        return body["model"], body["choices"][0]["text"]

    assert current() == ("gen-0001", texts[1])
    store.set_pointer("current", 2)  # what a promotion does to the pointer
    assert current() == ("gen-0002", texts[2])
    actions.pin(store, 1, reason="test")
    assert current() == ("gen-0001", texts[1])
    actions.unpin(store, reason="test")
    assert current() == ("gen-0002", texts[2])
    actions.rollback(store, to=1, reason="test")
    assert current() == ("gen-0001", texts[1])
    # Any generation by name, and the base, whatever is current.
    assert _complete(client, prompt=prompt, model="gen-0002")["choices"][0]["text"] == texts[2]
    assert _complete(client, prompt=prompt, model="base")["choices"][0]["text"] == texts[None]
    assert _complete(client, prompt=prompt, model="gen-0000")["choices"][0]["text"] == texts[None]
    assert _complete(client, prompt=prompt, model=world["model"])["model"] == "base"  # vLLM's default name


def test_completion_shape_stop_strings_and_max_tokens(world: dict[str, Any]) -> None:
    client = world["client"]
    prompt = world["ref"].render(TAUGHT[0][0])
    body = _complete(client, prompt=prompt, model="base")
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    choice = body["choices"][0]
    assert choice["text"] == TAUGHT[0][1] and choice["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] < 16 and body["usage"]["prompt_tokens"] > 0
    cut = _complete(client, prompt=prompt, model="base", stop=["46", "zzz"])["choices"][0]
    assert cut == {"index": 0, "text": "Finish[", "logprobs": None, "finish_reason": "stop"}
    short = _complete(client, prompt=prompt, model="base", max_tokens=2)
    assert short["choices"][0]["finish_reason"] == "length" and short["usage"]["completion_tokens"] == 2
    echoed = _complete(client, prompt=prompt, model="base", echo=True, max_tokens=0, logprobs=0)["choices"][0]
    assert echoed["text"] == prompt and echoed["logprobs"]["token_logprobs"][0] is None
    assert echoed["logprobs"]["text_offset"][0] == 0 and len(echoed["logprobs"]["tokens"]) > 3


def test_seeded_sampling_and_prompt_lists(world: dict[str, Any]) -> None:
    client = world["client"]
    prompts = [world["ref"].render(t) for t in ("x", "0123", "Reflection:")]
    sampling = Sampling(temperature=1.0, top_p=0.9, max_new_tokens=10)
    body = {"temperature": 1.0, "top_p": 0.9, "max_tokens": 10, "model": "gen-0001"}
    one = _complete(client, prompt=prompts[0], seed=5, **body)["choices"][0]["text"]
    assert one == _complete(client, prompt=prompts[0], seed=5, **body)["choices"][0]["text"]
    assert one == _ref_text(world, prompts[0], 1, sampling, seed=5)
    many = _complete(client, prompt=prompts, seed=5, **body)["choices"]  # item i uses seed 5 + i
    assert [c["index"] for c in many] == [0, 1, 2]
    assert [c["text"] for c in many] == [_ref_text(world, p, 1, sampling, seed=5 + i) for i, p in enumerate(prompts)]


def test_concurrent_requests_are_batched_without_changing_answers(world: dict[str, Any]) -> None:
    client = world["client"]
    prompts = [world["ref"].render(t) for t in ("x", "0123", "Reflection:", "def f", "a", "b", "c", "d")]
    body = {"temperature": 1.0, "max_tokens": 8, "model": "gen-0002"}
    alone = [_complete(client, prompt=p, seed=i, **body)["choices"][0]["text"] for i, p in enumerate(prompts)]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda ip: _complete(client, prompt=ip[1], seed=ip[0], **body)["choices"][0]["text"],
                                 enumerate(prompts)))
    assert together == alone


def test_chat_completions_apply_the_chat_template(world: dict[str, Any]) -> None:
    client = world["client"]
    r = client.post("/v1/chat/completions", json={"model": "base", "temperature": 0, "max_tokens": 16,
                                                  "messages": [{"role": "user", "content": TAUGHT[1][0]}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": TAUGHT[1][1]}
    assert body["choices"][0]["finish_reason"] == "stop"


def test_streaming_through_the_openai_sdk(world: dict[str, Any]) -> None:
    """`"stream": true` on both endpoints, read by the official client from a server on 127.0.0.1: the pieces
    join into exactly the non-streamed answer, and the last chunk carries the finish reason."""
    import openai

    from evolver.serve.app import create_app
    from evolver.serve.run import serve_in_thread

    app = create_app(world["store"], world["ref"], world["model"], max_batch=4)
    prompt = world["ref"].render(TAUGHT[0][0])
    with serve_in_thread(app) as url:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        whole = client.completions.create(model="base", prompt=prompt, max_tokens=16, temperature=0)
        chunks = list(client.completions.create(model="base", prompt=prompt, max_tokens=16, temperature=0,
                                                stream=True))
        assert len(chunks) > 2 and all(c.model == "base" for c in chunks)
        assert "".join(c.choices[0].text for c in chunks) == whole.choices[0].text == TAUGHT[0][1]
        assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
        assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
        messages = [{"role": "user", "content": TAUGHT[1][0]}]
        stream = client.chat.completions.create(model="gen-0001", messages=messages, max_tokens=16, temperature=0,
                                                stream=True)
        parts = list(stream)
        assert parts[0].choices[0].delta.role == "assistant"
        assert parts[-1].choices[0].finish_reason in ("stop", "length")
        text = "".join(p.choices[0].delta.content or "" for p in parts)
        plain = client.chat.completions.create(model="gen-0001", messages=messages, max_tokens=16, temperature=0)
        assert text == plain.choices[0].message.content and text


@pytest.mark.parametrize(("path", "body", "status", "needle"), [
    ("/v1/completions", {"prompt": "x", "temperature": -1}, 400, "temperature"),
    ("/v1/completions", {"temperature": 0}, 400, "prompt: required"),
    ("/v1/completions", {"prompt": "x", "n": 2}, 400, "n:"),
    ("/v1/completions", {"prompt": "x", "stream": True, "logprobs": 0}, 400, "logprobs: not available with stream"),
    ("/v1/completions", {"prompt": "x", "max_tokens": 0}, 400, "max_tokens: 0 is allowed only with echo"),
    ("/v1/completions", {"prompt": "x", "model": "gen-0042"}, 404, "'gen-0042' not found"),
    ("/v1/completions", {"prompt": "x", "model": "gen-0003"}, 404, "no model yet (status 'running')"),
    ("/v1/completions", {"prompt": "x", "model": "gpt-9"}, 404, "GET /v1/models"),
    ("/v1/chat/completions", {"messages": []}, 400, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "robot", "content": "hi"}]}, 400, "role"),
    ("/v1/load_lora_adapter", {"lora_name": "gen-0009", "lora_path": "/nowhere"}, 404, "not found"),
    ("/v1/load_lora_adapter", {"lora_name": "mine", "lora_path": "/nowhere"}, 400, "no adapter_config.json"),
    # types are checked strictly: nothing is coerced
    ("/v1/completions", {"prompt": "x", "max_tokens": "10"}, 400, "max_tokens: Input should be a valid integer"),
    ("/v1/completions", {"prompt": "x", "max_tokens": 10.0}, 400, "max_tokens"),
    ("/v1/completions", {"prompt": "x", "temperature": "0"}, 400, "temperature: Input should be a valid number"),
    ("/v1/completions", {"prompt": "x", "echo": "true"}, 400, "echo: Input should be a valid boolean"),
    ("/v1/completions", {"prompt": "x", "seed": True}, 400, "seed"),
    ("/v1/completions", {"prompt": 7}, 400, "prompt"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": 5}]}, 400, "content"),
])
def test_bad_requests_get_openai_shaped_errors(world: dict[str, Any], path: str, body: dict, status: int,
                                               needle: str) -> None:
    r = world["client"].post(path, json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert needle in err["message"] and err["type"] == "invalid_request_error"


def test_a_tampered_adapter_is_refused_not_served_and_recorded_once(world: dict[str, Any]) -> None:
    import shutil

    from evolver.states import EventKind

    store, client = world["store"], world["client"]
    copy = world["root"] / "adapters" / "gen-0004"
    shutil.copytree(world["root"] / "adapters" / "gen-0002", copy)
    add_generation(store, 4, 2, world["model"], copy)
    assert client.post("/v1/completions", json={"prompt": "x", "max_tokens": 2, "model": "gen-0004"}).status_code == 200
    weights = copy / "adapter_model.safetensors"
    weights.write_bytes(os.urandom(weights.stat().st_size))  # rewritten in place, same size
    for _ in range(2):
        r = client.post("/v1/completions", json={"prompt": "x", "max_tokens": 2, "model": "gen-0004"})
        assert r.status_code == 503, r.text
        err = r.json()["error"]
        assert err["code"] == "adapter_refused" and err["message"].startswith("gen-0004: ")
        assert "adapter is corrupt (sha256 " in err["message"] and err["message"].endswith("; not served")
    store.set_pointer("current", 4)
    try:
        assert client.get("/health").status_code == 503  # 'current' names it: refused as well
    finally:
        store.set_pointer("current", 1)
    assert [e.kind for e in store.events(4)] == [EventKind.ADAPTER_REFUSED]  # once, however often it was asked
    assert client.get("/health").json()["current"] == "gen-0001"


def test_unknown_routes_and_bad_json_are_openai_shaped(world: dict[str, Any]) -> None:
    client = world["client"]
    r = client.get("/v1/nope")
    assert r.status_code == 404 and "message" in r.json()["error"]
    r = client.post("/v1/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]


def test_load_lora_adapter_registers_a_new_name_once(world: dict[str, Any]) -> None:
    client = world["client"]
    path = str(world["root"] / "adapters" / "gen-0002")
    r = client.post("/v1/load_lora_adapter", json={"lora_name": "extra", "lora_path": path})
    assert r.status_code == 200, r.text
    again = client.post("/v1/load_lora_adapter", json={"lora_name": "extra", "lora_path": path})
    assert again.status_code == 200 and "already" in again.json()["message"]
    other = client.post("/v1/load_lora_adapter", json={"lora_name": "extra",
                                                       "lora_path": str(world["root"] / "adapters" / "gen-0001")})
    assert other.status_code == 400 and "new name" in other.json()["error"]["message"]
    prompt = world["ref"].render("x")
    assert _complete(client, prompt=prompt, model="extra")["choices"][0]["text"] == _ref_text(world, prompt, 2)
    assert "extra" in [m["id"] for m in client.get("/v1/models").json()["data"]]


# -- the command itself ------------------------------------------------------------------------
def _config(world: dict[str, Any], where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    cfg = where / "evolver.toml"
    cfg.write_text(f'state_dir = "{world["root"] / "state"}"\n[model]\nbase = "{world["model"]}"\nthreads = 1\n')
    return cfg


def test_serve_command_answers_on_loopback_and_stops_on_sigterm(world: dict[str, Any], tmp_path: Path) -> None:
    cfg = _config(world, tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", "from evolver.cli.app import main; main()", "--config", str(cfg), "serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline() if proc.stdout else ""  # printed once the port is bound and the model loaded
        assert "serving on http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        url = line.split("serving on ")[1].split()[0]
        deadline = time.monotonic() + 30
        while True:  # bounded: uvicorn starts accepting a moment after the line
            try:
                models = httpx.get(f"{url}/models", timeout=5).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server never answered"
                time.sleep(0.1)
        assert "gen-0002" in [m["id"] for m in models["data"]]
        r = httpx.post(f"{url}/completions", json={"prompt": world["ref"].render(TAUGHT[2][0]), "model": "base",
                                                   "temperature": 0, "max_tokens": 16}, timeout=30)
        assert r.json()["choices"][0]["text"] == TAUGHT[2][1]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0


def test_serve_command_fails_in_one_line(world: dict[str, Any], tmp_path: Path, cli: Any) -> None:
    empty = tmp_path / "empty" / "evolver.toml"
    empty.parent.mkdir()
    empty.write_text("")
    r = cli("--config", empty, "serve")
    assert r.exit_code == 1 and "no state folder at" in r.stderr and "evolver init" in r.stderr
    cfg = _config(world, tmp_path / "cfg")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = cli("--config", cfg, "serve", "--port", port)
    assert r.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in r.stderr
    r = cli("--config", cfg, "serve", "--host", "localhost-ish")
    assert r.exit_code == 2 and "--host" in r.stderr


def test_batcher_runs_what_queued_together_as_one_batch_and_hands_errors_to_each_request() -> None:
    import threading

    from evolver.serve.batcher import Batcher

    b = Batcher(max_batch=4)
    gate, seen = threading.Event(), []

    def run(items: list[int]) -> list[int]:
        seen.append(list(items))
        gate.wait(10)
        return [i * 10 for i in items]

    first = b.submit("k", 0, run)  # occupies the worker until the gate opens
    while not seen:
        time.sleep(0.001)
    later = [b.submit("k", i, run) for i in range(1, 7)] + [b.submit("other", 7, run)]
    gate.set()
    assert first.result(10) == 0 and [f.result(10) for f in later] == [10, 20, 30, 40, 50, 60, 70]
    # Queued while the worker was busy: one batch per key, at most max_batch each.
    assert seen == [[0], [1, 2, 3, 4], [5, 6], [7]]

    def broken(items: list[int]) -> list[int]:
        raise RuntimeError("model fell over")

    futures = [b.submit("bad", i, broken) for i in range(3)]
    for f in futures:
        with pytest.raises(RuntimeError, match="model fell over"):
            f.result(10)
    b.close()
