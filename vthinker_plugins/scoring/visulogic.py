"""VisuLogic scoring: the answer rule and the per-category accuracy, written for this project.

:func:`extract_visulogic_answer` reads the choice (``A``-``D``) from the last ``<answer>`` block the
way the VisuLogic evaluation does (a boxed letter, then answer phrases); a problem is right when the
choice is the gold letter. :func:`visulogic_report` gives the accuracy overall and per reasoning
category, in the official order.

Design notes (the extraction rule in full): docs/scoring.md.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from vthinker_plugins.model_family import ENDOFTEXT
from vthinker_plugins.scoring.mathvision import answer_region

LETTERS = ("A", "B", "C", "D")
#: The reasoning categories in the order of the official report (others follow, alphabetically).
CATEGORIES = ("Quantitative Reasoning", "Spatial Reasoning", "Positional Reasoning", "Attribute Reasoning",
              "Stylistic Reasoning", "Other")
_BOX_EVENTS_RE = re.compile(r"\\boxed\{|[^\\]\}")
_BOX_NOISE = ("\\text{", "\\rm{", "\\mathbf{", "$")
_PHRASES = (
    "answer:", "the final answer is:", "the answer is option:", "the answer is:", "the correct answer is option:",
    "the correct answer is:", "the answer should be:", "the final answer is", "the answer is option", "the answer is",
    "the correct answer is option", "the correct answer is", "the answer should be",
)


def _boxed_or_whole(text: str) -> str:
    if len(text) < 3:
        return text
    depth: list[int] = []
    last = None
    for match in _BOX_EVENTS_RE.finditer(text):
        if match.group().endswith("\\boxed{"):
            depth.append(match.end())
        elif depth:
            start = depth.pop()
            if not depth:
                last = text[start : match.start() + 1]
    if last is None:
        return text
    for noise in _BOX_NOISE:
        last = last.replace(noise, "")
    last = last.replace("}", "")
    if "letter" in last.lower() or "or" in last or len(last) > 2:
        return text
    return last


def _phrase_choice(text: str) -> str | None:
    text = text.replace(ENDOFTEXT, "")
    for letter in LETTERS:
        if text.endswith((f" {letter}.", f" ({letter}).")) or text.startswith(
                (f"{letter}\n", f"({letter})\n", f"({letter}) {letter}\n")):
            return letter
    lower = text.lower()
    for phrase in _PHRASES:
        if phrase in lower:
            lower = lower.split(phrase)[-1].strip().split("\n")[0].split(".")[0]
            if lower.upper() in LETTERS:
                return lower.upper()
    return text if text in LETTERS else None  # e.g. "B<|endoftext|>"


def extract_visulogic_answer(response: str) -> str | None:
    """The option letter a response chooses under VisuLogic's rule (module doc), or ``None``."""
    text = answer_region(response)
    boxed = _boxed_or_whole(text).strip()
    if boxed in LETTERS:
        return boxed
    return _phrase_choice(text)


def score_visulogic(response: str, gold: str) -> dict[str, Any]:
    """``{"extracted", "correct"}`` for one response."""
    extracted = extract_visulogic_answer(response)
    return {"extracted": extracted, "correct": extracted is not None and extracted == str(gold)}


def visulogic_report(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{"Overall": {"tot", "hit", "acc"}, <category>: {...}, ...}`` from rows carrying ``correct`` and
    ``category``; ``acc`` in percent (unrounded), categories in the official order, those without rows left
    out. Unscored rows (``correct`` ``None``) count as wrong."""
    tot: dict[str, int] = defaultdict(int)
    hit: dict[str, int] = defaultdict(int)
    for row in rows:
        right = bool(row.get("correct"))
        for name in ("Overall", str(row.get("category"))):
            tot[name] += 1
            hit[name] += right
    order = ["Overall", *CATEGORIES, *sorted(set(tot) - {"Overall", *CATEGORIES})]
    return {name: {"tot": tot[name], "hit": hit[name], "acc": 100 * hit[name] / tot[name]}
            for name in order if tot[name]}
