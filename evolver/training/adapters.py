"""LoRA adapters as content-hashed artifacts: atomic writes, one hash, one refusal.

An adapter is a folder (`adapter_config.json`, `adapter_model.safetensors`, `evolver_adapter.json`).
Its sha256 covers every file (sorted relative names + sizes + bytes), so a flipped byte,
a truncated file or a swapped config all change it. Nothing loads an adapter without
checking that hash first: a corrupt adapter becomes one `AdapterError`, and the caller
can fail the generation while the incumbent keeps serving.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REQUIRED_FILES = ("adapter_config.json", "adapter_model.safetensors")
META_FILE = "evolver_adapter.json"

__all__ = ["AdapterError", "adapter_dir", "atomic_dir", "hash_adapter", "load_adapter", "read_meta", "save_adapter",
           "tensors_sha256", "verify_adapter"]

from evolver.training.errors import AdapterError


def adapter_dir(state_dir: Path, generation: int, phase: str) -> Path:
    """`state/adapters/gen-NNNN/{sft,dpo}`: one folder per generation and phase."""
    return Path(state_dir) / "adapters" / f"gen-{generation:04d}" / phase


def hash_adapter(path: str | Path) -> str:
    """sha256 over the folder's files: sorted relative names, sizes and bytes."""
    root = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for f in files:
        rel = f.relative_to(root).as_posix()
        h.update(rel.encode() + b"\0" + str(f.stat().st_size).encode() + b"\0")
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def tensors_sha256(state: Mapping[str, Any]) -> str:
    """sha256 of a state dict (sorted keys, dtype, shape, bytes): compares weights across save/load."""
    import torch

    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}\0".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def verify_adapter(path: str | Path | None, sha256: str | None) -> Path:
    """Return the folder if it is complete and hashes to `sha256`; else raise one AdapterError."""
    if path is None:
        raise AdapterError("adapter path is not recorded")
    p = Path(path)
    if not p.is_dir():
        raise AdapterError(f"{p}: adapter not found")
    missing = [name for name in REQUIRED_FILES if not (p / name).is_file()]
    if missing:
        raise AdapterError(f"{p}: adapter is incomplete (missing {', '.join(missing)})")
    if not sha256:
        raise AdapterError(f"{p}: no sha256 recorded for this adapter")
    got = hash_adapter(p)
    if got != sha256:
        raise AdapterError(f"{p}: adapter is corrupt (sha256 {got[:12]}…, recorded {sha256[:12]}…)")
    return p


def load_adapter(base_model: Any, path: str | Path | None, sha256: str | None, trainable: bool = False,
                 adapter_name: str = "default") -> Any:
    """Verify, then wrap `base_model` as a PeftModel holding this adapter."""
    from peft import PeftModel

    p = verify_adapter(path, sha256)
    try:
        return PeftModel.from_pretrained(base_model, str(p), adapter_name=adapter_name, is_trainable=trainable)
    except Exception as err:  # peft/safetensors raise many types; the caller needs one line
        raise AdapterError(f"{p}: cannot load adapter ({type(err).__name__}: {_first_line(err)})") from None


def read_meta(path: str | Path) -> dict[str, Any]:
    f = Path(path) / META_FILE
    return json.loads(f.read_text()) if f.is_file() else {}


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield an empty temp folder beside `final`; on success it replaces `final` by rename.

    Readers see the old folder or the new one, never a half-written one (a crash leaves
    only a `.tmp-*` folder, which the next write removes).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        _fsync_tree(tmp)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def save_adapter(model: Any, final: Path, base_ref: str, meta: dict[str, Any]) -> str:
    """Save the trained ("default") adapter of a PeftModel atomically under `final`; return its sha256.

    `adapter_config.json` records `base_ref` (an absolute folder or a hub id), so the folder
    loads anywhere; evolver's own metadata travels beside it (checkpoints carry their config).
    """
    with atomic_dir(final) as tmp:
        model.save_pretrained(str(tmp), selected_adapters=["default"])  # never the frozen DPO "ref" copy
        (tmp / "README.md").unlink(missing_ok=True)  # a generated model card: noise in the hash
        cfg_file = tmp / "adapter_config.json"
        cfg = json.loads(cfg_file.read_text())
        cfg["base_model_name_or_path"] = base_ref
        cfg_file.write_text(json.dumps(cfg, indent=2, sort_keys=True))
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    return hash_adapter(final)


def _fsync_tree(root: Path) -> None:
    for f in root.rglob("*"):
        if f.is_file():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else ""
