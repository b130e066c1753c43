"""A tiny GGUF file written from a tiny llama model, so GGUF loading is tested without a download.

The tensors are laid out as llama.cpp's converter writes them (its names, query and key rows
permuted for its rotary layout, 2-D weights quantized to Q8_0) and the tokenizer travels as
GGUF metadata (a byte-level BPE with merges and a chat template), so transformers' GGUF loader
runs its real dequantizing and tokenizer-building path on it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

_NAMES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
}


def _permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's row order for query/key weights (transformers undoes it on loading)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def build_tiny_gguf(out: Path, work: Path, quantize: bool = True) -> tuple[Path, Path]:
    """(GGUF file, the transformers folder it was written from): a chat llama of about 100 k parameters."""
    import gguf
    import torch

    from evolver.testing.tiny import build_tiny_model

    folder = build_tiny_model(work / "tiny-src", arch="llama", chat=True)
    cfg = json.loads((folder / "config.json").read_text())
    heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    from safetensors.torch import load_file

    state = {k: v.to(torch.float32).numpy() for k, v in load_file(str(folder / "model.safetensors")).items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(out), "llama")
    w.add_name("tiny-llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_dimension_count(cfg["hidden_size"] // heads)
    w.add_rope_freq_base(float(cfg.get("rope_theta") or 10000.0))
    w.add_vocab_size(cfg["vocab_size"])
    _tokenizer(w, folder, cfg)
    for name, tensor in state.items():
        _tensor(w, name, tensor, heads, kv_heads, quantize)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out, folder


def _tensor(w: Any, name: str, t: np.ndarray, heads: int, kv_heads: int, quantize: bool) -> None:
    import gguf

    if name == "model.embed_tokens.weight":
        gname = "token_embd.weight"
    elif name == "model.norm.weight":
        gname = "output_norm.weight"
    elif name == "lm_head.weight":
        gname = "output.weight"
    else:
        layer, rest = name.removeprefix("model.layers.").split(".", 1)
        part = rest.removesuffix(".weight")
        gname = f"blk.{layer}.{_NAMES[part]}.weight"
        if part == "self_attn.q_proj":
            t = _permute(t, heads)
        elif part == "self_attn.k_proj":
            t = _permute(t, kv_heads)
    if quantize and t.ndim == 2 and t.shape[-1] % 32 == 0:
        q = gguf.quants.quantize(np.ascontiguousarray(t), gguf.GGMLQuantizationType.Q8_0)
        w.add_tensor(gname, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    else:
        w.add_tensor(gname, np.ascontiguousarray(t, dtype=np.float32))


def _tokenizer(w: Any, folder: Path, cfg: dict[str, Any]) -> None:
    tok = json.loads((folder / "tokenizer.json").read_text())
    vocab: dict[str, int] = tok["model"]["vocab"]
    specials = {a["content"]: a["id"] for a in tok.get("added_tokens", [])}
    size = cfg["vocab_size"]
    tokens = [""] * size
    for text, i in {**vocab, **specials}.items():
        if i < size:
            tokens[i] = text
    types = [3 if t in specials else 1 for t in tokens]  # 3 = control, 1 = normal
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    template = json.loads((folder / "tokenizer_config.json").read_text()).get("chat_template")
    if template is None and (folder / "chat_template.jinja").is_file():
        template = (folder / "chat_template.jinja").read_text()
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    w.add_pad_token_id(cfg["pad_token_id"])
    if template:
        w.add_chat_template(template)
