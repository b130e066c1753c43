"""The training child's own peak memory: resident (VmHWM) and CUDA, per rank.

`getrusage(RUSAGE_SELF).ru_maxrss` is the wrong figure here: Linux carries it across exec, so a
child forked from a daemon holding 3 GB reports at least 3 GB whatever it used itself. The kernel's
high-water mark of the process's own address space (`VmHWM` in /proc/self/status) starts afresh
at exec; writing "5" to /proc/self/clear_refs resets it as well, so `reset()` at the child's start
makes the figure the child's alone even if it was not exec'd fresh.
"""

from __future__ import annotations

from pathlib import Path

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def reset() -> None:
    """Start the peak-RSS count from now (Linux; elsewhere nothing to reset)."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        pass  # no /proc (macOS) or a kernel without the hiwater reset: VmHWM is exec-fresh anyway


def peak_rss_mb() -> float | None:
    """This process's resident high-water mark in MiB (None without /proc)."""
    try:
        status = STATUS.read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def peak_cuda_mb() -> float | None:
    """Peak CUDA memory allocated by this process's tensors in MiB (None without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def per_rank(value: float | None) -> list[float | None]:
    """Every rank's value, in rank order (a one-item list outside distributed training)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    out: list[float | None] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out
