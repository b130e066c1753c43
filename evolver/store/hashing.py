"""Content addresses: sha256 of canonical JSON, for rows, snapshots, results and evaluation keys."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_hash(obj: Any) -> str:
    """sha256 of canonical JSON: equal content hashes equal whatever the key order."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
