"""LoRA adapters as content-hashed artifacts: where they live, one hash, one refusal, atomic folders.

An adapter is a folder (`adapter_config.json`, `adapter_model.safetensors`, `evolver_adapter.json`).
Its sha256 covers every file (sorted relative names + sizes + bytes), so a flipped byte, a
truncated file or a swapped config all change it. Nothing uses an adapter without checking
that hash first (training, generation, evaluation, serving): a corrupt adapter becomes one
`AdapterError` naming it. Torch-free, so every layer may verify.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from evolver.errors import EvolverError
from evolver.states import gen_name

REQUIRED_FILES = ("adapter_config.json", "adapter_model.safetensors")
META_FILE = "evolver_adapter.json"


class AdapterError(EvolverError):
    """An adapter that is missing, incomplete or does not match its recorded sha256."""


def adapter_dir(state_dir: Path, generation: int, phase: str) -> Path:
    """`state/adapters/gen-NNNN/{sft,dpo,inherited}`: one folder per generation and phase."""
    return Path(state_dir) / "adapters" / gen_name(generation) / phase


def hash_adapter(path: str | Path) -> str:
    """sha256 over the folder's files: sorted relative names, sizes and bytes."""
    root = Path(path)
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = f.relative_to(root).as_posix()
        h.update(rel.encode() + b"\0" + str(f.stat().st_size).encode() + b"\0")
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
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
        raise AdapterError(f"{p}: adapter is corrupt (sha256 {got[:12]}…, recorded {sha256[:12]}…)",
                           detail=f"sha256 {got}, recorded {sha256}")
    return p


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


def _fsync_tree(root: Path) -> None:
    for f in root.rglob("*"):
        if f.is_file():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
