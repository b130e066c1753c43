"""The sandboxed process: lock itself down, then run model-written code and its tests.

Started by `evolver.tasks.sandbox` as `python -I _sandbox_child.py REPORT_FD JOB_FD`, the job
being JSON on JOB_FD. It reports on REPORT_FD, one JSON object per line: first the isolation it achieved
("ready"), then the outcome ("done"). Standard library only; everything it needs is imported
before the lock-down, because afterwards the process may not be able to load code.

Layers, each applied when this kernel and these privileges allow it (the "ready" line says which):
- `netns`: a fresh, empty network namespace (no interfaces up), so no connection leaves.
- `uid:N`: when started as root, drop to an unprivileged uid (if it can still read this Python)
  so the process-count limit holds and file permissions apply.
- `landlock-fs`: the kernel refuses writes outside the sandbox directory and the execution of
  any program; `landlock-tcp`: TCP bind/connect (ABI >= 4); signals to processes outside the
  sandbox are refused too (ABI >= 6).
- `rlimits`: CPU seconds, address space, file size, no core dumps; `nproc`: the process-count
  limit, listed only when it binds (the kernel exempts root from it).
- `audit-hook`: a Python audit hook refusing process creation, ctypes, and (when the kernel
  layers above are missing) sockets and writes outside the sandbox directory. It gives readable
  errors; the kernel layers are what hold against code that gets around Python.
"""

from __future__ import annotations

import ast
import ctypes
import json
import os
import resource
import stat
import sys
import sysconfig
import traceback
import types

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
PR_SET_NO_NEW_PRIVS = 38
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1

# Landlock filesystem rights that change the filesystem (reads stay allowed everywhere), plus execute.
FS_EXECUTE, FS_WRITE_FILE = 1 << 0, 1 << 1
FS_WRITES_V1 = FS_WRITE_FILE | sum(1 << b for b in (4, 5, 6, 7, 8, 9, 10, 11, 12))  # remove_*, make_*
FS_REFER, FS_TRUNCATE = 1 << 13, 1 << 14
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

BLOCKED_EVENTS = (
    "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.system", "os.kill",
    "os.killpg", "subprocess.Popen", "pty.spawn", "ctypes.", "_ctypes.", "sys.remote_exec",
)
WRITE_EVENTS = {
    "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1), "os.chmod": (0,),
    "os.chown": (0,), "os.symlink": (1,), "os.link": (1,), "os.truncate": (0,), "os.utime": (0,),
    "shutil.rmtree": (0,), "os.chflags": (0,), "os.mkfifo": (0,), "os.mknod": (0,),
}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _unshare_network(libc: ctypes.CDLL) -> str | None:
    if libc.unshare(CLONE_NEWNET) == 0:
        return "netns"
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0:
        return "userns+netns"
    return None


def _readable_by_others() -> bool:
    """True when this interpreter's library folders can be read without our uid (not under /root, say)."""
    for leaf in filter(None, {sysconfig.get_path(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}):
        if not os.path.isdir(leaf) or not os.stat(leaf).st_mode & stat.S_IROTH:
            return False
        path = os.path.abspath(leaf)
        while True:
            if not os.stat(path).st_mode & stat.S_IXOTH:
                return False
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
    return True


def _drop_root(uid: int, gid: int) -> str | None:
    if os.geteuid() != 0 or uid < 0 or not _readable_by_others():
        return None
    try:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    except OSError:
        return None
    return f"uid:{uid}"


def _landlock(libc: ctypes.CDLL, workdir: str) -> tuple[bool, bool]:
    """Restrict writes to `workdir` (and TCP, when the ABI knows it). Returns (fs, tcp) applied."""
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    abi = syscall(ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET), None, ctypes.c_size_t(0),
                  ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    if abi < 1:
        return False, False
    # EXECUTE is handled with no rule: no program can be started, whatever gets around Python.
    fs = FS_EXECUTE | FS_WRITES_V1 | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0)
    net = (NET_BIND_TCP | NET_CONNECT_TCP) if abi >= 4 else 0
    scoped = (SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if abi >= 6 else 0
    attr = RulesetAttr(fs, net, scoped)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    rfd = syscall(ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(size),
                  ctypes.c_uint32(0))
    if rfd < 0:
        return False, False
    try:
        rules = [(workdir, fs, os.O_PATH | os.O_DIRECTORY)]
        rules.append((os.devnull, FS_WRITE_FILE | (FS_TRUNCATE if abi >= 3 else 0), os.O_PATH))
        for path, allowed, flags in rules:
            pfd = os.open(path, flags | os.O_CLOEXEC)
            try:
                rule = PathBeneath(allowed, pfd)
                if syscall(ctypes.c_long(SYS_LANDLOCK_ADD_RULE), ctypes.c_int(rfd),
                           ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH), ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
                    return False, False
            finally:
                os.close(pfd)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return False, False
        if syscall(ctypes.c_long(SYS_LANDLOCK_RESTRICT_SELF), ctypes.c_int(rfd), ctypes.c_uint32(0)) != 0:
            return False, False
    finally:
        os.close(rfd)
    return True, net != 0


def _set_rlimits(job: dict) -> None:
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(job["cpu_seconds"] + used.ru_utime + used.ru_stime + 0.999)
    limits = [
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_AS, job["memory_bytes"], job["memory_bytes"]),
        (resource.RLIMIT_FSIZE, job["file_bytes"], job["file_bytes"]),
        (resource.RLIMIT_NPROC, job["max_processes"], job["max_processes"]),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    for which, soft, hard in limits:
        _, old_hard = resource.getrlimit(which)
        if old_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, old_hard), min(hard, old_hard)
        try:
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError):
            if which != resource.RLIMIT_AS:  # macOS refuses address-space limits; the rest must hold
                raise


def _install_guard(workdir: str, guard_writes: bool, guard_sockets: bool) -> None:
    root = os.path.realpath(workdir)

    def inside(path: object) -> bool:
        if isinstance(path, int):
            return True  # an fd already open: its access was checked when it was opened
        try:
            real = os.path.realpath(os.fsdecode(path))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
        return real == root or real.startswith(root + os.sep) or real == os.devnull

    def hook(event: str, args: tuple) -> None:
        if event.startswith(BLOCKED_EVENTS):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if guard_sockets and event.startswith("socket."):
            raise PermissionError(f"sandbox: network access ({event}) is not allowed")
        if not guard_writes:
            return
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & WRITE_FLAGS)
            if writing and not inside(path):
                raise PermissionError(f"sandbox: writing {path!r} outside the sandbox directory is not allowed")
        elif event in WRITE_EVENTS:
            for i in WRITE_EVENTS[event]:
                if i < len(args) and not inside(args[i]):
                    raise PermissionError(f"sandbox: {event} on {args[i]!r} outside the sandbox directory is not allowed")

    sys.addaudithook(hook)
    if guard_sockets:
        import socket

        class _NoSocket:
            def __init__(self, *args: object, **kwargs: object) -> None:
                raise PermissionError("sandbox: network access is not allowed")

        socket.socket = _NoSocket  # type: ignore[misc, assignment]
        socket.create_connection = _NoSocket  # type: ignore[assignment]


def lock_down(job: dict) -> tuple[list[str], str]:
    linux = sys.platform.startswith("linux")  # namespaces and Landlock are Linux system calls
    libc = ctypes.CDLL(None, use_errno=True)
    layers = ["process"]
    net = _unshare_network(libc) if job["netns"] and linux else None
    if net:
        layers.append(net)
    dropped = _drop_root(job["uid"], job["gid"])
    if dropped:
        layers.append(dropped)
    fs_locked, tcp_locked = _landlock(libc, job["workdir"]) if job["landlock"] and linux else (False, False)
    if fs_locked:
        layers.append("landlock-fs")
    if tcp_locked:
        layers.append("landlock-tcp")
    _set_rlimits(job)
    layers.append("rlimits")
    if os.geteuid() != 0:
        layers.append("nproc")  # root is exempt from RLIMIT_NPROC

    network = "netns" if net else "socket-patch"
    if job["python_guards"] or not fs_locked or not net:
        # Writes and sockets are guarded here only when no kernel layer holds them.
        _install_guard(job["workdir"], guard_writes=not fs_locked, guard_sockets=not net)
        layers.append("audit-hook")
    return layers, network


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error(exc: BaseException, where: str) -> dict:
    """An exception as data: type, message, line of the solution it came from, and the phase."""
    if isinstance(exc, MemoryError):
        return {"status": "memory", "where": where}
    line = None
    if isinstance(exc, SyntaxError) and exc.filename == "<solution>":
        message, line = exc.msg, exc.lineno
    else:
        message = str(exc)
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<solution>"]
        line = frames[-1].lineno if frames else None
    return {"status": "error", "type": type(exc).__name__, "message": _short(message), "line": line, "where": where}


_PLAIN_CONTAINERS = (list, tuple, set, frozenset, dict)


def _custom_eq(value: object, budget: list[int] | None = None) -> str | None:
    """Name of a type inside `value` whose `==` is Python code, or None.

    `assert f(x) == 42` proves nothing when f returns an object whose __eq__ always says yes; gold
    values in tests are plain data, so a result that defines its own equality is refused.
    """
    budget = budget if budget is not None else [10_000]
    budget[0] -= 1
    if budget[0] < 0:
        return None
    kind = type(value)
    if kind in _PLAIN_CONTAINERS:
        children = [*value.keys(), *value.values()] if kind is dict else value  # type: ignore[attr-defined]
        for child in children:  # type: ignore[union-attr]
            found = _custom_eq(child, budget)
            if found:
                return found
        return None
    for klass in kind.__mro__:
        if "__eq__" in klass.__dict__:
            return kind.__name__ if isinstance(klass.__dict__["__eq__"], types.FunctionType) else None
    return None


def _run_test(test: str, env: dict) -> dict | None:
    """None when the test passes, else the failure as data. `assert a == b` is checked part by part,
    so the failure can say what the code returned."""
    tree = ast.parse(test)
    node = tree.body[0] if len(tree.body) == 1 else None
    if not (isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1
            and isinstance(node.test.ops[0], ast.Eq)):
        try:
            exec(compile(tree, "<test>", "exec"), env)  # noqa: S102
        except AssertionError as exc:
            return {"status": "assert", "test": test, "message": _short(str(exc)), "got": ""}
        return None
    got = eval(compile(ast.Expression(node.test.left), "<test>", "eval"), env)  # noqa: S307
    want = eval(compile(ast.Expression(node.test.comparators[0]), "<test>", "eval"), env)  # noqa: S307
    odd = _custom_eq(got) if _custom_eq(want) is None else None
    if odd:
        return {"status": "assert", "test": test, "got": f"a {odd} object",
                "message": "its type defines its own ==; the test expects a plain value"}
    if got == want:
        return None
    message = eval(compile(ast.Expression(node.msg), "<test>", "eval"), env) if node.msg else ""  # noqa: S307
    return {"status": "assert", "test": test, "message": _short(str(message)), "got": _short(repr(got), 200)}


def run(job: dict) -> dict:
    env: dict = {"__name__": "__sandbox__", "__builtins__": __builtins__}
    total = len(job["tests"])
    for source, filename, where in ((job["setup"], "<setup>", "in the setup code"),
                                    (job["code"], "<solution>", "while loading the solution")):
        try:
            exec(compile(source, filename, "exec"), env)  # noqa: S102
        except BaseException as exc:  # noqa: BLE001 - any failure of the code is the verdict
            return {**_error(exc, where), "passed": 0, "total": total}
    passed = 0
    first: dict | None = None
    for i, test in enumerate(job["tests"]):
        try:
            failure = _run_test(test, env)
        except BaseException as exc:  # noqa: BLE001
            failure = {**_error(exc, f"in test {i + 1}"), "test": test}
        if failure is None:
            passed += 1
            continue
        first = first or failure
        if failure["status"] == "memory":
            break
    return {**(first or {"status": "ok"}), "passed": passed, "total": total}


def main() -> None:
    report = os.fdopen(int(sys.argv[1]), "w", buffering=1)
    with os.fdopen(int(sys.argv[2]), "r", encoding="utf-8") as f:
        job = json.loads(f.read())
    del sys.argv[1:]
    layers, network = lock_down(job)
    report.write(json.dumps({"phase": "ready", "layers": layers, "network": network}) + "\n")
    try:
        outcome = run(job)
    except MemoryError:
        outcome = {"status": "memory", "where": "", "passed": 0, "total": len(job["tests"])}
    report.write(json.dumps({"phase": "done", **outcome}) + "\n")
    report.flush()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - a closed or broken stream must not change the verdict
            pass
    os._exit(0)  # skip atexit handlers and finalizers the code may have registered


if __name__ == "__main__":
    main()
