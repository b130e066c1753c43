"""The sandbox contains what model-written code may do wrong or badly, and leaves the host as it was.

Every hostile case checks three things: the run is scored wrong with a reason, the effect did not
happen (file absent, no connection accepted), and no process of the run's group or uid is left.
Each layer is also tested alone where this machine has it; the hostile programs run once more with
the Python audit hook off (`python_guards=False`), to show that the kernel layers alone hold and
that the code runs as a uid other than root.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import psutil
import pytest

from evolver.tasks.sandbox import SANDBOX_UID_BASE, SandboxLimits, SandboxResult, run_tests

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "reflectevo"
FAST = SandboxLimits(cpu_seconds=1, wall_seconds=4)


def leftovers(result: SandboxResult) -> list[int]:
    """Live pids still in the run's process group or running as its own uid (dead ones wait for init
    to reap them; that is init's job)."""
    left = []
    own_uid = result.uid if result.uid >= SANDBOX_UID_BASE else None
    for proc in psutil.process_iter(["pid", "status", "uids"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if os.getpgid(proc.pid) == result.pgid or proc.info["uids"].real == own_uid:
                left.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return left


def run(code: str, tests: list[str] | None = None, setup: str = "", **kw) -> SandboxResult:
    result = run_tests(code, tests or [], setup, SandboxLimits(**{**FAST.__dict__, **kw}))
    assert leftovers(result) == [], f"processes left behind: {leftovers(result)}"
    return result


@pytest.fixture(scope="module")
def layers() -> tuple[str, ...]:
    return run("pass").isolation


def test_passing_and_failing_code() -> None:
    ok = run("def f(x):\n    return x + 1", ["assert f(1) == 2", "assert f(2) == 3"])
    assert ok.passed and ok.reason == "ok" and ok.tests_passed == 2 == ok.tests_total
    bad = run("def f(x):\n    return x", ["assert f(1) == 1", "assert f(1) == 2"])
    assert not bad.passed and bad.reason == "assert: assert f(1) == 2"
    assert bad.feedback == "Test failed: assert f(1) == 2 (got 1)" and bad.tests_passed == 1
    syntax = run("def f(x)\n    return x", ["assert f(1) == 1"])
    assert syntax.reason == "error: SyntaxError: expected ':'" and "line 1" in syntax.feedback
    exited = run("import os\nos._exit(0)", ["assert True"])
    assert not exited.passed and exited.reason.startswith("error: exited before the tests finished")


FAKE_EQ = {
    "own-class": "class Yes:\n    def __eq__(self, other):\n        return True\n\ndef f(x):\n    return Yes()",
    "nested-int-subclass": "class Yes(int):\n    __eq__ = lambda self, other: True\n\ndef f(x):\n    return [Yes(0)]",
    "callable-attribute": "class T:\n    def __call__(self, *a):\n        return True\n\nclass Yes:\n    __eq__ = T()\n\n"
                          "def f(x):\n    return Yes()",
    "builtin-function": "import operator\nclass Yes:\n    __eq__ = operator.truth\n\ndef f(x):\n    return Yes()",
    "borrowed-slot": "class Yes(int):\n    __eq__ = int.__ne__\n\ndef f(x):\n    return Yes(5)",
    "patched-counter": "import collections\ncollections.Counter.__eq__ = lambda self, other: True\n\n"
                       "def f(x):\n    return collections.Counter('zz')",
    "counter-subclass": "import collections\nclass C(collections.Counter):\n    def __eq__(self, other):\n"
                        "        return True\n\ndef f(x):\n    return C()",
    "inside-a-counter": "import collections\nclass Yes:\n    def __eq__(self, other):\n        return True\n"
                        "    __hash__ = object.__hash__\n\ndef f(x):\n    return collections.Counter({'a': Yes()})",
}


@pytest.mark.parametrize("name", FAKE_EQ)
def test_results_that_fake_equality_are_refused(name: str) -> None:
    want = "{'a': 2}" if name == "inside-a-counter" else "[2]" if name == "nested-int-subclass" else "2"
    r = run(FAKE_EQ[name], [f"assert f(1) == {want}"])
    assert not r.passed and "defines its own ==" in r.feedback, r.feedback


@pytest.mark.parametrize("code, test", [
    ("import collections\ndef f(x):\n    return (collections.Counter('ab'), {1: [2.0]})",
     "assert f(1) == (collections.Counter('ab'), {1: [2]})"),
    ("from collections import Counter\ndef f(s):\n    return Counter(s)", "assert f('aab') == {'a': 2, 'b': 1}"),
    (("from collections import OrderedDict, defaultdict, deque\ndef f(x):\n    d = defaultdict(list)\n"
      "    d[1].append(x)\n    return [d, OrderedDict(a=1), deque([x])]"), "assert f(3) == [{1: [3]}, {'a': 1}, deque([3])]"),
    ("from fractions import Fraction\ndef f(x):\n    return Fraction(x, 2)", "assert f(4) == 2"),
    ("import datetime\ndef f():\n    return datetime.date(2024, 1, 2)", "assert f() == datetime.date(2024, 1, 2)"),
    (("class P:\n    def __init__(self, a):\n        self.a = a\n    def __eq__(self, o):\n        return self.a == o.a\n"
      "def f(a):\n    return P(a)"), "assert f(1) == P(1)"),   # the test itself builds the class: its == decides
])
def test_honest_results_of_standard_library_types_pass(code: str, test: str) -> None:
    r = run(code, [test])
    assert r.passed, r.feedback


def test_setup_code_runs_after_the_solution() -> None:
    solution = "class Pair:\n    def __init__(self, a, b):\n        self.a, self.b = a, b\n\ndef longest(ps):\n    return max(p.b for p in ps)"
    setup = "pairs = [Pair(1, 5), Pair(2, 9)]"   # builds objects of the solution's class
    r = run(solution, ["assert longest(pairs) == 9"], setup=setup)
    assert r.passed, r.feedback
    broken = run(solution, ["assert True"], setup="pairs = [Pair(1)]")
    assert not broken.passed and "in the setup code" in broken.feedback


def test_output_tails_and_scrubbed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOLVER_TEST_SECRET", "hunter2")
    r = run("import os, sys, json\nprint(json.dumps(dict(os.environ)))\nprint('to stderr', file=sys.stderr)")
    env = json.loads(r.stdout)
    assert r.passed and "EVOLVER_TEST_SECRET" not in env and set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL"}
    assert r.stderr == "to stderr\n"
    flood = run("while True:\n    print('x' * 10000)", file_mb=1)
    assert not flood.passed and len(flood.stdout) <= 2000


def test_temporary_directory_is_private_and_removed() -> None:
    r = run("import os\nopen('scratch.txt', 'w').write('ok')\nprint(os.getcwd())\nprint(open('scratch.txt').read())")
    workdir, content = r.stdout.split()
    assert r.passed and content == "ok" and "evolver-sandbox-" in workdir
    assert not os.path.exists(workdir) and not os.path.exists(os.path.dirname(workdir))


def test_infinite_loop_is_stopped_by_cpu_limit() -> None:
    r = run("while True:\n    pass", wall_seconds=30)  # generous: on busy cores 2 CPU seconds take longer
    assert not r.passed and r.reason == "timeout" and "CPU seconds" in r.feedback and r.seconds < 30


def test_sleeping_code_is_stopped_by_wall_clock() -> None:
    r = run("import time\ntime.sleep(60)", wall_seconds=1)
    assert not r.passed and r.reason == "timeout" and 1 <= r.seconds < 5


def test_ten_gigabyte_allocation_is_refused() -> None:
    r = run("x = bytearray(10 * 1024 ** 3)\nx[-1] = 1", ["assert True"])
    assert not r.passed and r.reason == "memory" and "Memory limit" in r.feedback


def test_fork_bomb_is_contained() -> None:
    r = run("import os\nwhile True:\n    os.fork()")
    assert not r.passed and r.reason == "error: PermissionError: sandbox: os.fork is not allowed"
    r = run("import subprocess\nwhile True:\n    subprocess.Popen(['python3', '-c', 'pass'])")
    assert not r.passed and "subprocess.Popen is not allowed" in r.reason


def test_cpu_time_not_wall_time_is_the_budget() -> None:
    r = run("import time\ntime.sleep(1.5)\nx = 1", ["assert x == 1"], cpu_seconds=1, wall_seconds=10)
    assert r.passed and r.seconds >= 1.5   # 1.5 s of wall clock, next to no CPU: within a 1 CPU-second limit


# Hostile programs with the Python audit hook off: what holds here is the kernel (uid, rlimits, Landlock, netns).
HOSTILE = {
    "fork-bomb": ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass", "timeout"),
    "memory-bomb": ("x = []\nwhile True:\n    x.append(bytearray(50 * 1024 * 1024))", "memory"),
    "infinite-loop": ("while True:\n    pass", "timeout"),
    "write-etc": ("open('/etc/evolver-escaped', 'w').write('pwned')", "error: PermissionError"),
    "write-home": ("import os\nopen(os.path.expanduser('~root') + '/evolver-escaped', 'w').write('pwned')",
                   "error: PermissionError"),
    "write-tmp": ("open('/tmp/evolver-escaped', 'w').write('pwned')", "error: PermissionError"),
    "network": ("import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=2)", "error: "),
    "left-the-group": ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\nos._exit(1)",
                       "error: exited before the tests finished"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_code_is_held_by_the_kernel_alone(name: str, layers: tuple[str, ...]) -> None:
    code, reason = HOSTILE[name]
    if os.geteuid() == 0:
        assert "uid" in layers and "nproc" in layers, layers
    r = run(code, ["assert True"], python_guards=False, wall_seconds=3)
    assert "audit-hook" not in r.isolation and r.uid not in (-1, 0), (r.isolation, r.uid)
    assert not r.passed and r.reason.startswith(reason), (name, r.reason, r.stderr[-300:])
    for escaped in ("/etc/evolver-escaped", "/root/evolver-escaped", "/tmp/evolver-escaped"):
        assert not os.path.exists(escaped)


def test_code_runs_unprivileged_with_a_scrubbed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOLVER_TEST_SECRET", "hunter2")
    code = ("import os, json, heapq, email.mime.text\n"   # the standard library still imports after the drop
            "print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), 'groups': os.getgroups(), 'env': dict(os.environ)}))")
    r = run(code, python_guards=False)
    seen = json.loads(r.stdout)
    assert r.passed and seen["uid"] == r.uid and seen["uid"] != 0 and seen["gid"] != 0 and seen["groups"] == []
    assert "EVOLVER_TEST_SECRET" not in seen["env"] and set(seen["env"]) <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL"}
    if os.geteuid() == 0:
        assert r.uid >= SANDBOX_UID_BASE   # a uid of the run's own, shared with no other process


def test_starting_programs_is_refused_by_the_kernel(layers: tuple[str, ...]) -> None:
    if "landlock-fs" not in layers:
        pytest.skip(f"no Landlock on this kernel: {layers}")
    r = run("import os\nos.execv('/bin/true', ['true'])", python_guards=False)
    assert not r.passed and r.reason == "error: PermissionError: [Errno 13] Permission denied"


@pytest.mark.parametrize("mode", ["default", "python-guard-only", "kernel-only"])
def test_write_outside_the_sandbox_is_refused(tmp_path: Path, mode: str, layers: tuple[str, ...]) -> None:
    if mode == "kernel-only" and "landlock-fs" not in layers:
        pytest.skip(f"no Landlock on this kernel: {layers}")
    kw = {"python-guard-only": {"landlock": False}, "kernel-only": {"python_guards": False}}.get(mode, {})
    target = tmp_path / "escaped.txt"
    keep = tmp_path / "keep.txt"
    keep.write_text("mine")
    for code in (f"open({str(target)!r}, 'w').write('pwned')",
                 f"import pathlib\npathlib.Path({str(target)!r}).write_text('pwned')",
                 f"import os\nos.remove({str(keep)!r})"):
        r = run(code, **kw)
        assert not r.passed and r.reason.startswith("error: PermissionError"), (mode, code, r.reason)
    assert not target.exists() and keep.read_text() == "mine"


@pytest.mark.parametrize("mode", ["default", "socket-patch", "kernel-only"])
def test_outbound_connection_is_blocked(mode: str) -> None:
    kw = {"socket-patch": {"netns": False}, "kernel-only": {"python_guards": False}}.get(mode, {})
    accepted: list[bool] = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.2)
        port = server.getsockname()[1]
        stop = threading.Event()

        def accept() -> None:
            while not stop.is_set():
                try:
                    conn, _ = server.accept()
                    accepted.append(True)
                    conn.close()
                except OSError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        code = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\ns.sendall(b'hi')"
        r = run(code, **kw)
        stop.set()
        thread.join(2)
    assert not r.passed and r.reason.startswith(("error: PermissionError", "error: OSError", "error: ConnectionRefusedError"))
    assert accepted == []
    if mode == "socket-patch":
        assert r.network == "socket-patch" and "audit-hook" in r.isolation


def test_isolation_is_reported(layers: tuple[str, ...]) -> None:
    r = run("pass")
    assert r.isolation == layers and "process" in layers and "rlimits" in layers
    assert ("netns" in layers or "userns+netns" in layers) == (r.network == "netns")
    assert r.network in {"netns", "socket-patch"}


def test_mbpp_reference_solutions_pass_their_asserts() -> None:
    path = SHARED / "mbpp_test_sample.jsonl"
    if not path.is_file():
        pytest.skip(f"shared sample {path} is absent")
    for line in path.read_text().splitlines():
        row = json.loads(line)
        r = run(row["code"], row["test_list"], setup=row["test_setup_code"])
        assert r.passed, (row["task_id"], r.reason)
