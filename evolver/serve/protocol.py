"""The slice of the OpenAI API that `evolver serve` speaks: request bodies and the error shape.

Unknown fields are ignored (clients send vLLM extensions such as `stop_token_ids`); known fields are
checked strictly, types included (`"max_tokens": "10"` or `"echo": "true"` is not coerced), and a bad
one is a 400 whose message names it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class _Sampled(_Body):
    model: str | None = Field(None, description="'current' (default), 'base', or a generation: 'gen-0007'.")
    max_tokens: int | None = Field(None, ge=0, le=32768)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=0, lt=2**63)
    stop: str | list[str] | None = None
    n: int = Field(1, ge=1, le=1)
    stream: bool = False  # server-sent events: the answer in pieces, then `data: [DONE]`

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop)
        return [s for s in stops if s]


class CompletionRequest(_Sampled):
    prompt: str | list[str]
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=5)


class ChatMessage(_Body):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(_Sampled):
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, le=32768)
    logprobs: Literal[False] | None = None


class LoadLoraRequest(_Body):
    lora_name: str = Field(..., min_length=1, max_length=200)
    lora_path: str = Field(..., min_length=1)


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape, so OpenAI clients print the message."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def describe_validation(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    """The first pydantic error as one line naming the field: ("temperature: ...", "temperature")."""
    if not errors:
        return "invalid request body", None
    e = errors[0]
    loc = [str(p) for p in e.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    msg = e.get("msg", "invalid value")
    if e.get("type") == "missing":
        return f"{param}: required", param
    if e.get("type") == "json_invalid":
        return "request body is not valid JSON", None
    return (f"{param}: {msg}" if param else msg), param
