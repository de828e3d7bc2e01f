"""We-Math scoring: the answer rule and the four-dimensional metrics, written for this project.

:func:`extract_wemath_answer` reads the choice (``A``-``H``) as the We-Math evaluation does with exact
matching; :func:`wemath_scores` judges each multi-step problem together with its one-step problems
(complete mastery, inadequate generalization, insufficient knowledge, rote memorization; strict and
loose), and :func:`wemath_report` gives them in the official layout.

Design notes (the rules and formulas): docs/scoring.md.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from vthinker_plugins.scoring.mathvision import answer_region

LETTERS = "ABCDEFGH"
_NOISE_RE = re.compile(r"[<>:.]")
_STEP_KINDS = (2, 3)


def extract_wemath_answer(response: str) -> str | None:
    """The option letter a response chooses under We-Math's exact-matching rule (module doc), or ``None``."""
    text = answer_region(response).split("Answer")[-1].strip()
    text = _NOISE_RE.sub("", text).strip()
    return text[0] if text and text[0] in LETTERS else None


def score_wemath(response: str, gold: str) -> dict[str, Any]:
    """``{"extracted", "correct"}`` for one response."""
    extracted = extract_wemath_answer(response)
    return {"extracted": extracted, "correct": extracted is not None and extracted == str(gold).strip()}


# --------------------------------------------------------------------------- groups

Joker = bool | None  # a part's verdict; None: the part is missing (or unscored)


def _groups(rows: list[Mapping[str, Any]], steps: int) -> list[tuple[list[Joker], Joker]]:
    """(step verdicts, multi-step verdict) per group of ``steps``-step problems, joined on the group id
    from each first-step row in order (several rows of one part give one combination each)."""
    kind = f"{steps}steps"
    first: list[tuple[str, Joker]] = []
    parts: dict[str, dict[str, list[Joker]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        key = str(row.get("step") or "")
        if kind not in key:
            continue
        verdict = row.get("correct")
        joker = None if verdict is None else bool(verdict)
        group = str(row.get("group"))
        if key == f"{kind}_1":
            first.append((group, joker))
        parts[key][group].append(joker)
    combos = []
    for group, joker in first:
        others = [parts[f"{kind}_{i}"].get(group) or [None] for i in range(2, steps + 1)]
        multis = parts[f"{kind}_multi"].get(group) or [None]
        for *rest, multi in itertools.product(*others, multis):
            combos.append(([joker, *rest], multi))
    return combos


def _classify(step_jokers: list[Joker], multi: Joker) -> dict[str, bool]:
    all_right = all(j is True for j in step_jokers)
    any_right = any(j is True for j in step_jokers)
    all_wrong = all(j is False for j in step_jokers)
    any_wrong = any(j is False for j in step_jokers)
    right, wrong = multi is True, multi is False
    return {
        "IK": any_wrong and wrong,
        "IG": all_right and wrong,
        "CM_strict": all_right and right,
        "CM_loose": any_right and right,
        "RM_strict": any_wrong and right,
        "RM_loose": all_wrong and right,
    }


def _mean(values: Iterable[Joker]) -> float | None:
    known = [v for v in values if v is not None]
    return None if not known else sum(known) / len(known)


def wemath_scores(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts, rates and scores of the four dimensions (module doc) from verdict rows carrying
    ``correct``, ``group`` (We-Math ``ID``) and ``step`` (We-Math ``key``).

    Keys: ``groups`` (N); ``incomplete_groups`` (groups with a part missing or unscored, e.g. after
    ``--limit``: they count only in the conditions their known parts decide); the counts ``IK``,
    ``IG``, ``CM_strict``, ``CM_loose``, ``RM_strict``, ``RM_loose``; ``<count>_rate`` (fractions;
    RM relative to CM + RM); ``score_strict``, ``score_loose``, ``one_step``, ``two_step``,
    ``three_step`` (fractions; ``None`` when undefined).
    """
    rows = list(rows)
    by_kind = {steps: _groups(rows, steps) for steps in _STEP_KINDS}
    combos = by_kind[2] + by_kind[3]
    n = len(combos)
    counts = dict.fromkeys(("IK", "IG", "CM_strict", "CM_loose", "RM_strict", "RM_loose"), 0)
    for step_jokers, multi in combos:
        for name, hit in _classify(step_jokers, multi).items():
            counts[name] += hit
    incomplete = sum(None in (*step_jokers, multi) for step_jokers, multi in combos)
    out: dict[str, Any] = {"groups": n, "incomplete_groups": incomplete, **counts}
    for name in ("IK", "IG", "CM_strict", "CM_loose"):
        out[f"{name}_rate"] = None if n == 0 else counts[name] / n
    for variant in ("strict", "loose"):
        rm, cm = counts[f"RM_{variant}"], counts[f"CM_{variant}"]
        out[f"RM_{variant}_rate"] = None if rm + cm == 0 else rm / (rm + cm)
        out[f"score_{variant}"] = None if n == 0 else (n - 0.5 * counts["IG"] - rm - counts["IK"]) / n
    out["one_step"] = _mean(j for step_jokers, _ in combos for j in step_jokers)
    out["two_step"] = _mean(multi for _, multi in by_kind[2])
    out["three_step"] = _mean(multi for _, multi in by_kind[3])
    return out


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def wemath_report(rows: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """:func:`wemath_scores` in the official layout: ``Score (Strict)``, ``InsufficientKnowledge (Strict)``
    (``"rate% (count)"``), ... ``RoteMemorization (Loose)``, then ``One-step(S1)``, ``Two-step(S2)``,
    ``Three-step(S3)``; percentages with two decimals, ``n/a`` where undefined."""
    s = wemath_scores(rows)
    report: dict[str, str] = {}
    for variant, title in (("strict", "Strict"), ("loose", "Loose")):
        report[f"Score ({title})"] = _pct(s[f"score_{variant}"])
        for name, key in (("InsufficientKnowledge", "IK"), ("InadequateGeneralization", "IG"),
                          ("CompleteMastery", f"CM_{variant}"), ("RoteMemorization", f"RM_{variant}")):
            report[f"{name} ({title})"] = f"{_pct(s[f'{key}_rate'])} ({s[key]})"
    report["One-step(S1)"] = _pct(s["one_step"])
    report["Two-step(S2)"] = _pct(s["two_step"])
    report["Three-step(S3)"] = _pct(s["three_step"])
    return report
