"""Time and agreement: our MathVision scorer vs lmms-eval's built-in one, on 3,040 responses per set.

Two sets of responses, both built from the real ``test.jsonl`` answers (deterministic per row):

- **model-style** (the speed target): chain-of-thought text of a few hundred words with the
  final answer as a model writes it (``\\boxed{}``, "the answer is ...", ``<think>``/``<answer>``
  blocks, code cells with sandbox outputs), right or wrong (about a third right), option
  letters and option texts;
- **short**: the bare answer and its usual dresses (``<answer>``, ``\\boxed{}``, "the answer
  is", letters, option texts, LaTeX / decimal forms, units, tuples, wrong answers); these also
  feed ``tests/scoring/make_official_verdicts.py``.

Ours is the default path users hit (``scoring.score`` -> :func:`score_mathvision`, official
rules, no math-verify); lmms-eval's gets what the official evaluator is given for a V-Thinker
response (the ``<answer>`` content when there is one). Both are timed in the same run; the
script prints rows/s and the ratio. ``--math-verify`` also times ours with the analysis flag.

Usage::

    python benchmarks/score_mathvision.py [--data ../shared/data/mathvision] [--show 10] [--math-verify]

lmms-eval's scorer imports ``latex2sympy2``, whose parser needs ANTLR runtime 4.7.2; the
eval environment pins 4.11 (for VLMEvalKit), where it cannot load. Then this script
substitutes ``latex2sympy2_extended.latex2sympy`` (the maintained fork) and says so; put
an ANTLR 4.7.2 runtime first on ``PYTHONPATH`` to measure against the original parser.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import random
import sys
import time
import types
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vthinker_plugins.scoring.mathvision import answer_region, score_mathvision  # noqa: E402

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


# --------------------------------------------------------------------------- model-style responses

_STEPS = (
    "First, I look at the figure carefully and note the given quantities.",
    "The figure shows {a} equal parts, and each part measures {b} units.",
    "Let x be the unknown length. From the diagram, x + {a} = {c}, so x = {d}.",
    "Using the Pythagorean theorem, $a^2 + b^2 = c^2$, we get $\\sqrt{{{a}^2 + {b}^2}}$.",
    "Counting row by row gives {a} + {b} + {c} = {e} pieces in total.",
    "The area of the shaded region is the difference of the two areas: ${c} - {a} = {d}$.",
    "Checking each option against this condition rules out the ones that do not fit.",
    "By symmetry the two halves are equal, so we only need one of them and then double it.",
    "Rotating the shape by 90 degrees maps the top edge onto the right edge.",
    "Hmm, let me double-check the previous step: the numbers are consistent.",
)
_CODE = (
    "<code>\n```python\nfrom PIL import Image, ImageDraw\nimg = Image.open(image_path).convert('RGB')\n"
    "ImageDraw.Draw(img).line((10, 10, 120, 90), fill='red', width=3)\nimg.save(processed_path)\n"
    "print(processed_path)\n```\n</code>\n<sandbox_output><image></sandbox_output>\n"
)


def _reasoning(rng: random.Random) -> str:
    numbers = {k: rng.randint(2, 40) for k in "abcde"}
    steps = [rng.choice(_STEPS).format(**numbers) for _ in range(rng.randint(4, 9))]
    return " ".join(steps)


def _model_response(said: str, rng: random.Random) -> str:
    """A chain of thought ending with ``said`` the way a model writes its final answer."""
    cot = _reasoning(rng)
    style = rng.randrange(7)
    if style == 0:
        return f"{cot}\n\nTherefore, the final answer is $\\boxed{{{said}}}$."
    if style == 1:
        return f"{cot}\nSo the answer is {said}."
    if style == 2:
        return f"<think>{cot}</think>\n<answer>{said}</answer>"
    if style == 3:
        more = _reasoning(rng)
        return f"<think>{cot}\n{_CODE}The marked figure confirms it. {more}</think><answer>\\boxed{{{said}}}</answer>"
    if style == 4:
        return f"{cot} Hence the result is \\boxed{{{said}}}, which I verify once more: \\boxed{{{said}}}."
    if style == 5:
        return f"{cot}\n\n**Answer:** {said}"
    return f"<think>{cot}</think>\nThe correct answer is {said}."


def build_model_responses(rows: list[dict], seed: int = 0) -> list[str]:
    """One model-style response per row: right about a third of the time, else a wrong answer."""
    responses = []
    for row in rows:
        rng = random.Random(f"model-{seed}-{row['id']}")
        gold, options = str(row["answer"]), list(row.get("options") or [])
        choice = bool(options) and gold in LETTERS[: len(options)]
        if rng.random() < 0.35:
            said = gold
            if choice and rng.random() < 0.3:
                said = options[ord(gold) - ord("A")].strip("$")  # the option text instead of the letter
        elif choice:
            said = rng.choice([c for c in LETTERS[: len(options)] if c != gold])
        else:
            try:
                said = f"{float(gold) + rng.choice([1, 2, -1, 10]):g}"
            except ValueError:
                said = rng.choice(["7", "\\frac{3}{4}", "2\\sqrt{2}", "12"])
        responses.append(_model_response(said, rng))
    return responses


# --------------------------------------------------------------------------- timing


class _CountWarnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def _time_ours(rows: list[dict], responses: list[str], math_verify: bool) -> tuple[list[bool], float, int]:
    """Our default scoring path on every response: verdicts, seconds, warnings logged or issued."""
    counter = _CountWarnings()
    logging.getLogger().addHandler(counter)
    try:
        with warnings.catch_warnings(record=True) as issued:
            warnings.simplefilter("always")
            start = time.perf_counter()
            verdicts = [
                bool(score_mathvision(resp, str(row["answer"]), row["options"], math_verify=math_verify)["correct"])
                for row, resp in zip(rows, responses, strict=True)
            ]
            seconds = time.perf_counter() - start
    finally:
        logging.getLogger().removeHandler(counter)
    return verdicts, seconds, counter.count + len(issued)


def _time_theirs(reference, rows: list[dict], responses: list[str]) -> tuple[list[bool], float]:
    with contextlib.redirect_stdout(io.StringIO()):  # its "Warning: input is not string" prints
        start = time.perf_counter()
        verdicts = [
            bool(reference(row, [answer_region(resp)])["mathvision_standard_eval"]["scores"][0])
            for row, resp in zip(rows, responses, strict=True)
        ]
        seconds = time.perf_counter() - start
    return verdicts, seconds


def _report(name: str, rows: list[dict], responses: list[str], reference, args: argparse.Namespace) -> None:
    ours, ours_s, noise = _time_ours(rows, responses, math_verify=False)
    theirs, theirs_s = _time_theirs(reference, rows, responses)
    n = len(rows)
    agree = sum(a == b for a, b in zip(ours, theirs, strict=True))
    print(f"\n[{name} responses: {n}, mean {sum(map(len, responses)) / n:.0f} chars]")
    print(f"  ours (score_mathvision, default): {n / ours_s:9.0f} rows/s   accuracy {100 * sum(ours) / n:.2f}%"
          f"   warnings: {noise}")
    print(f"  lmms-eval built-in:               {n / theirs_s:9.0f} rows/s   accuracy {100 * sum(theirs) / n:.2f}%")
    print(f"  ratio (ours / lmms-eval):         {theirs_s / ours_s:9.1f}x")
    if args.math_verify:
        _, mv_s, mv_noise = _time_ours(rows, responses, math_verify=True)
        print(f"  ours with math_verify=True:       {n / mv_s:9.0f} rows/s   warnings: {mv_noise}")
    print(f"  row agreement:                    {agree}/{n} = {100 * agree / n:.2f}%")
    shown = 0
    for row, resp, a, b in zip(rows, responses, ours, theirs, strict=True):
        if a != b and shown < args.show:
            shown += 1
            print(f"    disagree id={row['id']} gold={row['answer']!r} ours={a} lmms-eval={b} "
                  f"answer={answer_region(resp)[-80:]!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    shared = Path(os.environ.get("VTHINKER_SHARED", ROOT.parent / "shared"))
    parser.add_argument("--data", default=str(shared / "data" / "mathvision"))
    parser.add_argument("--split", default="test", choices=["test", "testmini"])
    parser.add_argument("--show", type=int, default=5, help="print this many disagreements per set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--math-verify", action="store_true", help="also time ours with the math-verify flag")
    args = parser.parse_args(argv)

    path = Path(args.data) / f"{args.split}.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    reference, note = load_reference()
    print(f"data:             {path} ({len(rows)} rows)")
    print(f"reference parser: {note}")
    _report("model-style", rows, build_model_responses(rows, args.seed), reference, args)
    _report("short", rows, build_predictions(rows, args.seed), reference, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
