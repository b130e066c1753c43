"""Run model-written code where it cannot hurt the host: a locked-down child process per run.

The child (`_sandbox_child.py`, started with `sys.executable -I`) runs in its own session and
process group, in a fresh temporary directory (removed afterwards), with a scrubbed environment
and stdin at /dev/null. Before any model code runs it:
- moves into a new network namespace when the kernel lets it (`network == "netns"`), otherwise
  blocks sockets by patching `socket` and refusing socket audit events (`"socket-patch"`);
- when started as root, becomes a uid and gid of its own (2^30 + its pid), reaching a Python
  installation that uid could not walk to (one under /root, say) through open descriptors, so
  the process-count limit binds (root is exempt from it) and file permissions apply;
- applies Landlock (when the kernel has it) so writes outside the sandbox directory fail;
- sets rlimits: CPU seconds, address space, file size, process count, no core files;
- installs an audit hook refusing fork/exec/spawn, ctypes, and (without the kernel layers)
  sockets and writes outside its directory.
The parent enforces a wall-clock limit and, whatever happened, kills the whole process group and
every process of the run's own uid (so leaving the group, `setsid`, does not outlive the run).
`SandboxResult.isolation` lists the layers that were actually in place for that run, `uid` the
user the code ran as.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

_CHILD = Path(__file__).with_name("_sandbox_child.py")
_TAIL = 2000
SANDBOX_UID_BASE = 1 << 30  # the child's uid when it drops root: this plus its pid (as in _sandbox_child)


class SandboxError(RuntimeError):
    """The sandbox itself could not run (not a verdict on the code)."""


@dataclass(frozen=True)
class SandboxLimits:
    """Per-run limits and layers. Turning a layer off is for testing the others (and for kernels
    that misbehave); `python_guards=False` keeps the audit hook only where no kernel layer holds."""

    cpu_seconds: float = 10.0
    wall_seconds: float = 60.0
    memory_mb: int = 1024
    file_mb: int = 16
    max_processes: int = 8
    python: str = ""  # interpreter for the code; "" = this one (sys.executable)
    netns: bool = True
    landlock: bool = True
    python_guards: bool = True


@dataclass(frozen=True)
class SandboxResult:
    """What one run did. `reason`: 'ok' | 'timeout' | 'memory' | 'error: ...' | 'assert: ...'."""

    passed: bool
    reason: str
    feedback: str = ""
    tests_passed: int = 0
    tests_total: int = 0
    stdout: str = ""
    stderr: str = ""
    network: str = "unknown"
    isolation: tuple[str, ...] = field(default_factory=tuple)
    seconds: float = 0.0
    pgid: int = 0
    uid: int = -1  # the user the code ran as (-1: unknown, the code never started)


def run_tests(code: str, tests: list[str] | tuple[str, ...] = (), setup: str = "",
              limits: SandboxLimits | None = None) -> SandboxResult:
    """Run `setup`, then `code`, then each test statement (asserts) in one sandboxed process.

    Passes when the code loads and every test passes (with no tests: when the code runs to the end).
    """
    limits = limits or SandboxLimits()
    with tempfile.TemporaryDirectory(prefix="evolver-sandbox-") as tmp:
        base = Path(tmp)
        base.chmod(0o711)  # the child may run as another uid: it must reach work/, not read our files
        work = base / "work"
        work.mkdir(mode=0o700)  # the child gives it to the uid it drops to
        job = {
            "code": code, "tests": list(tests), "setup": setup or "", "workdir": str(work),
            "cpu_seconds": limits.cpu_seconds, "memory_bytes": limits.memory_mb << 20,
            "file_bytes": limits.file_mb << 20, "max_processes": limits.max_processes,
            "netns": limits.netns, "landlock": limits.landlock, "python_guards": limits.python_guards,
        }
        return _run(job, base, work, limits)


def _environment(work: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


def _run(job: dict, base: Path, work: Path, limits: SandboxLimits) -> SandboxResult:
    out_path, err_path, report_path, job_path = base / "stdout", base / "stderr", base / "report", base / "job"
    job_path.write_text(json.dumps(job), encoding="utf-8")
    job_path.chmod(0o600)
    report_fd = os.open(report_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    job_fd = os.open(job_path, os.O_RDONLY)
    start = time.monotonic()
    try:
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                [limits.python or sys.executable, "-I", str(_CHILD), str(report_fd), str(job_fd)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=work, env=_environment(work),
                pass_fds=(report_fd, job_fd), start_new_session=True, close_fds=True,
            )
    finally:
        os.close(report_fd)
        os.close(job_fd)
    own_uid = SANDBOX_UID_BASE + proc.pid if os.geteuid() == 0 else None
    try:
        timed_out = not _exited(proc.pid, start + limits.wall_seconds)
    finally:
        # The leader is not reaped yet (exited or not), so its pid still names the group and its
        # uid: no unrelated process can have taken that number when we kill them.
        kill_group(proc.pid, own_uid)
        proc.wait()
    seconds = time.monotonic() - start
    lines = _report_lines(report_path)
    ready = next((x for x in lines if x.get("phase") == "ready"), None)
    done = next((x for x in reversed(lines) if x.get("phase") == "done"), None)
    if ready is None and not timed_out:
        last = (_tail(err_path).strip().splitlines() or ["no output"])[-1]
        raise SandboxError(f"the sandbox process failed before running any code (exit {proc.returncode}): {last}")
    ready = ready or {}
    reason, feedback = _verdict(done, proc.returncode, timed_out, limits)
    return SandboxResult(
        passed=reason == "ok", reason=reason, feedback=feedback,
        tests_passed=int((done or {}).get("passed", 0)), tests_total=len(job["tests"]),
        stdout=_tail(out_path), stderr=_tail(err_path),
        network=ready.get("network", "unknown"), isolation=tuple(ready.get("layers", ())),
        seconds=round(seconds, 3), pgid=proc.pid, uid=int(ready.get("uid", -1)),
    )


def _verdict(done: dict | None, returncode: int | None, timed_out: bool, limits: SandboxLimits) -> tuple[str, str]:
    """(reason, feedback) from the child's report and how it ended."""
    if timed_out:
        return "timeout", f"Execution timed out after {limits.wall_seconds:g} seconds."
    if done is None:
        sig = -returncode if returncode is not None and returncode < 0 else 0
        if sig == signal.SIGXCPU:
            return "timeout", f"Execution exceeded {limits.cpu_seconds:g} CPU seconds."
        if sig == signal.SIGKILL:  # not ours (we kill only after a timeout or an exit): the OOM killer
            return "memory", "The process was killed, most likely for running out of memory."
        if sig == signal.SIGXFSZ:
            return "error: output too large", f"The code wrote more than {limits.file_mb} MB."
        if sig:
            name = signal.Signals(sig).name
            return f"error: crashed ({name})", f"The process crashed with {name}."
        return f"error: exited before the tests finished (exit code {returncode})", (
            "The code exited the interpreter before the tests could run.")
    status = done.get("status")
    where = f" {done['where']}" if done.get("where") else ""
    if status == "ok":
        return "ok", ""
    if status == "memory":
        return "memory", f"Memory limit of {limits.memory_mb} MB exceeded (MemoryError{where})."
    if status == "assert":
        test = str(done.get("test", "")).strip()
        got = f" (got {done['got']})" if done.get("got") else ""
        msg = f": {done['message']}" if done.get("message") else ""
        return _clip(f"assert: {test}"), f"Test failed: {test}{got}{msg}"
    error = f"{done.get('type', 'Error')}: {done['message']}" if done.get("message") else str(done.get("type", "Error"))
    line = f" (line {done['line']} of the code)" if done.get("line") else ""
    test = f" running `{str(done['test']).strip()}`" if done.get("test") else ""
    return _clip(f"error: {error}"), f"Code execution error: {error}{line}{where}{test}"


def _clip(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _report_lines(path: Path) -> list[dict]:
    """The child's JSON lines; anything else written there (the code can reach the fd) is ignored."""
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - _TAIL))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _exited(pid: int, deadline: float) -> bool:
    """Wait for `pid` to exit without reaping it; False when `deadline` (monotonic) comes first.

    A pidfd becomes readable the moment the process exits (Linux >= 5.3); elsewhere, poll.
    """
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = -1
    if fd >= 0:
        try:
            poller = select.poll()  # not select(): it fails on descriptors above 1023
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(max(0.0, deadline - time.monotonic()) * 1000))
        finally:
            os.close(fd)
    pause = 0.001
    while True:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        now = time.monotonic()
        if now >= deadline:
            return False
        time.sleep(min(pause, deadline - now))
        pause = min(pause * 2, 0.02)


def _members(pgid: int, uid: int | None = None) -> list[int]:
    """Live (non-zombie) processes in the group, or (when `uid` is given) running as `uid`, from /proc."""
    found = []
    if not os.path.isdir("/proc"):
        return found  # no /proc (macOS): the killpg above is all we can do
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            owner = _real_uid(int(entry.name)) if uid is not None else None
        except (OSError, StopIteration):
            continue
        if fields[0] != b"Z" and (int(fields[2]) == pgid or (uid is not None and owner == uid)):
            found.append(int(entry.name))
    return found


def _real_uid(pid: int) -> int:
    """The real uid of a process (from /proc/PID/status: the folder itself is root's once it changed uid)."""
    with open(f"/proc/{pid}/status", "rb") as f:
        line = next(x for x in f if x.startswith(b"Uid:"))
    return int(line.split()[1])


def _kill(pid: int, uid: int | None) -> None:
    """SIGKILL `pid` through a pidfd when it (still) runs as `uid`, so a recycled pid is never hit."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        if _real_uid(pid) == uid:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
    except (OSError, StopIteration):
        pass
    finally:
        os.close(fd)


def kill_group(pgid: int, uid: int | None = None, patience_s: float = 2.0) -> None:
    """SIGKILL the group, and every process of `uid` (the run's own), until none is left or `patience_s` passed.

    Call it before reaping the group's leader, so that the group id (and the uid made from its
    pid) cannot be reused meanwhile. A process that left the group (`setsid`) still has the uid.
    """
    deadline = time.monotonic() + patience_s
    while True:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        left = _members(pgid, uid)
        if uid is not None:
            for pid in left:
                _kill(pid, uid)
        if not left or time.monotonic() > deadline:
            return
        time.sleep(0.005)
