"""Ending a test's helper process (a server, a daemon) politely, then for sure."""

from __future__ import annotations

import subprocess


def end_process(proc: subprocess.Popen, wait_s: float = 30) -> None:
    """SIGTERM, wait up to `wait_s`, then SIGKILL: a test never leaves its server running."""
    proc.terminate()
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()
