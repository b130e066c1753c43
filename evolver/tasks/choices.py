"""Reading a chat model's free text as an answer: an option of a multiple-choice question, or a short span.

A chat model rarely writes exactly `Finish[B]`. It writes "B", "(B) plausible", "The answer is
B.", "Answer: implausible" or "I think it is plausible". In order, the first that applies wins:
1. `Finish[...]` (evolver.tasks.answers.finish_bracket): its content names an option by letter
   or text; content that names none is a wrong answer, not an unparsed one;
2. an answer phrase ("the answer is ...", "Answer: ...", "correct option is ..."), read up to
   the end of its sentence;
3. an output that is a letter alone, or starts with one as a label ("B", "(B)", "B. ...", "B) ...");
4. the options' texts: when exactly one option is named in the output (whole words, SQuAD-
   normalised, so "implausible" does not name "plausible"), that one.
Anything else is unparsed: the parse rate reports how often that happens.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from evolver.tasks.answers import SCAN_CHARS, finish_bracket, squad_normalize

LETTERS = string.ascii_uppercase
_PHRASE = re.compile(
    r"(?:the\s+)?(?:final\s+|correct\s+)?(?:answer|option|choice)\s*(?:is|would\s+be|:|-)\s*:?\s*(.+?)(?:\n|\.(?:\s|$)|$)",
    re.IGNORECASE)
_LABEL = re.compile(r"^\s*(?:\(([A-Za-z])\)|\[([A-Za-z])\]|([A-Z])[.):])(?:\s|$)")
_ALONE = re.compile(r"^\s*[(\[]?([A-Za-z])[)\]]?\s*\.?\s*$")


def letter_of(text: str, n: int) -> int | None:
    """The option index a text names by its letter alone ('B', '(b)', 'B.'), or None."""
    m = _ALONE.match(text)
    if m is None:
        return None
    i = LETTERS.find(m.group(1).upper())
    return i if 0 <= i < n else None


def named_options(text: str, choices: Sequence[str]) -> list[int]:
    """Indices of the options whose text appears in `text` as whole words, in order of first appearance."""
    norm = f" {squad_normalize(text)} "
    found: list[tuple[int, int]] = []
    for i, choice in enumerate(choices):
        c = squad_normalize(choice)
        if not c:
            continue
        pos = norm.find(f" {c} ")
        if pos >= 0:
            found.append((pos, i))
    # an option inside a longer named option ('book' in 'the black book') is not named on its own
    kept = [i for pos, i in found if not any(j != i and squad_normalize(choices[i]) in squad_normalize(choices[j])
                                             and fpos <= pos for fpos, j in found)]
    return sorted(set(kept), key=lambda i: next(p for p, j in found if j == i))


def pick_option(text: str, choices: Sequence[str], letters: bool) -> int | None:
    """The one option `text` names: by letter (when letters are shown), its whole text, or the only option named."""
    if letters:
        i = letter_of(text, len(choices))
        if i is not None:
            return i
    norm = squad_normalize(text)
    for i, choice in enumerate(choices):
        if norm and norm == squad_normalize(choice):
            return i
    named = named_options(text, choices)
    return named[0] if len(named) == 1 else None


def parse_choice(output: str, choices: Sequence[str], letters: bool) -> tuple[int | None, str | None]:
    """(option index or None, the answer as read or None when nothing reads as an answer)."""
    text = output[:SCAN_CHARS]
    raw = finish_bracket(text)
    if raw is not None:
        return pick_option(raw, choices, letters), raw
    for m in _PHRASE.finditer(text):
        span = _clean(m.group(1))
        i = pick_option(span, choices, letters)
        if i is not None:
            return i, span
    if letters:
        i = letter_of(text, len(choices))
        m = _LABEL.match(text)
        if i is None and m is not None:
            i = LETTERS.find(next(g for g in m.groups() if g).upper())
        if i is not None and 0 <= i < len(choices):
            return i, LETTERS[i]
    named = named_options(text, choices)
    if len(named) == 1:
        return named[0], choices[named[0]]
    return None, None


def parse_free(output: str, max_words: int = 12) -> str | None:
    """A short free-text answer: `Finish[...]`, an answer phrase, else a short last line; None when none."""
    text = output[:SCAN_CHARS]
    raw = finish_bracket(text)
    if raw is not None:
        return raw
    m = _PHRASE.search(text)
    if m is not None and _clean(m.group(1)):
        return _clean(m.group(1))
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if lines and len(lines[-1].split()) <= max_words:
        return lines[-1].rstrip(".").strip()
    return None


def _clean(span: str) -> str:
    return span.strip().strip("*`'\"").strip().rstrip(".").strip()
