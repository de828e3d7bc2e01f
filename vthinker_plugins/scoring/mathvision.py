"""MathVision (MATH-V) scoring: the official rules, written for this project.

Reported numbers must agree with the official evaluator row by row, so its three steps -- where the
answer is, the free-text extraction (:func:`extract_mathvision_answer`) and the equality test
(:func:`mathvision_correct`) -- are reimplemented with their quirks, and :func:`mathvision_report`
uses the official layout. math-verify is deliberately not part of the verdicts (an optional flag).

Design notes (the rules step by step): docs/scoring.md.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from vthinker_plugins.protocol import ANSWER_CLOSE, ANSWER_OPEN, strip_observations
from vthinker_plugins.scoring.latex_value import latex_value

LETTERS = "ABCDE"
ANSWER_PHRASES = ("the final answer is", "the answer is", "the correct answer is", "the answer should be")

_ANSWER_BLOCK_RE = re.compile(re.escape(ANSWER_OPEN) + r"(.*?)(?:" + re.escape(ANSWER_CLOSE) + r"|\Z)", re.S)

# Clean-up of the extracted answer, applied in this order (order matters: e.g. spaces go
# before "\\\\" is collapsed, and "\\text" goes before the unit names are removed).
_CLEANUP = (
    (" ", ""), ("\\,", ""), ("∞", "\\infty"), ("+\\infty", "\\infty"), ("\\\\", "\\"), ("\n", ""),
    ("\\text", ""), ("\\mbox", ""), ("bmatrix", "pmatrix"), ("\\left", ""), ("\\right", ""),
    ("^{\\circ}", ""), ("^\\circ", ""), ("{m}^3", ""), ("m^3", ""),
    ("{units}", ""), ("units", ""), ("{km}", ""), ("km", ""),
)  # fmt: skip
_LATEX_NOISE = (
    ("\n", ""), ("\\!", ""), ("\\\\", "\\"), ("tfrac", "frac"), ("dfrac", "frac"), ("\\left", ""),
    ("\\right", ""), ("^{\\circ}", ""), ("^\\circ", ""), ("\\$", ""), ("$", ""),
)  # fmt: skip
_CHOICE_PARENS = tuple((f"({c})", c) for c in "abcde") + tuple((f"{{{c}}}", c) for c in "abcde")


# --------------------------------------------------------------------------- extraction

def answer_region(response: str) -> str:
    """The text the free-text rules read: the last ``<answer>`` block when the model wrote one,
    else the whole response, stripped; sandbox outputs are never part of it."""
    visible = strip_observations(response or "")
    blocks = _ANSWER_BLOCK_RE.findall(visible)
    return (blocks[-1] if blocks else visible).strip()


def _letter_shortcut(text: str) -> str:
    """`` C.`` / `` (C).`` at the end, or a ``C`` / ``(C)`` / ``(C) C`` first line, is the letter C."""
    for letter in LETTERS:
        ends = (f" {letter}.", f" ({letter}).")
        starts = (f"{letter}\n", f"({letter})\n", f"({letter}) {letter}\n")
        if text.endswith(ends) or text.startswith(starts):
            text = letter
    return text


def _is_plain_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _trailing_number(text: str) -> str:
    """``... is 12.`` (or a bare ``12.``) → ``12``: the words after the last ``"is "`` form a number."""
    tail = text.rsplit("is ", 1)[-1].rstrip(".")
    return tail if _is_plain_number(tail) else text


def _after_phrases(text: str) -> str:
    """Without ``\\boxed``: cut after each answer phrase in turn; with several boxes keep the last."""
    boxes = text.count("oxed{")
    if boxes == 0:
        for phrase in ANSWER_PHRASES:
            for variant in (phrase, phrase.replace("the", "The")):
                found = variant in text
                text = text.rsplit(variant, 1)[-1].strip()
                if found:
                    text = text.split("\n", 1)[0].split(". ", 1)[0]
    elif boxes > 1:
        text = "\\boxed{" + text.rsplit("oxed{", 1)[-1]
    return text


def _brace_sqrt(text: str) -> str:
    """``\\sqrt3`` → ``\\sqrt{3}`` (one character after ``\\sqrt`` becomes its argument)."""
    head, *pieces = text.split("\\sqrt")
    out = [head]
    for piece in pieces:
        if piece and piece[0] != "{":
            out.append("\\sqrt{" + piece[0] + "}" + piece[1:])
        else:
            out.append("\\sqrt" + piece)
    return "".join(out)


def _brace_fracs(text: str) -> str:
    """``\\frac12`` → ``\\frac{1}{2}``; ``\\frac1{2}`` → ``\\frac{1}{2}``; hopeless input is returned as is."""
    head, *pieces = text.split("\\frac")
    out = [head]
    for piece in pieces:
        out.append("\\frac")
        if piece and piece[0] == "{":
            out.append(piece)
            continue
        if len(piece) < 2:
            return text
        first, second, rest = piece[0], piece[1], piece[2:]
        out.append("{" + first + "}" + ("{" + second + "}" if second != "{" else second) + rest)
    return "".join(out)


def _slash_to_frac(text: str) -> str:
    """``3/4`` (two plain integers) → ``\\frac{3}{4}``."""
    parts = text.split("/")
    if len(parts) != 2:
        return text
    try:
        a, b = int(parts[0]), int(parts[1])
    except ValueError:
        return text
    return f"\\frac{{{a}}}{{{b}}}" if text == f"{a}/{b}" else text


def _remove_latex_noise(text: str) -> str:
    for old, new in _LATEX_NOISE:
        text = text.replace(old, new)
    text = text.split("\\text{ ", 1)[0]  # a spaced \text{ unit } tail
    text = text.replace("\\%", "")
    text = text.replace(" .", " 0.").replace("{.", "{0.")
    if not text:
        return text
    if text[0] == ".":
        text = "0" + text
    if text.count("=") == 1:
        text = text.split("=")[1]
    if text.count("\\approx") == 1:
        text = text.split("\\approx")[1]
    if "sqrt" in text:
        text = _brace_sqrt(text)
    text = text.replace(" ", "")
    if "sqrt" in text:
        text = _brace_fracs(text)
    if text == "0.5":
        text = "\\frac{1}{2}"
    return _slash_to_frac(text)


def _final_value(text: str) -> str:
    """The boxed content (or everything), after the last ``=``/``\\approx``, cleaned of LaTeX noise."""
    text = text.lower().replace("{}", "")
    start, end = text.find("oxed{"), text.rfind("}")
    value = text[start + 5 : end] if start >= 0 and end >= start + 5 else text
    close, open_ = value.find("}"), value.find("{")
    if close >= 0 and (open_ < 0 or close < open_):
        value = value[:close]
    value = value.rsplit("=", 1)[-1].rsplit("\\approx", 1)[-1]
    for old, new in _CLEANUP:
        value = value.replace(old, new)
    return _remove_latex_noise(value)


def extract_mathvision_answer(response: str, options: Sequence[str] | None = None) -> str:
    """The answer MathVision's official rules read from a response (lower-case, cleaned).

    ``options`` is accepted for symmetry with :func:`mathvision_correct`; the official
    extraction does not look at the option texts (letters are always A-E).
    """
    text = _after_phrases(_trailing_number(_letter_shortcut(answer_region(response))))
    value = _final_value(text)
    for old, new in _CHOICE_PARENS:
        value = value.replace(old, new)
    return value.rstrip(".").lstrip(":").strip()


# --------------------------------------------------------------------------- equality

def _tuple_text(text: str, math_module: bool = False) -> str:
    """``(a, b)`` / ``[a, b]`` with every element evaluated and rounded to 2 decimals, as text;
    elements mentioning ``infty`` and the names ``a``/``-a`` stay; unevaluable → unchanged."""
    if len(text) < 2 or (text[0], text[-1]) not in (("(", ")"), ("[", "]")):
        return text
    elements = text[1:-1].split(",")
    if len(elements) < 2:
        return text
    out = []
    for element in elements:
        if "infty" in element or element in ("a", "-a"):
            out.append(element)
            continue
        value = latex_value(element, math_module=math_module)
        if value is None:
            return text
        out.append(str(round(value, 2)))
    return text[0] + ",".join(out) + text[-1]


def _rounded(text: str, math_module: bool = False) -> int | float | None:
    value = latex_value(text, math_module=math_module)
    if value is None:
        return None
    try:
        return round(value, 2)
    except (OverflowError, ValueError):
        return None


def official_equal(gold: str, answer: str, *, math_module: bool = False) -> bool:
    """MathVision's equality of an extracted answer with one gold string (see module doc);
    ``math_module``: evaluate as the MATH-V repository's evaluator does (:mod:`.latex_value`)."""
    gold, answer = gold.lower(), answer.lower()
    if not gold.replace(" ", "") or not answer.replace(" ", ""):
        return False
    if gold.strip() == answer.strip():
        return True
    gold, answer = _tuple_text(gold, math_module), _tuple_text(answer, math_module)
    if gold == answer:
        return True
    gold_value = _rounded(gold, math_module)
    if gold_value is None:
        return False
    answer_value = _rounded(answer, math_module)
    return answer_value is not None and gold_value == answer_value


def gold_option_text(gold: str, options: Sequence[str] | None) -> str:
    """The text of the gold option for a multiple-choice row (gold letter A-E); ``""`` otherwise."""
    if not options:
        return ""
    letter = str(gold).strip()
    if len(letter) == 1 and "A" <= letter <= "Z" and ord(letter) - ord("A") < len(options):
        return str(options[ord(letter) - ord("A")])
    return ""


def option_equal(option: str, answer: str) -> bool:
    """Whether an extracted answer states the text of an option: :func:`official_equal`, or equal
    as the MATH-V repository's evaluator reads LaTeX option texts (``$2 \\sqrt{13}$``, ``$1: 4: 9$``)."""
    return official_equal(option, answer) or official_equal(option, answer, math_module=True)


def mathvision_correct(extracted: str, gold: str, options: Sequence[str] | None = None) -> bool:
    """Whether an extracted answer is right: equal to the gold answer or to the gold option's text."""
    gold = str(gold)
    return official_equal(gold, extracted) or option_equal(gold_option_text(gold, options), extracted)


def score_mathvision(
    response: str, gold: str, options: Sequence[str] | None = None, *, math_verify: bool = False
) -> dict[str, Any]:
    """Extract and judge one response: ``{"extracted", "correct", "correct_math_verify"}``.

    ``correct`` is the official verdict. ``correct_math_verify`` additionally accepts answers
    math-verify proves equivalent (e.g. ``2\\sqrt{3}`` for ``\\sqrt{12}``), for analysis only: it is
    ``True`` where ``correct`` is, and otherwise computed only with ``math_verify=True`` (``None``
    when not computed), so the official verdict never pays for math-verify.
    """
    extracted = extract_mathvision_answer(response, options)
    correct = mathvision_correct(extracted, gold, options)
    lenient: bool | None = True if correct else None
    if not correct and math_verify:
        from vthinker_plugins.scoring.answers import answers_match

        lenient = answers_match(answer_region(response), str(gold), list(options or []))
    return {"extracted": extracted, "correct": correct, "correct_math_verify": lenient}


# --------------------------------------------------------------------------- report

def _fraction_text(hits: int, total: int) -> str:
    return f"{hits}/{total}={100 * hits / total:.2f}%"


def mathvision_report(rows: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Accuracy in the official layout from rows carrying ``correct``, ``level`` and ``subject``.

    Keys: ``-all``, ``-level{L}``, ``{subject}``, ``{subject}_level{L}``, ``-level{L}_{subject}``;
    values ``hits/total=pct%``. Rows whose ``correct`` is ``None`` (unscored) count as wrong,
    as a missing prediction does in the official evaluation.
    """
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])

    def add(key: str, hit: bool) -> None:
        counts[key][0] += int(hit)
        counts[key][1] += 1

    for row in rows:
        hit = bool(row.get("correct"))
        level, subject = row.get("level"), row.get("subject")
        add("-all", hit)
        if level is not None:
            add(f"-level{level}", hit)
        if subject is not None:
            add(str(subject), hit)
        if level is not None and subject is not None:
            add(f"{subject}_level{level}", hit)
            add(f"-level{level}_{subject}", hit)

    def order(key: str) -> tuple[int, str]:
        if key == "-all":
            return 0, key
        if key.startswith("-level"):
            return (1 if "_" not in key else 3), key
        return 2, key

    return {key: _fraction_text(*counts[key]) for key in sorted(counts, key=order)}
