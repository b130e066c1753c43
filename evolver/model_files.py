"""Model files: content hashes (cached by size and modification time) and quiet loading.

Below both models.py (which resolves and loads base models) and gguf_base.py (which dequantizes a
GGUF file into a model folder): each needs hashes and quiet loading, and neither needs the other's.
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
