"""Starting the training child and watching it: command line, progress, stderr tail, stop.

The parent never imports torch for training; it only reads the child's progress lines
(stdout), keeps the last lines of its stderr for the error message, and writes both to a
log file beside the spec.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from evolver.training.runtime import PROGRESS_PREFIX

TAIL_LINES = 40
POLL_S = 0.5


@dataclass(frozen=True)
class ChildOutcome:
    returncode: int
    stderr_tail: str
    stopped: bool = False

    def error_line(self) -> str:
        """One line for users: the exception line of the traceback, or how the process died."""
        if self.returncode < 0:
            sig = -self.returncode
            why = " (out of memory?)" if sig == signal.SIGKILL else ""
            return f"child killed by signal {sig}{why}"
        lines = [ln.strip() for ln in self.stderr_tail.splitlines() if ln.strip()]
        last = next((ln for ln in reversed(lines) if not ln.startswith(("File ", "^", "~"))), "")
        return f"child exited {self.returncode}: {last[:300]}" if last else f"child exited {self.returncode}"


def child_command(spec_path: Path, launcher: str = "python", accelerate_args: Sequence[str] = (),
                  python: str = sys.executable) -> list[str]:
    """`python -m evolver.training.child SPEC`, or the same under `accelerate launch [args]` (through
    `evolver.training.ranks`, which also starts the CPU ranks accelerate's launcher would not)."""
    if launcher == "accelerate":
        return [python, "-m", "evolver.training.ranks", *accelerate_args,
                "-m", "evolver.training.child", str(spec_path)]
    return [python, "-m", "evolver.training.child", str(spec_path)]


def run_child(cmd: Sequence[str], log_path: Path, on_progress: Callable[[int, int, float | None], None],
              stop: threading.Event | None = None, env: dict[str, str] | None = None) -> ChildOutcome:
    """Run to completion (or until `stop` is set: SIGTERM, then SIGKILL after 10 s)."""
    child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a", encoding="utf-8") as log, subprocess.Popen(
        list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env, text=True,
        encoding="utf-8", errors="replace", start_new_session=True, preexec_fn=_die_with_parent,
    ) as proc:
        lock = threading.Lock()

        def read_stdout() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith(PROGRESS_PREFIX):
                    p = json.loads(line[len(PROGRESS_PREFIX):])
                    on_progress(int(p["step"]), int(p["total"]), p.get("loss"))
                    continue
                with lock:
                    log.write(line)

        def read_stderr() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                tail.append(line.rstrip("\n"))
                with lock:
                    log.write(line)

        readers = [threading.Thread(target=f, daemon=True) for f in (read_stdout, read_stderr)]
        for t in readers:
            t.start()
        stopped = False
        while proc.poll() is None:
            if stop is not None and stop.wait(POLL_S):
                stopped = True
                _terminate(proc)
                break
            if stop is None:
                try:
                    proc.wait(POLL_S)
                except subprocess.TimeoutExpired:
                    pass
        proc.wait()
        for t in readers:
            t.join(timeout=5)
    return ChildOutcome(proc.returncode, "\n".join(tail), stopped)


def _die_with_parent() -> None:
    """Linux: the child gets SIGKILL when the daemon dies (kill -9, OOM), so no orphan keeps
    training and writing into a work dir the resumed phase is about to reuse."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _terminate(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # the child's own session: accelerate's workers too
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
