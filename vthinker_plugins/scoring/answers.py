"""Rule-based answer equivalence (math-verify), for RL accuracy rewards and VTBench reasoning.

:func:`answers_match` decides whether an extracted prediction states the same answer as
the gold one: multiple-choice letters (``B``, ``(B)``, ``B.``, ``Option B``, ``B. 12 cm``),
the text of an option, plain strings (case and spacing ignored), and mathematics
compared by math-verify (numbers, fractions, LaTeX, tuples, units, degrees).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from functools import lru_cache

_LETTER_RE = re.compile(
    r"^\s*(?:(?:the\s+)?(?:correct\s+)?(?:option|choice|answer)(?:\s+is)?\s*[:：]?\s*)?"  # "Option B", "answer: B"
    r"(?:\(([A-Za-z])\)(?=$|[\s.:,])|([A-Za-z])(?=$|[.:,)]))",  # "(B) ...", "B", "B.", "B)", "B: 12"
    re.I,
)
_SPACE_RE = re.compile(r"\s+")


def _plain(text: str) -> str:
    """Case-, space- and decoration-insensitive form of a short answer."""
    text = text.strip().strip("$").strip()
    if text.startswith("\\boxed{") and text.endswith("}"):
        text = text[len("\\boxed{") : -1]
    text = re.sub(r"\\text\{([^{}]*)\}", r"\1", text)
    return _SPACE_RE.sub(" ", text).strip().rstrip(".").strip().casefold()


def choice_letter(text: str, n_options: int) -> str | None:
    """The option letter a short answer names (``B``, ``(b)``, ``B.``, ``Option B``, ``B) 12``), if any.

    Only letters within the first ``n_options`` count, so an answer like ``x`` is not a choice.
    """
    match = _LETTER_RE.match(text)
    if not match:
        return None
    letter = (match.group(1) or match.group(2)).upper()
    return letter if ord(letter) - ord("A") < n_options else None


def _wrap(text: str) -> str:
    # math-verify finds LaTeX inside $...$ or \boxed{}; a bare answer is put in a box so that
    # "\frac{1}{2}", "(3, -4)" and "30^\circ" are all read as mathematics. A percentage goes
    # between dollars instead: inside \boxed{} math-verify reads "%" as a comment and "25\%" as text.
    if "$" in text or "\\boxed" in text:
        return text
    return f"${text}$" if "%" in text else f"\\boxed{{{text}}}"


def _timeout() -> int | None:
    # math-verify's timeouts use SIGALRM, which only works in the main thread.
    return 5 if threading.current_thread() is threading.main_thread() else None


@lru_cache(maxsize=65536)
def math_equal(prediction: str, gold: str) -> bool:
    """math-verify equivalence of two short answers (gold first: the check is not symmetric)."""
    # Imported here: math-verify loads an ANTLR parser (slow start-up, and it must not clash with
    # other ANTLR users in processes that only need the MathVision rules).
    from math_verify import parse, verify

    seconds = _timeout()
    try:
        gold_parsed = parse(_wrap(gold), parsing_timeout=seconds)
        pred_parsed = parse(_wrap(prediction), parsing_timeout=seconds)
        if not gold_parsed or not pred_parsed:
            return False
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=seconds))
    except Exception:  # noqa: BLE001 -- math-verify raises on exotic input and on timeouts: not a match
        return False


def _same(prediction: str, gold: str) -> bool:
    plain_pred, plain_gold = _plain(prediction), _plain(gold)
    if not plain_pred or not plain_gold:
        return False
    if plain_pred == plain_gold:
        return True
    return math_equal(_latexish(prediction), _latexish(gold))


def _latexish(text: str) -> str:
    # Unicode a model may write, spelled the way math-verify's LaTeX parser understands.
    return text.strip().replace("°", "^{\\circ}").replace("√", "\\sqrt").replace("π", "\\pi").replace("−", "-")


def answers_match(prediction: str | None, gold: str | None, options: Sequence[str] | None = None) -> bool:
    """Whether ``prediction`` gives the same answer as ``gold``.

    With ``options`` (the option texts, in order A, B, ...), a gold letter is matched by
    the same letter or by that option's text, and a predicted letter by its option's
    text when the gold is written out. Without options, an upper-case letter gold is
    matched by a prediction naming that letter (``(B)``, ``B. 4``, ``Option B``).
    Everything else is compared as plain text and then with math-verify. An empty
    prediction never matches.
    """
    if prediction is None or gold is None:
        return False
    prediction, gold = str(prediction).strip(), str(gold).strip()
    if not prediction or not gold:
        return False
    options = [str(option) for option in (options or [])]
    if options:
        gold_letter = choice_letter(gold, len(options)) if len(_plain(gold)) <= 3 else None
        pred_letter = choice_letter(prediction, len(options))
        if gold_letter is not None:
            if pred_letter is not None:
                return pred_letter == gold_letter
            return _same(prediction, options[ord(gold_letter) - ord("A")])
        if pred_letter is not None and _same(options[ord(pred_letter) - ord("A")], gold):
            return True
    elif re.fullmatch(r"\(?[A-Z]\)?", gold):
        # A letter gold without option texts (choices written inside the question, as in VTBench).
        pred_letter = choice_letter(prediction, 26)
        if pred_letter is not None:
            return pred_letter == gold.strip("()")
    return _same(prediction, gold)
