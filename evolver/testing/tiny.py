"""Tiny random-weight causal LMs built locally in about a second, for fast tests.

Real code paths (`from_pretrained` on a folder) run on them; no hub is needed.
"""

from __future__ import annotations

from pathlib import Path

_SAMPLE_TEXT = (
    "Question: 12 + 34 Solution: 2 + 4 = 6 ; 1 + 3 = 4 ; Finish[46]\n"
    "Reflection: The failed solution made a calculation error in step 2. Verify each step.\n"
    "def add(a, b):\n    return a + b\nassert add(1, 2) == 3\n"
    "The quick brown fox jumps over the lazy dog. Options: A. B. C. D. Finish<<<\\frac{1}{2}>>>\n"
    "[BEGIN] [END] incorrect correct Thought Action Observation 0123456789 ()[]{}<>+-*/=,.:;!?'\"\n"
)

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tokenizer(out_dir: str | Path, chat: bool = False, vocab_size: int = 512):
    """Byte-level BPE trained on a few KB: any text round-trips, so tests can feed real prompts."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<eos>", "<bos>"] + (["<|end|>", "<|user|>", "<|assistant|>", "<|system|>"] if chat else [])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([_SAMPLE_TEXT] * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>")
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    fast.save_pretrained(str(out_dir))
    return fast


def build_tiny_model(out_dir: str | Path, arch: str = "llama", chat: bool = False, hidden: int = 64,
                     layers: int = 2, seed: int = 0) -> Path:
    """Save a random tiny model + tokenizer of the given architecture class under `out_dir`."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(out, chat=chat)
    common = dict(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                  pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
                  tie_word_embeddings=True)
    cfg = {"llama": LlamaConfig, "qwen2": Qwen2Config, "mistral": MistralConfig}[arch](**common)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    model.save_pretrained(str(out))
    return out
