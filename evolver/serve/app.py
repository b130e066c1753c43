"""`evolver serve`: an OpenAI-compatible HTTP face over the transformers backend.

Each request resolves its `model` against the store (see registry.py), so promotions, pins and
rollbacks apply from the next request on; the backend switches adapters on demand. All model work
runs on one worker thread (batcher.py); concurrent requests with the same adapter and sampling are
batched. Stop strings are cut after generation (the text is the same; the work is not saved).
An adapter whose files no longer match their recorded sha256 is refused (503, code
`adapter_refused`, recorded as an event), never served.

`"stream": true` answers as server-sent events in OpenAI's chunk format (`data: {...}` lines, then
`data: [DONE]`), so streaming clients work unchanged. The model still writes each answer whole (the
worker runs whole batches); its pieces are sent once it is done.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from evolver.artifacts import AdapterError
from evolver.backends.base import Adapter, Output, Sampling
from evolver.serve.batcher import Batcher
from evolver.serve.protocol import (
    ChatRequest,
    CompletionRequest,
    LoadLoraRequest,
    describe_validation,
    error_body,
)
from evolver.serve.registry import ModelNotFound, Registry, Served
from evolver.store import Store

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions
DEFAULT_CHAT_MAX_TOKENS = 512  # chat without a limit: bounded, so a small model cannot ramble to its context end


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def create_app(store: Store, backend: Any, base_ref: str, max_batch: int = 64) -> FastAPI:
    """The app; `backend` is a TransformersBackend (its tokenizer is used for chat templates and logprobs).
    The caller owns `store` and `backend`; the app's shutdown stops its worker thread."""
    registry = Registry(store, base_ref)
    batcher = Batcher(max_batch=max_batch)
    app = FastAPI(title="evolver", docs_url=None, redoc_url=None)
    app.state.registry = registry
    app.state.batcher = batcher
    app.router.on_shutdown.append(batcher.close)

    # -- errors in OpenAI's shape ------------------------------------------------------------
    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = describe_validation(list(exc.errors()))
        return JSONResponse(error_body(message, param=param), status_code=400)

    @app.exception_handler(BadRequest)
    async def _bad(_r: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse(error_body(str(exc), param=exc.param), status_code=400)

    @app.exception_handler(ModelNotFound)
    async def _not_found(_r: Request, exc: ModelNotFound) -> JSONResponse:
        return JSONResponse(error_body(str(exc), param="model", code="model_not_found"), status_code=404)

    @app.exception_handler(AdapterError)
    async def _refused(_r: Request, exc: AdapterError) -> JSONResponse:  # weights changed on disk: never served
        return JSONResponse(error_body(f"{exc.line}; not served", kind="server_error", param="model",
                                       code="adapter_refused"), status_code=503)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _internal(_r: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(error_body(f"{type(exc).__name__}: {exc}", kind="server_error"), status_code=500)

    # -- routes ------------------------------------------------------------------------------
    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": registry.models()}

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "current": registry.resolve("current").name}

    # Async handlers that await the worker's futures: no thread per waiting request (anyio's pool holds 40).
    @app.post("/v1/completions")
    async def completions(req: CompletionRequest) -> JSONResponse:
        served = registry.resolve(req.model)
        prompts = [req.prompt] if isinstance(req.prompt, str) else list(req.prompt)
        if not prompts or any(not p for p in prompts):
            raise BadRequest("prompt: expected non-empty text", "prompt")
        max_tokens = DEFAULT_MAX_TOKENS if req.max_tokens is None else req.max_tokens
        if max_tokens == 0 and not req.echo:
            raise BadRequest("max_tokens: 0 is allowed only with echo = true", "max_tokens")
        if req.stream and req.logprobs is not None:
            raise BadRequest("logprobs: not available with stream = true", "logprobs")
        seed = _seed(req.seed)
        outs = await _generate(batcher, backend, served, prompts, _sampling(req, max_tokens), seed, max_tokens)
        stops = req.stop_list()
        choices = []
        for i, (prompt, out) in enumerate(zip(prompts, outs)):
            text, reason = _cut(out, stops)
            shown = (prompt if req.echo else "") + text
            logprobs = None
            if req.logprobs is not None:
                logprobs = await _logprobs(batcher, backend, served.adapter, shown, 0 if req.echo else len(prompt),
                                     prompt if not req.echo else "")
            choices.append({"index": i, "text": shown, "logprobs": logprobs, "finish_reason": reason})
        if req.stream:
            return _stream("text_completion", "cmpl", served, choices, chat=False)
        return _reply("text_completion", "cmpl", served, choices, outs)

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest) -> JSONResponse:
        served = registry.resolve(req.model)
        if not backend.chat:
            raise BadRequest("this model has no chat template; use /v1/completions", "messages")
        prompt = backend.tokenizer.apply_chat_template([m.model_dump() for m in req.messages], tokenize=False,
                                                       add_generation_prompt=True)
        max_tokens = req.max_completion_tokens or req.max_tokens or DEFAULT_CHAT_MAX_TOKENS
        if max_tokens < 1:
            raise BadRequest("max_tokens: expected >= 1", "max_tokens")
        outs = await _generate(batcher, backend, served, [prompt], _sampling(req, max_tokens), _seed(req.seed),
                                   max_tokens)
        text, reason = _cut(outs[0], req.stop_list())
        choices = [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason}]
        if req.stream:
            return _stream("chat.completion.chunk", "chatcmpl", served, choices, chat=True)
        return _reply("chat.completion", "chatcmpl", served, choices, outs)

    @app.post("/v1/load_lora_adapter")
    def load_lora(req: LoadLoraRequest) -> JSONResponse:
        try:
            added = registry.load(req.lora_name, req.lora_path)
        except ValueError as err:
            raise BadRequest(str(err), "lora_name") from None
        note = "loaded" if added else "already been loaded"
        return JSONResponse({"status": "ok", "message": f"adapter {req.lora_name!r} has {note}"})

    return app


def _seed(seed: int | None) -> int:
    return seed if seed is not None else secrets.randbits(62)


def _sampling(req: Any, max_tokens: int) -> Sampling:
    return Sampling(temperature=req.temperature, top_p=req.top_p, max_new_tokens=max(max_tokens, 1))


async def _generate(batcher: Batcher, backend: Any, served: Served, prompts: Sequence[str], sampling: Sampling, seed: int,
              max_tokens: int) -> list[Output]:
    """Item i of a request uses seed + i, so a one-prompt request with seed s equals item 0 of a list."""
    if max_tokens == 0:  # echo only
        return [Output(text="", tokens_in=len(backend.tokenizer(p).input_ids), tokens_out=0, finish_reason="length")
                for p in prompts]
    key = ("generate", served.adapter, sampling)

    def run(items: Sequence[tuple[str, int]]) -> list[Output]:
        return backend.generate([p for p, _ in items], sampling, [s for _, s in items], adapter=served.adapter)

    futures = [asyncio.wrap_future(batcher.submit(key, (p, seed + i), run)) for i, p in enumerate(prompts)]
    return list(await asyncio.gather(*futures))


def _cut(out: Output, stops: list[str]) -> tuple[str, str]:
    """Text up to the first stop string (excluded, as OpenAI does) and the finish reason."""
    text, reason = out.text, out.finish_reason
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    if cuts:
        return text[:min(cuts)], "stop"
    return text, reason


async def _logprobs(batcher: Batcher, backend: Any, adapter: Adapter | None, shown: str, start: int,
              context: str) -> dict[str, Any]:
    """Per-token log-probabilities of `shown`, scored after `context` (the prompt when it is not echoed)."""
    full = context + shown
    fut = batcher.submit(("logprobs", adapter), full, lambda texts: [token_logprobs(backend, t, adapter) for t in texts])
    tokens, values, offsets = await asyncio.wrap_future(fut)
    keep = [i for i, o in enumerate(offsets) if o >= len(context)]
    return {"tokens": [tokens[i] for i in keep], "token_logprobs": [values[i] for i in keep],
            "top_logprobs": None, "text_offset": [offsets[i] - len(context) + start for i in keep]}


def token_logprobs(backend: Any, text: str, adapter: Adapter | None) -> tuple[list[str], list[float | None], list[int]]:
    """Teacher-forced log-probability of each token of `text` (the first has none), with character offsets.
    Uses the transformers backend's adapter switch (`_use`) so the weights are those `generate` uses."""
    import torch

    tok = backend.tokenizer
    enc = tok(text, add_special_tokens=not backend.chat, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    offsets = [int(s) for s, _ in enc["offset_mapping"]]
    model = backend._use(adapter)
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids], device=backend.device)).logits[0].float()
    lp = logits[:-1].log_softmax(-1).gather(-1, torch.tensor(ids[1:], device=backend.device).unsqueeze(-1)).squeeze(-1)
    values: list[float | None] = [None, *(float(v) for v in lp.tolist())]
    return [tok.decode([i]) for i in ids], values, offsets


def _reply(obj: str, prefix: str, served: Served, choices: list[dict[str, Any]], outs: list[Output]) -> JSONResponse:
    p = sum(o.tokens_in for o in outs)
    c = sum(o.tokens_out for o in outs)
    body = {"id": f"{prefix}-{secrets.token_hex(12)}", "object": obj, "created": int(time.time()), "model": served.name,
            "choices": choices, "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}}
    return JSONResponse(body, headers={"x-evolver-model": served.name})


def pieces(text: str) -> list[str]:
    """The text in the pieces a stream sends: words and single signs, each with the whitespace before it
    (joined, the text)."""
    import re

    return re.findall(r"\s*\w+|\s*[^\w\s]|\s+", text)


def _stream(obj: str, prefix: str, served: Served, choices: list[dict[str, Any]], chat: bool) -> StreamingResponse:
    """Finished choices as OpenAI's server-sent events: pieces of each, its finish reason, then [DONE]."""
    import json

    head = {"id": f"{prefix}-{secrets.token_hex(12)}", "object": obj, "created": int(time.time()), "model": served.name}

    def event(choice: dict[str, Any]) -> str:
        return f"data: {json.dumps({**head, 'choices': [choice]}, ensure_ascii=False)}\n\n"

    def body() -> Any:
        for c in choices:
            i = c["index"]
            if chat:
                yield event({"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None})
                for piece in pieces(c["message"]["content"]):
                    yield event({"index": i, "delta": {"content": piece}, "finish_reason": None})
                yield event({"index": i, "delta": {}, "finish_reason": c["finish_reason"]})
            else:
                for piece in pieces(c["text"]):
                    yield event({"index": i, "text": piece, "logprobs": None, "finish_reason": None})
                yield event({"index": i, "text": "", "logprobs": None, "finish_reason": c["finish_reason"]})
        yield "data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream", headers={"x-evolver-model": served.name})
