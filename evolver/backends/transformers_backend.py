"""The transformers backend: batched `generate` with left padding, length-sorted batches and a KV cache.

Sampling is reproducible per item: each row draws its randomness from its own seeded generator
(Gumbel-max over temperature/top-p-warped logits), so what an item gets does not depend on which
batch it landed in or on where an interrupted run resumed.

A batch can take minutes (long answers, a big model on a CPU). `interrupt`, when given, is asked
before every layer of every forward (a prefill and a scoring batch included) and between decoding steps:
once it says yes, the call raises `Interrupted` and returns nothing, so a stop request is honoured
within one layer's work and no half-generated batch is ever handed back.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from typing import Any

import torch

from evolver.artifacts import AdapterError, verify_adapter
from evolver.backends.base import (
    Adapter,
    Output,
    Sampling,
    TokenLogprobs,
    check_seeds,
    cut_at_stop,
    render_user_turn,
    stop_token_ids,
    template_chat,
    wants_chat,
)
from evolver.config.schema import ModelConfig
from evolver.errors import Interrupted
from evolver.model_files import quiet_loading
from evolver.models import load_causal_lm, load_tokenizer, pick_device


class _SeededGumbel:
    """A logits processor turning greedy search into per-row seeded sampling.

    Each row has its own generator on the device the logits are on, so the noise is drawn where it is
    used (no per-step copy from the CPU) and a row's draws follow its seed alone, whatever the batch.
    On the CPU the draws are those of a CPU generator, as before; CUDA's generator gives other (equally
    seeded) draws, so a sample depends on the seed and the device, never on the batch.
    """

    def __init__(self, seeds: Sequence[int], sampling: Sampling) -> None:
        self.temperature = sampling.temperature
        self.top_p = sampling.top_p
        self.seeds = [int(s) % (2**63) for s in seeds]
        self.gens: list[torch.Generator] = []
        self.noise: torch.Tensor | None = None

    def _draw(self, like: torch.Tensor) -> torch.Tensor:
        if not self.gens:
            self.gens = [torch.Generator(device=like.device).manual_seed(s) for s in self.seeds]
            self.noise = torch.empty_like(like)
        assert self.noise is not None
        for row, g in enumerate(self.gens):
            torch.rand(like.shape[-1], generator=g, device=like.device, out=self.noise[row])
        return self.noise

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        logits = scores.float() / self.temperature
        if self.top_p < 1.0:
            sorted_logits, idx = torch.sort(logits, descending=True, dim=-1)
            probs = sorted_logits.softmax(-1)
            cum = probs.cumsum(-1)
            drop = cum - probs > self.top_p  # keep the smallest prefix whose mass reaches top_p
            sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
            logits = torch.full_like(logits, float("-inf")).scatter(-1, idx, sorted_logits)
        u = self._draw(logits)
        gumbel = -torch.log(-torch.log(u.clamp(1e-10, 1.0 - 1e-7)))
        return logits + gumbel


LOGPROB_BATCH_TOKENS = 8192  # padded tokens per scoring forward: bounds its logits' memory and a stop's wait


def token_batches(order: Sequence[int], lengths: Sequence[int], rows: int, tokens: int) -> list[list[int]]:
    """`order` (sorted by length) cut into batches of at most `rows` rows and `tokens` padded tokens (one row
    at least): a forward over long sequences costs what its padded size costs, and it cannot be interrupted."""
    out: list[list[int]] = []
    longest = 0  # the current batch's longest row, kept as it grows (one pass, whatever the sort's direction)
    for i in order:
        if out and len(out[-1]) < rows and (len(out[-1]) + 1) * max(longest, lengths[i]) <= tokens:
            out[-1].append(i)
            longest = max(longest, lengths[i])
        else:
            out.append([i])
            longest = lengths[i]
    return out


class _Interruptible:
    """A stopping criterion that aborts `generate` between two decoding steps when asked to."""

    def __init__(self, interrupt: Callable[[], bool]) -> None:
        self.interrupt = interrupt

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kw: Any) -> torch.BoolTensor:
        if self.interrupt():
            raise Interrupted("generation interrupted: a stop was requested")
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]


class TransformersBackend:
    """Generation with a local transformers model; one adapter is active at a time, merged when exact."""

    name = "transformers"

    def __init__(self, base_ref: str, model_cfg: ModelConfig, batch_size: int = 64,
                 interrupt: Callable[[], bool] | None = None) -> None:
        if model_cfg.threads:
            torch.set_num_threads(model_cfg.threads)
        self.base_ref = base_ref
        self.model_cfg = model_cfg
        self.batch_size = batch_size
        self.interrupt = interrupt
        self.device = pick_device(model_cfg)
        self.tokenizer = load_tokenizer(base_ref, model_cfg.revision)
        style = model_cfg.prompt_style
        self.chat = wants_chat(self.tokenizer, style)
        self._base = self._interruptible(load_causal_lm(base_ref, model_cfg, self.device))
        self._model: Any = self._base
        self._adapter: Adapter | None = None
        self.stop_ids = self._stop_ids()

    # -- interface ---------------------------------------------------------------------------
    def render(self, text: str) -> str:
        return render_user_turn(self.tokenizer, text, self.chat)

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> str:
        return template_chat(self.tokenizer, self.chat, messages)

    def count_tokens(self, text: str) -> int:
        return len(self._encode(text))

    def token_logprobs(self, text: str, adapter: Adapter | None = None) -> TokenLogprobs:
        enc = self.tokenizer(text, add_special_tokens=not self.chat, return_offsets_mapping=True)
        ids = list(enc["input_ids"])
        offsets = [int(s) for s, _ in enc["offset_mapping"]]
        model = self._use(adapter)
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([ids], device=self.device)).logits[0].float()
        target = torch.tensor(ids[1:], device=self.device).unsqueeze(-1)
        lp = logits[:-1].log_softmax(-1).gather(-1, target).squeeze(-1)
        values: list[float | None] = [None, *(float(v) for v in lp.tolist())]
        return [self.tokenizer.decode([i]) for i in ids], values, offsets

    def generate(self, prompts: Sequence[str], sampling: Sampling, seeds: Sequence[int],
                 adapter: Adapter | None = None) -> list[Output]:
        check_seeds(prompts, seeds)
        model = self._use(adapter)
        enc = [self._encode(p) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: len(enc[i]))
        out: list[Output | None] = [None] * len(prompts)
        for start in range(0, len(order), self.batch_size):
            self._check_interrupt()
            idx = order[start:start + self.batch_size]
            for i, o in zip(idx, self._generate_batch(model, [enc[i] for i in idx], [seeds[i] for i in idx], sampling)):
                out[i] = o
        return [o for o in out if o is not None]

    def logprob(self, prompts: Sequence[str], completions: Sequence[str], adapter: Adapter | None = None) -> list[float]:
        model = self._use(adapter)
        pairs = [(self._encode(p), self.tokenizer(c, add_special_tokens=False).input_ids) for p, c in zip(prompts, completions)]
        result: list[float] = [0.0] * len(pairs)
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        pad = self.tokenizer.pad_token_id
        for idx in token_batches(order, [len(p) + len(c) for p, c in pairs], self.batch_size, LOGPROB_BATCH_TOKENS):
            self._check_interrupt()
            seqs = [pairs[i][0] + pairs[i][1] for i in idx]
            width = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), pad, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for r, s in enumerate(seqs):
                ids[r, width - len(s):] = torch.tensor(s)
                mask[r, width - len(s):] = 1
            with torch.inference_mode():
                logits = model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits.float()
            logp = logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:].to(self.device).unsqueeze(-1)).squeeze(-1)
            for r, i in enumerate(idx):
                n_c = len(pairs[i][1])
                result[i] = float(logp[r, width - 1 - n_c:].sum()) if n_c else 0.0
        return result

    def close(self) -> None:
        self._model = self._base = None  # type: ignore[assignment]

    # -- internals ---------------------------------------------------------------------------
    def _check_interrupt(self) -> None:
        if self.interrupt is not None and self.interrupt():
            raise Interrupted("generation interrupted: a stop was requested")

    def _interruptible(self, model: Any) -> Any:
        """Ask `interrupt` before each of the model's layers: one forward over long sequences (a prefill, a
        scoring batch) can take longer than a stop may wait, its layers never do. The layers are the
        model's longest `ModuleList` (the decoder stack, whatever the architecture names it)."""
        if self.interrupt is None:
            return model
        stacks = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
        if stacks:
            for layer in max(stacks, key=len):
                layer.register_forward_pre_hook(lambda _module, _args: self._check_interrupt())
        return model

    def _encode(self, prompt: str) -> list[int]:
        return self.tokenizer(prompt, add_special_tokens=not self.chat).input_ids

    def _stop_ids(self) -> list[int]:
        gen_eos = getattr(self._base.generation_config, "eos_token_id", None)
        extra = {gen_eos} if isinstance(gen_eos, int) else {int(i) for i in gen_eos or ()}
        return stop_token_ids(self.tokenizer, self.chat, extra)

    def _use(self, adapter: Adapter | None) -> Any:
        """Activate an adapter: loaded once, merged into a fresh base copy when the dtype makes merging exact."""
        if adapter == self._adapter:
            return self._model
        if adapter is None:
            self._drop_adapter_model()
            return self._model
        from peft import PeftModel

        verify_adapter(adapter.path, adapter.sha256)  # the weights loaded are the ones recorded
        self._drop_adapter_model()  # one adapter copy at a time, never two side by side while loading
        fresh = self._interruptible(load_causal_lm(self.base_ref, self.model_cfg, self.device))
        exact = next(fresh.parameters()).dtype == torch.float32
        try:
            with quiet_loading():
                peft_model = PeftModel.from_pretrained(fresh, str(adapter.path))
        except Exception as err:  # peft/safetensors/torch raise many types; the caller needs one line
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise AdapterError(f"{adapter.name}: {adapter.path}: cannot load adapter onto {self.base_ref}"
                               f" ({type(err).__name__}: {first})") from None
        self._model = (peft_model.merge_and_unload() if exact else peft_model).eval()
        self._adapter = adapter
        return self._model

    def _drop_adapter_model(self) -> None:
        """Serve the base again and free the adapter's model copy now (its tensors, on the device too)."""
        if self._model is not self._base:
            self._model, self._adapter = self._base, None
            gc.collect()  # peft's modules hold reference cycles: without a collection the copy lingers
            if self.device == "cuda":
                torch.cuda.empty_cache()

    def _generate_batch(self, model: Any, seqs: list[list[int]], seeds: list[int], sampling: Sampling) -> list[Output]:
        pad = self.tokenizer.pad_token_id
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[r, width - len(s):] = 1
        kwargs: dict[str, Any] = dict(
            max_new_tokens=sampling.max_new_tokens, do_sample=False, num_beams=1, use_cache=True,
            pad_token_id=pad, eos_token_id=self.stop_ids, temperature=None, top_p=None, top_k=None,
        )
        if sampling.stop:
            kwargs["stop_strings"] = list(sampling.stop)
            kwargs["tokenizer"] = self.tokenizer
        if self.interrupt is not None:
            from transformers import StoppingCriteriaList

            kwargs["stopping_criteria"] = StoppingCriteriaList([_Interruptible(self.interrupt)])
        if not sampling.greedy:
            from transformers import LogitsProcessorList

            kwargs["logits_processor"] = LogitsProcessorList([_SeededGumbel(seeds, sampling)])
        with torch.inference_mode():
            gen = model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), **kwargs)
        new = gen[:, width:].cpu()
        outs: list[Output] = []
        stop = set(self.stop_ids)
        for r in range(len(seqs)):
            toks = new[r].tolist()
            n, reason = len(toks), "length"
            for j, t in enumerate(toks):
                if t in stop:
                    n, reason = j + 1, "stop"
                    break
            keep = [t for t in toks[:n] if t not in stop and t != pad]
            text = self.tokenizer.decode(keep, skip_special_tokens=True)
            if sampling.stop:
                text, hit = cut_at_stop(text, sampling.stop)
                if hit:
                    reason = "stop"
                    n = len(self.tokenizer(text, add_special_tokens=False).input_ids)
            outs.append(Output(text=text, tokens_in=len(seqs[r]), tokens_out=n, finish_reason=reason))
        return outs
