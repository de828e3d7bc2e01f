"""Time and agreement: our MathVision scorer vs lmms-eval's built-in one, on 3,040 predictions.

Predictions are synthetic but realistic, built from the real ``test.jsonl`` answers
(deterministic per row): the bare answer, ``<answer>`` blocks, ``\\boxed{}``, "the answer
is ...", option letters in their usual dresses, option texts, equivalent LaTeX / decimal
forms, units, tuples and wrong answers. Both scorers see the same text: lmms-eval's
gets what the official evaluator is given for a V-Thinker response (the ``<answer>``
content when there is one), ours the full response.

Usage::

    python benchmarks/score_mathvision.py [--data ../shared/data/mathvision] [--show 10]

lmms-eval's scorer imports ``latex2sympy2``, whose parser needs ANTLR runtime 4.7.2; the
eval environment pins 4.11 (for VLMEvalKit), where it cannot load. Then this script
substitutes ``latex2sympy2_extended.latex2sympy`` (the maintained fork) and says so; put
an ANTLR 4.7.2 runtime first on ``PYTHONPATH`` to measure against the original parser.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vthinker_plugins.scoring.mathvision import (  # noqa: E402
    answer_region,
    extract_mathvision_answer,
    mathvision_correct,
)

LETTERS = "ABCDE"


def load_reference():
    """lmms-eval's MathVision ``process_results`` and a note on which LaTeX parser it runs on."""
    note = "latex2sympy2 (original, ANTLR 4.7.2)"
    try:
        import latex2sympy2  # noqa: F401
    except Exception:  # noqa: BLE001 -- the ANTLR version check raises a bare Exception
        from latex2sympy2_extended import latex2sympy

        shim = types.ModuleType("latex2sympy2")
        shim.latex2sympy = latex2sympy
        sys.modules["latex2sympy2"] = shim
        note = "latex2sympy2_extended (substituted: original latex2sympy2 cannot load with ANTLR 4.11)"
    from lmms_eval.tasks.mathvision.utils import mathvision_process_results

    return mathvision_process_results, note


def _free_variants(gold: str, rng: random.Random) -> list[str]:
    g = gold.strip()
    variants = [
        g,
        f"The answer is {g}.",
        f"So the final answer is ${g}$.",
        f"\\boxed{{{g}}}",
        f"Therefore $x = {g}$",
        f"<think>the area works out.</think><answer>{g}</answer>",
        f"<think>compute</think><answer>\\boxed{{{g}}}</answer>",
        f"{g} cm",
        f"The answer should be {g}. Let me double-check: yes.",
    ]
    try:
        value = float(g)
        variants += [
            f"{value:.1f}",
            f"The answer is {value + rng.choice([1, 2, -1, 10])}.",
            f"<answer>{value * 2:g}</answer>",
            f"\\approx {value:.3f}",
            f"{g}^\\circ",
            f"{g} \\text{{ km}}",
            f"<answer>{g}\\%</answer>",
        ]
        if value == int(value) and value > 0:
            variants += [f"\\frac{{{2 * int(value)}}}{{2}}", f"{int(value)}.00", f"{int(value):,}"]
    except ValueError:
        variants += [
            g.replace("\\frac", "\\dfrac"),
            g.replace("$", "").replace(" ", ""),
            f"<answer>{g.replace('$', '')}</answer>",
            "<answer>7</answer>",
        ]
    return variants


def _choice_variants(gold: str, options: list[str], rng: random.Random) -> list[str]:
    wrong = rng.choice([c for c in LETTERS[: len(options)] if c != gold])
    text = options[ord(gold) - ord("A")]
    return [
        gold,
        f"({gold})\nBecause the figure is symmetric.",
        f"Looking at the options, the answer is {gold}.",
        f"The correct answer is ({gold}).",
        f"\\boxed{{{gold}}}",
        f"<think>check each option</think><answer>{gold}</answer>",
        f"<think>check</think><answer>({gold})</answer>",
        f"<answer>{text}</answer>",
        f"The answer is {text}",
        f"Counting again gives {wrong}.",
        f"<answer>{wrong}</answer>",
        f"I think it is {gold.lower()}",
        f"Answer: {gold}",
        f"{gold}. {text}",
    ]


def build_predictions(rows: list[dict], seed: int = 0) -> list[str]:
    predictions = []
    for row in rows:
        rng = random.Random(f"{seed}-{row['id']}")
        gold, options = str(row["answer"]), list(row.get("options") or [])
        if options and gold in LETTERS[: len(options)]:
            variants = _choice_variants(gold, options, rng)
        else:
            variants = _free_variants(gold, rng)
        predictions.append(rng.choice(variants))
    return predictions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mathvision"))
    parser.add_argument("--split", default="test", choices=["test", "testmini"])
    parser.add_argument("--show", type=int, default=10, help="print this many disagreements")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    path = Path(args.data) / f"{args.split}.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    predictions = build_predictions(rows, args.seed)
    reference, note = load_reference()

    start = time.perf_counter()
    ours = [
        mathvision_correct(extract_mathvision_answer(pred, row["options"]), str(row["answer"]), row["options"])
        for row, pred in zip(rows, predictions, strict=True)
    ]
    ours_s = time.perf_counter() - start

    start = time.perf_counter()
    theirs = [
        bool(reference(row, [answer_region(pred)])["mathvision_standard_eval"]["scores"][0])
        for row, pred in zip(rows, predictions, strict=True)
    ]
    theirs_s = time.perf_counter() - start

    agree = sum(a == b for a, b in zip(ours, theirs, strict=True))
    print(f"predictions:            {len(rows)} ({path})")
    print(f"reference parser:       {note}")
    print(f"ours (vthinker):        {ours_s:.3f} s   accuracy {100 * sum(ours) / len(ours):.2f}%")
    print(f"lmms-eval built-in:     {theirs_s:.3f} s   accuracy {100 * sum(theirs) / len(theirs):.2f}%")
    print(f"speed-up (theirs/ours): {theirs_s / ours_s:.1f}x")
    print(f"row agreement:          {agree}/{len(rows)} = {100 * agree / len(rows):.2f}%")
    shown = 0
    for row, pred, a, b in zip(rows, predictions, ours, theirs, strict=True):
        if a != b and shown < args.show:
            shown += 1
            print(f"  disagree id={row['id']} gold={row['answer']!r} ours={a} lmms-eval={b} pred={pred!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
