"""Is a MATH answer equal to the gold one?

First the Hendrycks MATH `is_equiv` normalisation the reference uses (string equality after
stripping LaTeX noise), re-implemented rule for rule so scores compare with the paper's. Then,
as an improvement the reference lacks, a symbolic check by Hugging Face's math-verify (LaTeX parsed
by latex2sympy into sympy, compared numerically and symbolically; tuples, intervals and sets by
their parts), under a time limit. Model output is parsed, never evaluated as code, and power
towers or huge exponents are refused before sympy sees them (they would run in C for minutes).
"""

from __future__ import annotations

import re
import signal
import threading

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

_MAX_LEN = 200
_TOWER = re.compile(r"\^\s*\{[^{}]*\^|\^\s*\{?\s*-?\d{4,}|\*\*")


def symbolic_equiv(pred: str, gold: str, timeout_s: float = 5.0) -> bool:
    """Both answers denote the same value(s), by math-verify; False when either side does not parse."""
    if not pred or not gold or len(pred) > _MAX_LEN or len(gold) > _MAX_LEN:
        return False
    if _TOWER.search(pred) or _TOWER.search(gold):
        return False
    import math_verify  # noqa: F401 - the first import (sympy, latex2sympy) takes about a second: not on the clock

    return bool(_with_timeout(lambda: _verify(pred, gold), timeout_s))


def _verify(pred: str, gold: str) -> bool:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    configs = [LatexExtractionConfig(), ExprExtractionConfig()]
    # Our own timer bounds the call (it works off the main thread too); math-verify's alarms stay off.
    g = parse(f"${gold}$", extraction_config=configs, parsing_timeout=None)
    p = parse(f"${pred}$", extraction_config=configs, parsing_timeout=None)
    return bool(g and p and verify(g, p, timeout_seconds=None))


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
