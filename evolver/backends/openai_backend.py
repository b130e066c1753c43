"""The OpenAI-compatible backend: any server with `/v1/completions` or `/v1/chat/completions`.

One request per prompt, `concurrency` in flight, so each item carries its own `seed` (the API has one
seed per request) and a server that batches (vLLM, `evolver serve`) batches them again. The adapter is
chosen by the `model` field: a generation is requested by its served name (`gen-0007`), the base model
by its reference (vLLM's default served name; `evolver serve` accepts it too). vLLM servers started
with `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True` can be told to load each generation's adapter on first
use (`load_lora = true`).

`logprob` needs `echo` + `logprobs` on /v1/completions (vLLM and `evolver serve` have them; the
chat endpoint and most hosted APIs do not: it raises `ServerError` there).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from evolver.backends.base import (
    NO_TOKEN_LOGPROBS,
    Adapter,
    Output,
    Sampling,
    TokenLogprobs,
    Unsupported,
    check_seeds,
    stop_token_ids,
    template_chat,
)
from evolver.config.schema import ModelConfig, OpenAIBackendConfig
from evolver.errors import EvolverError

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class ServerError(EvolverError):
    """A request the server refused or that never got an answer; one line naming the URL."""


class OpenAIBackend:
    """Generation through an OpenAI-compatible HTTP server; prompts are sent exactly as rendered."""

    name = "openai"

    def __init__(self, base: str, cfg: OpenAIBackendConfig, model_cfg: ModelConfig | None = None, *,
                 backoff_s: float = 0.5, sleep: Callable[[float], None] = time.sleep,
                 transport: httpx.BaseTransport | None = None, jitter: Callable[[float], float] | None = None) -> None:
        self.base = base
        self.cfg = cfg
        self.model_cfg = model_cfg or ModelConfig()
        self.url = cfg.base_url.rstrip("/")
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._jitter = jitter or full_jitter
        key = os.environ.get(cfg.api_key_env, "") if cfg.api_key_env else ""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        limits = httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency)
        self._http = httpx.Client(headers=headers, timeout=httpx.Timeout(cfg.timeout_s, connect=min(cfg.timeout_s, 10.0)),
                                  limits=limits, transport=transport)
        self._pool = ThreadPoolExecutor(max_workers=cfg.concurrency, thread_name_prefix="evolver-openai")
        self._tokenizer: Any = None
        self._chat: bool | None = None
        self._loaded: dict[str, Adapter] = {}
        self._load_lock = threading.Lock()

    # -- interface ---------------------------------------------------------------------------
    def render(self, text: str) -> str:
        """Chat endpoint: the text itself (the server applies the template). Completions: the local
        tokenizer's chat template when the model is a chat model, as the transformers backend does."""
        if self.cfg.endpoint == "chat" or not self._is_chat():
            return text
        return self._tok().apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                               add_generation_prompt=True)

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> str:
        return template_chat(self._tok(), self._is_chat(), messages)

    def count_tokens(self, text: str) -> int:
        return len(self._tok()(text, add_special_tokens=not self._is_chat()).input_ids)

    def token_logprobs(self, text: str, adapter: Adapter | None = None) -> TokenLogprobs:
        raise Unsupported(NO_TOKEN_LOGPROBS)

    def generate(self, prompts: Sequence[str], sampling: Sampling, seeds: Sequence[int],
                 adapter: Adapter | None = None) -> list[Output]:
        check_seeds(prompts, seeds)
        model = self._model(adapter)
        common: dict[str, Any] = {"model": model, "max_tokens": sampling.max_new_tokens,
                                  "temperature": 0.0 if sampling.greedy else sampling.temperature,
                                  "top_p": 1.0 if sampling.greedy else sampling.top_p}
        if sampling.stop:
            common["stop"] = list(sampling.stop)
        stop_ids = self._stop_token_ids()
        if stop_ids:
            common["stop_token_ids"] = stop_ids
        if self.cfg.endpoint == "chat":
            path = "/chat/completions"
            bodies = [{**common, "messages": [{"role": "user", "content": p}], "seed": int(s)} for p, s in zip(prompts, seeds)]
        else:
            path = "/completions"
            bodies = [{**common, "prompt": p, "seed": int(s)} for p, s in zip(prompts, seeds)]
        return list(self._pool.map(lambda b: self._output(self._post(path, b)), bodies))

    def logprob(self, prompts: Sequence[str], completions: Sequence[str], adapter: Adapter | None = None) -> list[float]:
        if self.cfg.endpoint == "chat":
            raise ServerError(f"{self.url}: logprob needs /v1/completions with echo + logprobs;"
                              " generation.openai.endpoint = 'chat' has no prompt log-probabilities")
        model = self._model(adapter)

        def one(pair: tuple[str, str]) -> float:
            prompt, completion = pair
            body = {"model": model, "prompt": prompt + completion, "echo": True, "logprobs": 0, "max_tokens": 1,
                    "temperature": 0.0}
            lp = self._post("/completions", body)["choices"][0].get("logprobs") or {}
            offsets, values = lp.get("text_offset"), lp.get("token_logprobs")
            if offsets is None or values is None:
                raise ServerError(f"{self.url}/completions: no echoed prompt log-probabilities (unsupported by this server)")
            start, end = len(prompt), len(prompt) + len(completion)
            return float(sum(v for off, v in zip(offsets, values) if start <= off < end and v is not None))

        return list(self._pool.map(one, list(zip(prompts, completions))))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._http.close()

    # -- requests ----------------------------------------------------------------------------
    def _model(self, adapter: Adapter | None) -> str:
        if self.cfg.model:
            return self.cfg.model
        if adapter is None:
            return self.base
        if self.cfg.load_lora:
            self._load_adapter(adapter)
        return adapter.name

    def _load_adapter(self, adapter: Adapter) -> None:
        """vLLM's runtime LoRA loading; once per name. A name is never reloaded with other weights."""
        with self._load_lock:
            seen = self._loaded.get(adapter.name)
            if seen == adapter:
                return
            if seen is not None:
                raise ServerError(f"{adapter.name}: already loaded on {self.url} from {seen.path};"
                                  " a new adapter needs a new name")
            try:
                # vLLM answers in plain text ("Success: LoRA adapter 'gen-0001' added successfully.")
                self._post("/load_lora_adapter", {"lora_name": adapter.name, "lora_path": str(adapter.path)}, as_json=False)
            except ServerError as err:
                if "already" not in str(err).lower():  # vLLM answers 400 "... has already been loaded"
                    raise
            self._loaded[adapter.name] = adapter

    def _post(self, path: str, body: dict[str, Any], as_json: bool = True) -> dict[str, Any]:
        url = self.url + path
        for attempt in range(self.cfg.retries + 1):
            last = attempt == self.cfg.retries
            try:
                r = self._http.post(url, json=body)
            except httpx.TransportError as err:
                if last:
                    raise ServerError(f"cannot reach {self.url}: {_reason(err)}") from None
                self._sleep(self._delay(attempt, None))
                continue
            if r.status_code < 300:
                if not as_json:
                    return {}
                try:
                    return r.json()
                except ValueError:
                    raise ServerError(f"{url}: answer is not JSON ({r.text[:120]!r})") from None
            if r.status_code in RETRY_STATUS and not last:
                self._sleep(self._delay(attempt, r.headers.get("retry-after")))
                continue
            raise ServerError(f"{url}: {r.status_code} {_error_message(r)}")
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), 60.0)
            except ValueError:
                pass  # an HTTP date: fall back to our own backoff
        return self._jitter(min(self.backoff_s * 2**attempt, 30.0))


    def _output(self, data: dict[str, Any]) -> Output:
        choice = data["choices"][0]
        text = choice["message"]["content"] if "message" in choice else choice["text"]
        usage = data.get("usage") or {}
        reason = choice.get("finish_reason") or "stop"
        return Output(text=text or "", tokens_in=int(usage.get("prompt_tokens", 0)),
                      tokens_out=int(usage.get("completion_tokens", 0)), finish_reason="length" if reason == "length" else "stop")

    # -- local tokenizer (only for chat templates on /v1/completions) -------------------------
    def _is_chat(self) -> bool:
        if self._chat is None:
            style = self.model_cfg.prompt_style
            self._chat = style == "chat" or (style == "auto" and bool(getattr(self._tok(), "chat_template", None)))
        return self._chat

    def _tok(self) -> Any:
        if self._tokenizer is None:
            from evolver.models import load_tokenizer

            self._tokenizer = load_tokenizer(self.base, self.model_cfg.revision)
        return self._tokenizer

    def _stop_token_ids(self) -> list[int]:
        """End-of-turn ids for chat prompts we templated ourselves (vLLM's `stop_token_ids` extension)."""
        if self.cfg.endpoint == "chat" or self.model_cfg.prompt_style == "plain" or not self._is_chat():
            return []
        return stop_token_ids(self._tok(), chat=True)


def _reason(err: httpx.TransportError) -> str:
    if isinstance(err, httpx.ConnectError):
        text = str(err).lower()
        return "connection refused" if "refused" in text else f"connection failed ({err})"
    if isinstance(err, httpx.TimeoutException):
        return f"timed out ({type(err).__name__})"
    return f"{type(err).__name__}: {err}"


def _error_message(r: httpx.Response) -> str:
    try:
        data = r.json()
    except ValueError:
        return r.text[:200].strip() or r.reason_phrase
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict) and err.get("message"):
        return str(err["message"])
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return str(data)[:200]


def full_jitter(cap: float) -> float:
    """A delay drawn uniformly from [0, cap] ("full jitter"): requests that failed together retry apart
    instead of in lockstep. A server's Retry-After is honoured as given."""
    return random.uniform(0.0, cap)
