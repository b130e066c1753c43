"""The sandboxed process: lock itself down, then run model-written code and its tests.

Started by `evolver.tasks.sandbox` as `python -I _sandbox_child.py REPORT_FD JOB_FD`, the job
being JSON on JOB_FD. It reports on REPORT_FD, one JSON object per line: first the isolation it achieved
("ready"), then the outcome ("done"). Standard library only; everything it needs is imported
before the lock-down, because afterwards the process may not be able to load code.

Layers, each applied when this kernel and these privileges allow it (the "ready" line says which):
- `netns`: a fresh, empty network namespace (no interfaces up), so no connection leaves.
- `uid`: when started as root, become a uid and gid of its own (2^30 + its pid; `nobody`
  where the uid map is too narrow for that), so the process-count limit binds, file permissions
  apply, and no other run shares its process count or can signal it. Import paths that uid could
  not walk to (a Python under /root, say) are first reopened as /proc/self/fd/N, so the code can
  still import the standard library; only when a path's own permissions shut other users out does
  the process stay as it is (and the "ready" line says so by the missing layer).
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

import ctypes
import json
import os
import resource
import stat
import sys
import types
from importlib.machinery import SourceFileLoader

SANDBOX_UID_BASE = 1 << 30  # a run's uid and gid: this plus the child's pid
NOBODY = 65534
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


def _other_can_read(path: str) -> bool:
    """Whether a uid that owns nothing here may read `path` itself (and list it, for a folder)."""
    mode = os.stat(path).st_mode
    return bool(mode & stat.S_IROTH) and (not stat.S_ISDIR(mode) or bool(mode & stat.S_IXOTH))


def _other_can_walk_to(path: str) -> bool:
    """Whether such a uid may pass through every folder above `path`."""
    parent = os.path.dirname(os.path.abspath(path))
    while True:
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return False
        up = os.path.dirname(parent)
        if up == parent:
            return True
        parent = up


def _reroute_imports() -> bool:
    """Make every import path reachable after the drop; False when one cannot be (then we stay root).

    A path behind a folder others may not enter (/root/.pyenv/... under a 0700 /root) is opened
    now and replaced by /proc/self/fd/N: a process reaches its own descriptors without walking
    the path. Packages already imported get the same treatment for their submodules.
    """
    if not os.path.isdir("/proc/self/fd"):
        return False
    routes: dict[str, str] = {}
    for entry in sys.path:
        if not entry or entry in routes or not os.path.exists(entry):
            continue
        if not _other_can_read(entry):
            return False
        if not _other_can_walk_to(entry):
            routes[entry] = f"/proc/self/fd/{os.open(entry, os.O_PATH)}"

    def moved(path: str) -> str:
        for old, new in routes.items():
            if path == old or path.startswith(old + os.sep):
                return new + path[len(old):]
        return path

    sys.path[:] = [moved(p) for p in sys.path]
    for module in list(sys.modules.values()):
        search = vars(module).get("__path__")
        if isinstance(search, list):
            search[:] = [moved(p) for p in search]
    sys.path_importer_cache.clear()
    return True


def _drop_root(workdir: str) -> int | None:
    """Become an unprivileged uid and gid of our own; the uid, or None when we stay as we are."""
    if os.geteuid() != 0 or not _reroute_imports():
        return None
    for uid in (SANDBOX_UID_BASE + os.getpid(), NOBODY):  # nobody: where the uid map is too narrow
        try:
            os.chown(workdir, uid, uid)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        except OSError:
            continue
        return uid
    return None


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
    uid = _drop_root(job["workdir"])
    if uid is not None:
        layers.append("uid")
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


def _load_judge() -> types.ModuleType:
    """The test runner, `_sandbox_judge.py` beside this file (this script runs with -I, outside the package)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sandbox_judge.py")
    module = types.ModuleType("_sandbox_judge")
    module.__file__ = path
    SourceFileLoader("_sandbox_judge", path).exec_module(module)  # importlib.util would cost 7 ms more
    return module


def main() -> None:
    report = os.fdopen(int(sys.argv[1]), "w", buffering=1)
    with os.fdopen(int(sys.argv[2]), "r", encoding="utf-8") as f:
        job = json.loads(f.read())
    del sys.argv[1:]
    judge = _load_judge()
    trusted = judge.trusted_eq()
    layers, network = lock_down(job)
    report.write(json.dumps({"phase": "ready", "layers": layers, "network": network, "uid": os.getuid()}) + "\n")
    try:
        outcome = judge.run(job, trusted)
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
