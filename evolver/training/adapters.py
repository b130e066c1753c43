"""Saving and loading LoRA adapters with peft (training child and generation backends).

Hashing, verification and atomic folders are torch-free and live in `evolver.artifacts`;
this module adds what needs peft and torch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evolver.artifacts import META_FILE, AdapterError, atomic_dir, hash_adapter, verify_adapter

__all__ = ["load_adapter", "save_adapter", "tensors_sha256"]


def tensors_sha256(state: Mapping[str, Any]) -> str:
    """sha256 of a state dict (sorted keys, dtype, shape, bytes): compares weights across save/load."""
    import torch

    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}\0".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def load_adapter(base_model: Any, path: str | Path | None, sha256: str | None, trainable: bool = False,
                 adapter_name: str = "default") -> Any:
    """Verify, then wrap `base_model` as a PeftModel holding this adapter."""
    from peft import PeftModel

    p = verify_adapter(path, sha256)
    try:
        return PeftModel.from_pretrained(base_model, str(p), adapter_name=adapter_name, is_trainable=trainable)
    except Exception as err:  # peft/safetensors raise many types; the caller needs one line
        raise AdapterError(f"{p}: cannot load adapter ({type(err).__name__}: {_first_line(err)})") from None


def save_adapter(model: Any, final: Path, base_ref: str, meta: dict[str, Any]) -> str:
    """Save the trained ("default") adapter of a PeftModel atomically under `final`; return its sha256.

    `adapter_config.json` records `base_ref` (an absolute folder or a hub id), so the folder
    loads anywhere; evolver's own metadata travels beside it (checkpoints carry their config).
    Both JSON files are written with sorted keys and sorted lists of module names, so the same
    weights always give the same bytes and the same sha256 (peft orders `target_modules` by a
    set, which differs from process to process).
    """
    with atomic_dir(final) as tmp:
        model.save_pretrained(str(tmp), selected_adapters=["default"])  # never the frozen DPO "ref" copy
        (tmp / "README.md").unlink(missing_ok=True)  # a generated model card: noise in the hash
        cfg_file = tmp / "adapter_config.json"
        cfg = json.loads(cfg_file.read_text())
        cfg["base_model_name_or_path"] = base_ref
        for key in ("target_modules", "modules_to_save"):
            if isinstance(cfg.get(key), list):
                cfg[key] = sorted(cfg[key])
        cfg_file.write_text(json.dumps(cfg, indent=2, sort_keys=True))
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    return hash_adapter(final)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else ""
