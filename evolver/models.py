"""Resolving and loading base models: hub id, local folder, or the embedded world's model.

Loading goes through `from_pretrained` for every model, so the embedded one tests the real path.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from evolver.config.schema import ModelConfig
from evolver.errors import EvolverError
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


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Loading a model, and only that, without the libraries' deprecation notes and progress bars.

    Warnings stay on everywhere else (they are the early alarm of a library upgrade); a
    from_pretrained call repeats the same notes once per generation and would bury the daemon's log.
    """
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            yield
        finally:
            hf_logging.set_verbosity(level)
            hf_logging.enable_progress_bar()


def load_tokenizer(ref: str, revision: str | None = None) -> Any:
    from transformers import AutoTokenizer

    _check_folder(ref)
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


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else ""


def fingerprint(ref: str, revision: str | None = None, cache: Path | None = None) -> str:
    """What identifies a base model's weights: a content hash of a local folder's files, or hub id@revision.

    Evaluations are keyed by it, so a folder replaced in place (a user updating a local model) is
    a different model. Hashing gigabytes is slow, so hashes are cached in `cache` (a JSON file)
    by each file's size and modification time.
    """
    folder = Path(ref)
    if not folder.is_dir():
        return f"hub:{ref}@{revision or 'main'}"
    known = _read_cache(cache)
    h = hashlib.sha256()
    before = len(known)
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        h.update(f"{f.relative_to(folder).as_posix()}\0{_sha(f, known)}\0".encode())
    if len(known) != before:
        _write_cache(cache, known)
    return h.hexdigest()


def file_sha256(path: Path, cache: Path | None = None) -> str:
    """sha256 of one file, cached in `cache` by size and modification time like `fingerprint`."""
    known = _read_cache(cache)
    before = len(known)
    digest = _sha(path, known)
    if len(known) != before:
        _write_cache(cache, known)
    return digest


def _sha(f: Path, known: dict[str, Any]) -> str:
    st = f.stat()
    key = f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    digest = known.get(key)
    if digest is None:
        fh = hashlib.sha256()
        with f.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 22), b""):
                fh.update(chunk)
        digest = known[key] = fh.hexdigest()
    return str(digest)


def _read_cache(cache: Path | None) -> dict[str, Any]:
    if cache is None or not cache.is_file():
        return {}
    try:
        known = json.loads(cache.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return known if isinstance(known, dict) else {}


def _write_cache(cache: Path | None, known: dict[str, Any]) -> None:
    if cache is None:
        return
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(known))
    tmp.replace(cache)
