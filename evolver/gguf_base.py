"""GGUF base models: dequantized once into a transformers folder under the state dir, then used like any local model.

LoRA training, merging and the self-judge need the weights as torch tensors in a folder that
`from_pretrained` reads, so a `.gguf` base (`model.base` naming the file, or a folder plus
`model.gguf_file`) is dequantized the first time it is needed into
`STATE/models/<stem>-<sha256 of the file, 16 hex>/` (config, float32 safetensors, tokenizer with
its chat template) and from then on is that folder. The folder is written under a temporary name
and renamed when complete, and a marker records the GGUF's sha256 and every written file's sha256:
a later run reuses it only when the marker verifies (hashes are cached by size and modification
time, so this costs a few `stat`s), and rebuilds it otherwise. A GGUF-loaded model cannot always
be saved directly, so its state dict is copied into a model built from its config.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from evolver.errors import UsageError
from evolver.model_files import file_sha256, quiet_loading

MODELS_DIR = "models"
MARKER = "evolver-gguf.json"
MAGIC = b"GGUF"


class GGUFError(UsageError):
    """A GGUF file that is missing or cannot be read; one line naming the file (exit 2)."""


def gguf_path(base: Path, gguf_file: str | None) -> Path | None:
    """The GGUF file a model config names (`base` a .gguf file, or a folder plus `gguf_file`), or None."""
    if gguf_file:
        return base / gguf_file
    return base if base.suffix.lower() == ".gguf" else None


def check_header(path: Path) -> None:
    """Raise GGUFError unless `path` is a file that starts like a GGUF file."""
    if not path.is_file():
        raise GGUFError(f"{path}: GGUF file not found")
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as err:
        raise GGUFError(f"{path}: cannot read GGUF file ({err.strerror})") from None
    if magic != MAGIC:
        raise GGUFError(f"{path}: not a GGUF file (it does not start with 'GGUF')")


def check_gguf(path: Path) -> None:
    """Raise GGUFError unless `path` is a readable GGUF file (its header and metadata parse)."""
    check_header(path)
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
        arch = reader.get_field("general.architecture")
    except ImportError:
        raise GGUFError(f"{path}: reading GGUF files needs the 'gguf' package (pip install gguf)") from None
    except Exception as err:  # noqa: BLE001 - the reader raises many types on damaged files; one line names it
        raise GGUFError(f"{path}: corrupt GGUF file ({type(err).__name__}: {_first_line(err)})") from None
    if arch is None:
        raise GGUFError(f"{path}: corrupt GGUF file (no general.architecture)")


def dequantized_dir(gguf: Path, state_dir: Path, sha_cache: Path | None = None) -> Path:
    """The verified transformers folder for `gguf`, dequantizing it first when there is none."""

    check_header(gguf)
    sha = file_sha256(gguf, sha_cache)
    dest = state_dir / MODELS_DIR / f"{_stem(gguf)}-{sha[:16]}"
    if _verified(dest, sha, sha_cache):
        return dest
    check_gguf(gguf)
    tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _dequantize(gguf, tmp)
        files = {f.name: file_sha256(f, sha_cache) for f in sorted(tmp.iterdir()) if f.is_file()}
        (tmp / MARKER).write_text(json.dumps({"gguf": str(gguf), "gguf_sha256": sha, "files": files}, indent=1))
        if dest.exists():  # damaged or from an interrupted run: replaced whole
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _stem(gguf: Path) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in gguf.stem)[:64]


def _verified(dest: Path, sha: str, sha_cache: Path | None) -> bool:
    """Whether `dest` holds a finished dequantization of the GGUF with `sha`, every file as written."""

    marker = dest / MARKER
    if not marker.is_file():
        return False
    try:
        meta = json.loads(marker.read_text())
        files: dict[str, str] = meta["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if meta.get("gguf_sha256") != sha:
        return False
    return all((dest / name).is_file() and file_sha256(dest / name, sha_cache) == digest for name, digest in files.items())


def _dequantize(gguf: Path, out: Path) -> None:
    """Load the GGUF with transformers (dequantizing to float32), then save model and tokenizer as a plain folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer


    out.mkdir(parents=True)
    try:
        with quiet_loading():
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    except Exception as err:  # noqa: BLE001 - transformers/gguf raise many types; one line names the file
        raise GGUFError(f"{gguf}: cannot dequantize GGUF file ({type(err).__name__}: {_first_line(err)})") from None
    with quiet_loading():
        _plain_copy(loaded).save_pretrained(str(out), safe_serialization=True)
        tok.save_pretrained(str(out))


def _plain_copy(loaded: Any) -> Any:
    """A model built from `loaded`'s config holding its weights: saveable whatever GGUF loading left attached."""
    import torch
    from transformers import AutoModelForCausalLM

    config = loaded.config
    for attr in ("gguf_file", "quantization_config"):
        if hasattr(config, attr):
            delattr(config, attr)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True, assign=True)
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    model.generation_config = loaded.generation_config
    return model.eval()


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else ""
