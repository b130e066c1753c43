"""The generation backend interface: small enough for transformers, vLLM and remote servers.

Backends know nothing of the store, tasks or reflection: strings in, strings out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from evolver.errors import EvolverError

# Tokens that end an assistant turn in the common chat templates (ChatML, Llama 3, Phi, Gemma, ...).
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "</s>", "<|endoftext|>")
TokenLogprobs = tuple[list[str], list[float | None], list[int]]  # tokens, log-probabilities, character offsets


class Unsupported(EvolverError):
    """A backend asked for something it cannot do (e.g. per-token log-probabilities over HTTP chat)."""


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 160
    stop: tuple[str, ...] = ()  # stop strings: generation ends there, the string is not returned

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter by generation: `name` is unique per generation (vLLM must never reuse one)."""

    name: str
    path: Path
    uid: int
    sha256: str | None = None


@dataclass(frozen=True)
class Output:
    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: str  # 'stop' | 'length'


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """The text before the first stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def stop_token_ids(tokenizer: Any, chat: bool, extra: set[int] | None = None) -> list[int]:
    """The ids that end generation: EOS, the model's generation EOS (`extra`), and end-of-turn tokens of chat models."""
    ids: set[int] = set(extra or ())
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    if chat:
        vocab = tokenizer.get_vocab()
        ids.update(vocab[t] for t in END_OF_TURN if t in vocab)
    return sorted(ids)


def template_chat(tokenizer: Any, chat: bool, messages: Sequence[dict[str, str]]) -> str:
    """A conversation through the model's chat template, ready for the assistant's turn."""
    if not chat:
        raise Unsupported("this model has no chat template; use /v1/completions")
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)


def check_seeds(prompts: Sequence[str], seeds: Sequence[int]) -> None:
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")


NO_TOKEN_LOGPROBS = "per-token log-probabilities are served with generation.backend = 'transformers'"


def wants_chat(tokenizer: object, style: str) -> bool:
    """'chat' always, 'plain' never, 'auto' when the tokenizer has a chat template."""
    return style == "chat" or (style == "auto" and bool(getattr(tokenizer, "chat_template", None)))


def render_user_turn(tokenizer: object, text: str, chat: bool) -> str:
    """The exact prompt for a user text: itself, or one user turn through the chat template."""
    if not chat:
        return text
    return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,  # type: ignore[attr-defined]
                                         add_generation_prompt=True)


class Backend(Protocol):
    name: str

    def generate(self, prompts: Sequence[str], sampling: Sampling, seeds: Sequence[int],
                 adapter: Adapter | None = None) -> list[Output]:
        """One output per prompt; item i is sampled from `seeds[i]` whatever the batching."""
        ...

    def logprob(self, prompts: Sequence[str], completions: Sequence[str], adapter: Adapter | None = None) -> list[float]:
        """Sum of log-probabilities of each completion given its prompt (for the self-judge)."""
        ...

    def render(self, text: str) -> str:
        """The exact string sent for a user text: itself for base models, the chat template for chat models."""
        ...

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> str:
        """A whole conversation through the chat template, ready for the assistant's turn (Unsupported without one)."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def token_logprobs(self, text: str, adapter: Adapter | None = None) -> TokenLogprobs:
        """Teacher-forced log-probability of each token of `text` (the first has none), with character offsets."""
        ...

    def close(self) -> None: ...
