"""Inside the sandbox, after the lock-down: run the solution, its setup and its tests; verdicts as data.

Loaded by `_sandbox_child.py` from this file's path (the child runs with `python -I`, outside any
package) before any model code runs. Standard library only.

The solution is loaded first, then `test_setup_code` (MBPP setups may build objects of a class the
solution defines), then each test. `assert a == b` is checked part by part, so a failure can say
what the code returned, and a result whose `==` is not built in or the standard library's own is
refused: an object whose __eq__ always says yes would pass any assert. `trusted_eq()` must be
called before model code runs.
"""

from __future__ import annotations

import ast
import collections
import decimal  # noqa: F401 - loaded before any model code, so its classes' == is trusted
import fractions  # noqa: F401 - idem
import sys
import traceback
import types


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


_ATOMS = frozenset({int, float, complex, str, bytes, bool, type(None)})
_NATIVE_EQ = (types.WrapperDescriptorType, types.MethodDescriptorType)
_CLASS_DICT = type.__dict__["__dict__"].__get__  # a class's own namespace, whatever its metaclass claims
_CLASS_MRO = type.__dict__["__mro__"].__get__
_ITERABLE = (list, tuple, set, frozenset, collections.deque)
EQ_NODES = 100_000  # containers and objects inspected per value; beyond that the value is let through


def _eq_of(kind: type) -> tuple[type, object]:
    """The class whose `__eq__` `==` calls for instances of `kind`, and that `__eq__`."""
    for klass in _CLASS_MRO(kind):
        namespace = _CLASS_DICT(klass)
        if "__eq__" in namespace:
            return klass, namespace["__eq__"]
    return object, object.__eq__


def trusted_eq() -> dict[type, object]:
    """Classes loaded so far whose `==` is Python code, each with that code.

    Taken before any model code runs, so everything here is the standard library's (and
    `collections.Counter`, `fractions.Fraction` ... are among it): results of these exact
    classes are compared as they are, while a class the code defines, subclasses or patches
    does not match its entry.
    """
    out: dict[type, object] = {}
    for module in list(sys.modules.values()):
        for value in list(vars(module).values()):
            if isinstance(value, type):
                eq = _eq_of(value)[1]
                if isinstance(eq, types.FunctionType):
                    out[value] = eq
    return out


def _parts(value: object, kind: type, trusted: dict[type, object]) -> list:
    """What `==` on `value` goes on to compare, read through the base types (never through overrides)."""
    if isinstance(value, dict):
        return [*dict.keys(value), *dict.values(value)]
    for base in _ITERABLE:
        if isinstance(value, base):
            return list(base.__iter__(value))
    if kind in trusted:  # e.g. UserDict keeps its items in an attribute
        return list(vars(value).values()) if hasattr(value, "__dict__") else []
    return []


def _untrusted_eq(value: object, trusted: dict[type, object]) -> str | None:
    """Name of a type inside `value` whose `==` is neither built in nor the standard library's, or None.

    `assert f(x) == 42` proves nothing when f returns an object whose __eq__ always says yes. An
    `__eq__` is trusted when it is a built-in type's own (C) comparison, or the unchanged one of a
    standard-library class taken before the code ran (`trusted_eq`).
    """
    stack, budget = [value], EQ_NODES
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in _ATOMS:
            continue
        budget -= 1
        if budget < 0:
            return None
        owner, eq = _eq_of(kind)
        native = isinstance(eq, _NATIVE_EQ) and eq.__name__ == "__eq__" and eq.__objclass__ is owner
        if not native and trusted.get(kind) is not eq:
            return kind.__name__
        stack.extend(_parts(item, kind, trusted))
    return None


def _run_test(test: str, env: dict, trusted: dict[type, object]) -> dict | None:
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
    odd = _untrusted_eq(got, trusted) if _untrusted_eq(want, trusted) is None else None
    if odd:
        return {"status": "assert", "test": test, "got": f"a {odd} object",
                "message": "its type defines its own ==; the test expects a plain value"}
    if got == want:
        return None
    message = eval(compile(ast.Expression(node.msg), "<test>", "eval"), env) if node.msg else ""  # noqa: S307
    return {"status": "assert", "test": test, "message": _short(str(message)), "got": _short(repr(got), 200)}


def run(job: dict, trusted: dict[type, object]) -> dict:
    """Load the solution, then the setup code (which may use the solution's classes), then run the tests."""
    env: dict = {"__name__": "__sandbox__", "__builtins__": __builtins__}
    total = len(job["tests"])
    for source, filename, where in ((job["code"], "<solution>", "while loading the solution"),
                                    (job["setup"], "<setup>", "in the setup code")):
        try:
            exec(compile(source, filename, "exec"), env)  # noqa: S102
        except BaseException as exc:  # noqa: BLE001 - any failure of the code is the verdict
            return {**_error(exc, where), "passed": 0, "total": total}
    passed = 0
    first: dict | None = None
    for i, test in enumerate(job["tests"]):
        try:
            failure = _run_test(test, env, trusted)
        except BaseException as exc:  # noqa: BLE001
            failure = {**_error(exc, f"in test {i + 1}"), "test": test}
        if failure is None:
            passed += 1
            continue
        first = first or failure
        if failure["status"] == "memory":
            break
    return {**(first or {"status": "ok"}), "passed": passed, "total": total}
