"""The sandbox contains what model-written code may do wrong or badly, and leaves the host as it was.

Every hostile case checks three things: the run is scored wrong with a reason, the effect did not
happen (file absent, no connection accepted), and no process of the run's group is left.
Each layer is also tested alone where this machine has it (kernel layers without the Python guard).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from pathlib import Path

import psutil
import pytest

from evolver.tasks.sandbox import SandboxLimits, SandboxResult, run_tests

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "reflectevo"
FAST = SandboxLimits(cpu_seconds=1, wall_seconds=4)


def leftovers(result: SandboxResult) -> list[int]:
    """Live pids still in the run's process group (dead ones wait for init to reap them; that is init's job)."""
    left = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == result.pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
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


def test_results_that_fake_equality_are_refused() -> None:
    hack = "class Yes:\n    def __eq__(self, other):\n        return True\n\ndef f(x):\n    return Yes()"
    r = run(hack, ["assert f(1) == 2"])
    assert not r.passed and "(got a Yes object)" in r.feedback and "defines its own ==" in r.feedback
    nested = run("class Yes(int):\n    __eq__ = lambda self, other: True\n\ndef f(x):\n    return [Yes(0)]", ["assert f(1) == [2]"])
    assert not nested.passed
    plain = run("import collections\ndef f(x):\n    return (collections.Counter('ab'), {1: [2.0]})",
                ["assert f(1) == (collections.Counter('ab'), {1: [2]})"])
    assert plain.passed, plain.feedback   # C-level equality (Counter, float) is fine


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


def test_fork_bomb_without_python_guard_is_held_by_process_limit(layers: tuple[str, ...]) -> None:
    # As root the limit binds only after the drop to `nobody`, which needs a Python that `nobody`
    # can read; a system interpreter usually is one when ours lives under /root.
    python = ""
    if "nproc" not in layers:
        python = shutil.which("python3", path="/usr/bin:/usr/local/bin") or ""
        if not python or "nproc" not in run("pass", python=python).isolation:
            pytest.skip(f"the process-count limit does not bind here: {layers}")
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    r = run(code, python=python, python_guards=False, wall_seconds=2, cpu_seconds=1)
    assert not r.passed and r.reason == "timeout" and "nproc" in r.isolation


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
