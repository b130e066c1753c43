"""Resolving and loading base models: hub id, local folder, or the embedded world's model.

Loading goes through `from_pretrained` for every model, so the embedded one tests the real path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evolver.config.schema import ModelConfig
from evolver.errors import EvolverError
from evolver.model_files import quiet_loading
from evolver.paths import embedded_model_dir, expand_path


class ModelLoadError(EvolverError):
    """A base model or adapter that cannot be loaded; one line naming the path or id."""


def resolve_base(model: ModelConfig, root: Path | None = None, state_dir: Path | None = None) -> str:
    """'embedded' -> the shipped world model folder; a relative existing folder -> absolute; else a hub id.

    A GGUF base (`base` naming a .gguf file, or a folder plus `gguf_file`) becomes its dequantized
    folder under `state_dir` (evolver.gguf_base), built on first use.
    """
    if model.base == "embedded":
        return str(embedded_model_dir())
    p = expand_path(model.base)
    if not p.is_absolute() and root is not None and ((root / p).exists() or is_gguf(model)):
        p = root / p
    if is_gguf(model):
        from evolver.gguf_base import GGUFError, dequantized_dir, gguf_path

        if state_dir is None:
            raise GGUFError(f"{model.base}: a GGUF base model needs a state dir to dequantize into")
        gguf = gguf_path(p.resolve(), model.gguf_file)
        assert gguf is not None
        return str(dequantized_dir(gguf, state_dir, state_dir / "cache" / "fingerprints.json"))
    if p.exists() or model.base.startswith((".", "/", "~", "$")):
        return str(p.resolve())
    return model.base


def is_gguf(model: ModelConfig) -> bool:
    """Whether the base model is a GGUF file (named directly, or by `model.gguf_file` in a folder)."""
    return bool(model.gguf_file) or model.base.lower().endswith(".gguf")


def pick_device(model: ModelConfig) -> str:
    import torch

    if model.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return model.device


# `dtype = "auto"` on CUDA: float32 below this many parameters, bfloat16 from it on. A small model's
# step is bound by kernel launches and memory traffic, not by the matrix units bf16 would speed up, so
# float32 costs it little; it keeps its numbers those of the CPU (the embedded world's 48.2 / 54.8, not
# bf16's 48.6 / 55.2) and lets the transformers backend merge adapters exactly, which bf16 cannot
# (a merged bf16 weight rounds W + BA: it serves unmerged, 1.4-1.6x slower per token). From a few
# hundred million parameters on, bf16 halves memory and runs on the tensor cores: that pays.
FP32_MAX_PARAMS = 300_000_000


def count_params(ref: str) -> int | None:
    """A local model folder's parameter count from its safetensors headers (no weights read); None
    when unknown (a hub id, or weights in another format)."""
    import math

    folder = Path(ref)
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if not files:
        return None
    n = 0
    for f in files:
        with f.open("rb") as fh:
            header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
        n += sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
    return n


def auto_dtype(device: str, n_params: int | None) -> str:
    """What `dtype = "auto"` means: float32 on CPU, and on CUDA below FP32_MAX_PARAMS (bf16 when unknown)."""
    if device != "cuda":
        return "float32"
    return "float32" if n_params is not None and n_params < FP32_MAX_PARAMS else "bfloat16"


def resolve_dtype(model: ModelConfig, device: str, ref: str | None = None) -> str:
    """The dtype the weights of `ref` are loaded in on `device` ("float32", "bfloat16", "float16")."""
    if model.dtype != "auto":
        return model.dtype
    return auto_dtype(device, count_params(ref) if ref else None)


def pick_dtype(model: ModelConfig, device: str, ref: str | None = None) -> Any:
    import torch

    return getattr(torch, resolve_dtype(model, device, ref))


def load_tokenizer(ref: str, revision: str | None = None) -> Any:
    from transformers import AutoTokenizer

    _check_folder(ref)
    _check_hub(ref, revision)
    try:
        with quiet_loading():
            tok = AutoTokenizer.from_pretrained(ref, revision=revision)
    except Exception as err:  # transformers raises many types; the user needs one line
        raise ModelLoadError(f"{ref}: cannot load tokenizer ({type(err).__name__}: {_first_line(err)})") from None
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(ref: str, model: ModelConfig, device: str | None = None) -> Any:
    from transformers import AutoModelForCausalLM

    _check_folder(ref)
    _check_hub(ref, model.revision)
    device = device or pick_device(model)
    try:
        with quiet_loading():
            lm = AutoModelForCausalLM.from_pretrained(ref, revision=model.revision, dtype=pick_dtype(model, device, ref))
    except Exception as err:
        raise ModelLoadError(f"{ref}: cannot load model ({type(err).__name__}: {_first_line(err)})") from None
    return lm.to(device).eval()


def _check_folder(ref: str) -> None:
    p = Path(ref)
    if ref.startswith(("/", ".", "~")) and not p.is_dir():
        raise ModelLoadError(f"{ref}: model folder not found")
    if p.is_dir() and not (p / "config.json").is_file():
        raise ModelLoadError(f"{ref}: not a model folder (no config.json)")


def _check_hub(ref: str, revision: str | None) -> None:
    """A hub id neither cached nor reachable fails here in one line: transformers would retry each file for
    half a minute, printing every retry, before failing with a message about something else."""
    if Path(ref).exists():
        return
    import huggingface_hub as hub
    from huggingface_hub import constants, errors

    if isinstance(hub.try_to_load_from_cache(ref, "config.json", revision=revision), str):
        return
    if constants.HF_HUB_OFFLINE:
        raise ModelLoadError(f"{ref}: not a local folder and not in the Hugging Face cache (HF_HUB_OFFLINE is set)")
    try:
        hub.HfApi().model_info(ref, revision=revision, timeout=10)
    except errors.GatedRepoError:
        raise ModelLoadError(f"{ref}: a gated model on the Hugging Face hub: accept its terms, then set HF_TOKEN") from None
    except errors.RevisionNotFoundError:
        raise ModelLoadError(f"{ref}: the Hugging Face hub has no revision {revision!r} of it") from None
    except errors.RepositoryNotFoundError:
        raise ModelLoadError(f"{ref}: no such model on the Hugging Face hub (a private one needs HF_TOKEN)") from None
    except Exception as err:  # DNS, refused, timeout, proxy: the hub cannot be asked
        raise ModelLoadError(f"{ref}: not a local folder, not in the Hugging Face cache, and the Hugging Face hub"
                             f" cannot be reached ({type(err).__name__}: {_first_line(err)})") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else ""
