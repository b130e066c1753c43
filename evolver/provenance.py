"""What made a generation, for bug reports and for lineages that outlive an upgrade: the versions of
Python, the platform and the libraries that train and serve. `evolver env` prints them; each
generation records them when it is created, and `evolver show N` compares them with its parent's.

Package versions come from installed metadata (no import); only the CUDA build asks torch.
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from typing import Any

PACKAGES = ("evolver", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "vllm")


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, Any]:
    """The versions recorded with each generation (None for a package that is not installed)."""
    from evolver import __version__

    out: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        out[name] = __version__ if name == "evolver" else package_version(name)
    out["cuda"] = _cuda_build()
    return out


def _cuda_build() -> str | None:
    if package_version("torch") is None:
        return None
    import torch

    return torch.version.cuda


def environment() -> dict[str, Any]:
    """`evolver env`: the recorded versions plus what this machine has (GPUs, the interpreter's path)."""
    out = versions()
    out["executable"] = sys.executable
    out["cuda_available"] = False
    out["gpus"] = []
    if out["torch"] is not None:
        import torch

        if torch.cuda.is_available():
            out["cuda_available"] = True
            out["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return out


def changed(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Keys whose versions differ between a parent's record and its child's: key -> (parent's, child's)."""
    keys = [k for k in dict.fromkeys([*parent, *child]) if k != "platform"]
    return {k: (parent.get(k), child.get(k)) for k in keys if parent.get(k) != child.get(k)}
