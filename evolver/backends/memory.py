"""Giving back memory a long-running process no longer uses, between stages.

A daemon that runs for weeks loads a model copy per adapter switch, draws batches of different
shapes and hands training to a child process. Freed memory stays with the process unless handed
back: Python's cyclic garbage until the next full collection, glibc's heap (freed chunks in its
arenas, which it returns to the kernel only from the top of the heap; `malloc_trim` releases the
rest), and PyTorch's CUDA cache (freed blocks stay reserved for reuse, out of reach of the training
child that runs next). `release()` does all three; the cycle calls it before each stage.
"""

from __future__ import annotations

import ctypes
import gc
import sys


def release() -> None:
    """Collect garbage, return free heap pages to the kernel (glibc) and free the CUDA cache (if in use)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    _malloc_trim()


def _malloc_trim() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl): nothing to trim
        return
    libc.malloc_trim(0)


def rss_mb() -> float | None:
    """This process's resident memory now, in MiB (Linux; None elsewhere)."""
    try:
        for line in open("/proc/self/status", encoding="ascii"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
