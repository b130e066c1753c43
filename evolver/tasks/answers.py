"""Pulling the final answer out of a model's output, more tolerantly than the reference.

The reference splits on the first opener and cuts at the first closer, with no stripping, so
`Finish[ b ]`, `Finish[[1, 2]]` or `finish[B]` fail there. Here:
- openers are matched case-insensitively with optional spaces (`Finish [`, `finish[`);
- brackets nest (`Finish[f(a[0])]` gives `f(a[0])`);
- the first answer that is not a placeholder counts (`Finish[X]`, `Finish[answer]`, `Finish[]`
  are skipped), because base models often go on to invent the next few-shot question after
  answering, so a later `Finish[...]` is usually not theirs;
- whitespace around the answer is stripped.

Extraction is linear in the output and reads at most its first `SCAN_CHARS` characters (far more
than any `max_new_tokens` produces), so a runaway or hostile answer costs the parent process
milliseconds, not minutes: a predictions file may hold megabytes per row.
"""

from __future__ import annotations

import ast
import bisect
import re
import string
from collections import Counter
from fractions import Fraction

PLACEHOLDERS = {"", "x", "answer", "<answer>", "your answer", "your_answer", "...", "n", "<n>"}
SCAN_CHARS = 1_000_000  # characters of an output that extraction reads
PARSE_BUDGET = 200_000  # characters of candidate code blocks test-parsed per output
PARSE_BLOCKS = 32  # candidate code blocks test-parsed per output

_FINISH = re.compile(r"finish\s*\[", re.IGNORECASE)
_FINISH_MATH = re.compile(r"finish\s*<<<", re.IGNORECASE)
_CLOSE_MATH = re.compile(r">>>")
_BEGIN = re.compile(r"\[\s*begin\s*\]", re.IGNORECASE)
_END = re.compile(r"\[\s*end\s*\]", re.IGNORECASE)
_FENCE = re.compile(r"^\s*```[\w+-]*\s*\n(.*?)\n?\s*```\s*$", re.DOTALL)
_BRACKET = re.compile(r"[\[\]]")
_PLACEHOLDER_CHARS = max(map(len, PLACEHOLDERS)) + 2  # longer content (before stripping) is no placeholder


def _closing_brackets(text: str) -> dict[int, int]:
    """Index of each '[' -> index of its matching ']', in one pass (unclosed ones are absent)."""
    match: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACKET.finditer(text):
        if m.group() == "[":
            stack.append(m.start())
        elif stack:
            match[stack.pop()] = m.start()
    return match


def _answer(content: str) -> str | None:
    """`content` stripped, or None when it is a placeholder (checked without copying long text)."""
    if len(content) <= _PLACEHOLDER_CHARS and content.strip().lower() in PLACEHOLDERS:
        return None
    return content.strip()


def finish_bracket(output: str) -> str | None:
    """The first non-placeholder `Finish[...]` answer, brackets balanced; None when there is none."""
    text = output[:SCAN_CHARS]
    closing = _closing_brackets(text)
    last_close = text.rfind("]")
    for m in _FINISH.finditer(text):
        end = closing.get(m.end() - 1)
        if end is None:  # unbalanced: up to the last ']' (the reference's cut, but not truncating nests)
            if last_close < m.end():
                continue
            end = last_close
        answer = _answer(text[m.end():end])
        if answer is not None:
            return answer
    return None


def finish_math(output: str) -> str | None:
    """The first non-placeholder `Finish<<<...>>>` answer (up to the first `>>>` after its opener)."""
    text = output[:SCAN_CHARS]
    closes = [m.start() for m in _CLOSE_MATH.finditer(text)]
    for m in _FINISH_MATH.finditer(text):
        i = bisect.bisect_left(closes, m.end())
        if i == len(closes):
            return None  # no later opener is closed either
        answer = _answer(text[m.end():closes[i]])
        if answer is not None:
            return answer
    return None


def code_block(output: str) -> str | None:
    """Code between `[BEGIN]` and `[END]`.

    Tolerant where generation is cut: a missing `[END]` takes the rest of the output. Markdown
    fences inside the block are removed. Of several blocks, the first that parses as Python wins
    (a restated "[BEGIN] and [END]" in prose does not), else the first block. Blocks do not
    overlap (the next `[BEGIN]` is looked for after the previous `[END]`) and test-parsing stops
    after `PARSE_BLOCKS` blocks or `PARSE_BUDGET` characters, so the work is bounded whatever the
    output holds.
    """
    text = output[:SCAN_CHARS]
    blocks: list[str] = []
    pos = 0
    while (m := _BEGIN.search(text, pos)) is not None:
        end = _END.search(text, m.end())
        body = text[m.end(): end.start() if end else len(text)]
        fenced = _FENCE.match(body)
        if fenced:
            body = fenced.group(1)
        body = body.strip("\n")
        if body.strip():
            blocks.append(body)
        if end is None:
            break
        pos = end.end()
    budget = PARSE_BUDGET
    for body in blocks[:PARSE_BLOCKS]:
        budget -= len(body)
        if budget < 0:
            break
        try:
            ast.parse(body)
            return body
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue
    return blocks[0] if blocks else None


# --- multiple choice -------------------------------------------------------------------------

_OPTION_LINE = re.compile(r"^\s*\(?([A-Z])[.)]\s*(.+?)\s*$", re.MULTILINE)
_LETTER = re.compile(
    r"(?:(?:option|answer|choice)\s*(?:is)?\s*[:\-]?\s*)?[(\[]?([a-z])[)\]]?(?:\s*[.):]\s*.*)?",
    re.IGNORECASE | re.DOTALL,
)


def options(question: str) -> dict[str, str]:
    """Option letter (lowercase) -> text, from lines like 'A.text', 'B) text', '(C) text'.

    Only a run that starts at A and goes on in order counts, so stray capitals in a passage do not.
    """
    found: dict[str, str] = {}
    for m in _OPTION_LINE.finditer(question):
        letter = m.group(1).lower()
        expected = chr(ord("a") + len(found))
        if letter == "a" and found:
            found = {}  # a later list restarts: the options come last
            expected = "a"
        if letter == expected:
            found[letter] = m.group(2)
    return found if len(found) >= 2 else {}


def choice_letter(answer: str, opts: dict[str, str]) -> str:
    """Map an answer to an option letter: 'b', 'B', '(b)', 'B. False', 'Option B', or the option's text.

    Returns the lowercase letter, or the lowercased answer when it names no option.
    """
    text = answer.strip().strip("`'\"*").strip()
    m = _LETTER.fullmatch(text)
    if m:
        return m.group(1).lower()
    norm = squad_normalize(text)
    for letter, option in opts.items():
        if norm and norm == squad_normalize(option):
            return letter
    return text.lower()


# --- free text (SQuAD) -----------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def squad_normalize(text: str) -> str:
    """Lowercase, drop punctuation and articles, collapse whitespace (the SQuAD evaluation's rule)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, gold: str) -> float:
    pred, ref = squad_normalize(prediction).split(), squad_normalize(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


# --- numbers (GSM8K) -------------------------------------------------------------------------

_NUMBER = re.compile(r"-?\$?\s*\d[\d,]*(?:\.\d+)?|-?\.\d+")


def last_number(text: str) -> Fraction | None:
    """The last number in `text` ('1,234', '$18.00', '-3', 'so 72 apples'), or None."""
    found = _NUMBER.findall(text)
    return _to_fraction(found[-1]) if found else None


def _to_fraction(token: str) -> Fraction | None:
    cleaned = token.replace("$", "").replace(",", "").replace(" ", "")
    try:
        return Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def format_number(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else str(float(value))
