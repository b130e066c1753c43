"""Is a MATH answer equal to the gold one?

First the Hendrycks MATH `is_equiv` normalisation the reference uses (string equality after
stripping LaTeX noise), re-implemented rule for rule so scores compare with the paper's. Then,
as an improvement the reference lacks, a symbolic check: both sides are translated from a small
LaTeX subset into sympy and compared (numerically when constant, by simplification otherwise),
under a time limit. Translation accepts only digits, operators, brackets, single-letter symbols
and a few function names before anything is evaluated, so model output never reaches `eval`
as code.
"""

from __future__ import annotations

import re
import signal
import threading
from typing import Any

# --- the Hendrycks normalisation ---------------------------------------------------------------


def _fix_fracs(s: str) -> str:
    """\\frac12 -> \\frac{1}{2}, \\frac1{72} -> \\frac{1}{72}."""
    parts = s.split("\\frac")
    out = parts[0]
    for part in parts[1:]:
        out += "\\frac"
        if part.startswith("{"):
            out += part
            continue
        if len(part) < 2:
            return s
        a, b, rest = part[0], part[1], part[2:]
        out += "{" + a + "}" + ("{" + b + "}" + rest if b != "{" else b + rest)
    return out


def _fix_a_slash_b(s: str) -> str:
    parts = s.split("/")
    if len(parts) != 2:
        return s
    try:
        a, b = int(parts[0]), int(parts[1])
    except ValueError:
        return s
    if s != f"{a}/{b}":
        return s
    return "\\frac{" + str(a) + "}{" + str(b) + "}"


def _remove_right_units(s: str) -> str:
    if "\\text{ " in s:
        parts = s.split("\\text{ ")
        if len(parts) != 2:
            raise ValueError("more than one unit")
        return parts[0]
    return s


def _fix_sqrt(s: str) -> str:
    """\\sqrt3 -> \\sqrt{3}."""
    if "\\sqrt" not in s:
        return s
    parts = s.split("\\sqrt")
    out = parts[0]
    for part in parts[1:]:
        if not part.startswith("{"):
            out += "\\sqrt{" + part[0] + "}" + part[1:]  # IndexError on a bare trailing \sqrt, as upstream
        else:
            out += "\\sqrt" + part
    return out


def strip_string(s: str) -> str:
    """The Hendrycks MATH normaliser; may raise on odd input (callers fall back to raw equality)."""
    s = s.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "")
    s = s.replace("\\$", "")
    s = _remove_right_units(s)
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        s = sides[1]
    s = _fix_sqrt(s)
    s = s.replace(" ", "")
    s = _fix_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _fix_a_slash_b(s)


def hendrycks_equiv(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    try:
        return strip_string(a) == strip_string(b)
    except Exception:  # noqa: BLE001 - the reference compares raw strings when normalising fails
        return a == b


# --- extra clean-up before the symbolic check ------------------------------------------------------


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (or `\\fbox{...}`, or `\\boxed x`), braces balanced."""
    starts = [m for m in re.finditer(r"\\(?:boxed|fbox)\s*", text)]
    for m in reversed(starts):
        i = m.end()
        if i < len(text) and text[i] == "{":
            content = _braced(text, i)
            if content is not None:
                return content
        elif text[m.start():m.end()].rstrip() != text[m.start():m.end()]:  # "\boxed 5"
            return text[i:].split("$")[0].strip()
    return None


def _braced(text: str, open_at: int) -> str | None:
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1: i]
    return None


def clean_answer(s: str) -> str:
    """Remove wrappers models add around an answer: $...$, \\boxed{}, \\text{}, thin spaces, a final period."""
    s = s.strip()
    boxed = last_boxed(s)
    if boxed is not None:
        s = boxed
    s = s.strip().strip("$").strip()
    s = re.sub(r"\\(?:text|mathrm|textbf|mbox)\{([^{}]*)\}", r"\1", s)
    s = re.sub(r"\\[,;:! ]", "", s).replace("~", "")
    s = s.rstrip(".").strip()
    return s


# --- symbolic equivalence ---------------------------------------------------------------------------

_FUNCS = {"sqrt", "pi", "oo", "sin", "cos", "tan", "log", "ln", "exp"}
_SAFE = re.compile(r"[0-9a-zA-Z+\-*/().,\s]*")
_MAX_LEN = 200


def _replace_command(s: str, name: str, build) -> str:  # noqa: ANN001 - build: (list[str]) -> str
    """Rewrite `\\name{a}{b}...` (as many brace groups as `build` takes) from the inside out."""
    arity = build.__code__.co_argcount
    while True:
        at = s.rfind("\\" + name)
        if at < 0:
            return s
        i = at + len(name) + 1
        args = []
        for _ in range(arity):
            while i < len(s) and s[i] == " ":
                i += 1
            if i < len(s) and s[i] == "{":
                body = _braced(s, i)
                if body is None:
                    raise ValueError("unbalanced braces")
                args.append(body)
                i += len(body) + 2
            elif i < len(s):
                args.append(s[i])
                i += 1
            else:
                raise ValueError(f"\\{name} without arguments")
        s = s[:at] + build(*args) + s[i:]


def latex_to_expr(s: str) -> str | None:
    """A Python/sympy expression string for simple LaTeX, or None when outside the supported subset."""
    s = clean_answer(s)
    if not s or len(s) > _MAX_LEN:
        return None
    s = s.replace("\\left", "").replace("\\right", "").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\^\{?\\circ\}?", "", s)
    try:
        s = _replace_command(s, "frac", lambda a, b: f"(({a})/({b}))")
        s = re.sub(r"\\sqrt\[([^\]]+)\]\{([^{}]*)\}", r"((\2)**(1/(\1)))", s)
        s = _replace_command(s, "sqrt", lambda a: f"sqrt({a})")
    except ValueError:
        return None
    for latex, py in (("\\cdot", "*"), ("\\times", "*"), ("\\div", "/"), ("\\pi", " pi "), ("\\infty", " oo "),
                      ("\\ln", " ln "), ("\\log", " log "), ("\\sin", " sin "), ("\\cos", " cos "), ("\\tan", " tan ")):
        s = s.replace(latex, py)
    s = s.replace("^", "**").replace("{", "(").replace("}", ")")
    if "\\" in s or not _SAFE.fullmatch(s):
        return None
    for word in re.findall(r"[A-Za-z]+", s):
        if len(word) > 1 and word not in _FUNCS:
            return None
    return s


def _split_top(s: str) -> tuple[str, list[str], str]:
    """('(', ['1', '2'], ']') for '(1, 2]'; no brackets and one part for a plain expression."""
    whole = s
    opener, closer = "", ""
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]":
        depth = 0
        for i, c in enumerate(s):
            depth += c in "(["
            depth -= c in ")]"
            if depth == 0 and i < len(s) - 1:
                break
        else:
            opener, closer, s = s[0], s[-1], s[1:-1]
    parts, depth, cur = [], 0, ""
    for c in s:
        depth += c in "(["
        depth -= c in ")]"
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    parts.append(cur)
    if len(parts) == 1:  # one value: its brackets group, they do not delimit a tuple or interval
        return "", [whole.strip()], ""
    return opener, [p.strip() for p in parts], closer


def _sympy_equal(a: str, b: str) -> bool:
    import sympy
    from sympy.parsing.sympy_parser import (
        implicit_multiplication_application,
        parse_expr,
        standard_transformations,
    )

    transforms = (*standard_transformations, implicit_multiplication_application)
    names: dict[str, Any] = {"ln": sympy.log, "oo": sympy.oo, "pi": sympy.pi}

    def parse(x: str) -> Any:
        # Parse unevaluated first and refuse towers and huge exponents: evaluating 9^9^9 would
        # run in C for minutes where no timer can interrupt it.
        raw = parse_expr(x, local_dict=dict(names), transformations=transforms, evaluate=False)
        for power in raw.atoms(sympy.Pow):
            if power.exp.has(sympy.Pow) or (power.exp.is_Number and abs(power.exp) > 1000):
                raise ValueError("exponent too large to evaluate safely")
        return parse_expr(x, local_dict=dict(names), transformations=transforms, evaluate=True)

    ea, eb = parse(a), parse(b)
    diff = ea - eb
    if not diff.free_symbols:
        va, vb = complex(sympy.N(ea, 30)), complex(sympy.N(eb, 30))
        return abs(va - vb) <= 1e-9 * max(1.0, abs(vb))
    return sympy.simplify(diff) == 0


def symbolic_equiv(pred: str, gold: str, timeout_s: float = 5.0) -> bool:
    """Both answers denote the same value(s): tuples and intervals compare part by part, brackets alike."""
    ea, eb = latex_to_expr(pred), latex_to_expr(gold)
    if ea is None or eb is None:
        return False
    oa, pa, ca = _split_top(ea)
    ob, pb, cb = _split_top(eb)
    if (oa, ca) != (ob, cb) or len(pa) != len(pb) or not all(pa) or not all(pb):
        return False
    import sympy.parsing.sympy_parser  # noqa: F401 - the first import takes about a second: not on the clock
    return bool(_with_timeout(lambda: all(_sympy_equal(x, y) for x, y in zip(pa, pb)), timeout_s))


class _Timeout(Exception):
    pass


def _with_timeout(fn, timeout_s: float) -> bool:  # noqa: ANN001
    """Run fn(); False on error or after `timeout_s`.

    On the main thread a SIGALRM timer interrupts sympy mid-computation; elsewhere fn runs on a
    daemon thread that is abandoned on timeout (inputs are capped at 200 characters to keep that rare).
    """
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGALRM) in (
            signal.SIG_DFL, signal.SIG_IGN, None):
        def on_alarm(signum, frame):  # noqa: ANN001, ARG001
            raise _Timeout

        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            return bool(fn())
        except Exception:  # noqa: BLE001 - unparsable or unsupported input is "not shown equal"
            return False
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    box: list[bool] = []

    def target() -> None:
        try:
            box.append(bool(fn()))
        except Exception:  # noqa: BLE001
            box.append(False)

    worker = threading.Thread(target=target, daemon=True, name="math-equiv")
    worker.start()
    worker.join(timeout_s)
    return bool(box and box[0])


def math_equiv(pred: str | None, gold: str, timeout_s: float = 5.0) -> tuple[bool, str]:
    """(equal, how): how is 'hendrycks', 'cleaned', 'symbolic' or '' when not equal."""
    if pred is None:
        return False, ""
    if hendrycks_equiv(pred, gold):
        return True, "hendrycks"
    cp, cg = clean_answer(pred), clean_answer(gold)
    if hendrycks_equiv(cp, cg):
        return True, "cleaned"
    if symbolic_equiv(cp, cg, timeout_s):
        return True, "symbolic"
    return False, ""
