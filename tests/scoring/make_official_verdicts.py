"""Record the official MathVision verdicts that ``test_mathvision_official.py`` checks ours against.

The official MATH-V rules as shipped in lmms-eval (``lmms_eval/tasks/mathvision``) need
``latex2sympy2`` with the ANTLR 4.7.2 runtime, which cannot be installed beside the eval
environment's ANTLR 4.11. To re-record, unpack ``antlr4-python3-runtime==4.7.2`` (its
``src/antlr4`` folder) somewhere and run, from the repository root::

    PYTHONPATH=/path/to/antlr-4.7.2 .venvs/main/bin/python tests/scoring/make_official_verdicts.py

Inputs: the benchmark's realistic responses for every ``test.jsonl`` row, plus random
compositions of the phrases, LaTeX and letters the rules react to (seeded). Each line
stores the text given to the official scorer and its verdict.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

PIECES = [
    "The answer is ", "the answer is ", "The final answer is ", "the correct answer is ", "The answer should be ",
    "\\boxed{", "}", "{", "{}", "$", "\n", ". ", ".", " ", "is ", "(", ")", "=", "\\approx", "\\frac{", "}{",
    "\\sqrt", "\\text{ cm}", "\\text{", "cm", "km", "m^3", "units", "^\\circ", "^{\\circ}", "\\left(", "\\right)",
    "\\%", "%", ",", ":", "\\dfrac", "\\\\", "\\,", "\\!", "0.5", ".5", "1", "2", "3", "12", "3.14", "7/3", "-",
    "A", "B", "C", "D", "E", "(A)", "(B)", "(C)", " C.", " (D).", "a", "x", "so ", "Therefore ", "\\pi", "∞",
    "\\infty", "(1,2)", "[3, 4]", "\\tfrac", "\\mbox{", "bmatrix", "{m}^3", "{km}", "(a)", "{b}", "this ", "\\$",
    "-a", "0", "25", "oxed{", "1,000", "2^{10}", "\\times", "\\cdot", "r", "mm", "inches",
]  # fmt: skip


def main() -> None:
    from score_mathvision import build_predictions, load_reference

    from vthinker_plugins.scoring.mathvision import answer_region

    reference, note = load_reference()
    if "substituted" in note:
        raise SystemExit("the original latex2sympy2 did not load: put an ANTLR 4.7.2 runtime first on PYTHONPATH")
    data = ROOT.parent / "shared" / "data" / "mathvision" / "test.jsonl"
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]
    inputs = [(row, answer_region(pred)) for row, pred in zip(rows, build_predictions(rows), strict=True)]
    rng = random.Random(2026)
    for _ in range(3000):
        row = rng.choice(rows)
        gold = str(row["answer"])
        parts = [rng.choice(PIECES) for _ in range(rng.randint(1, 9))]
        if rng.random() < 0.5:
            said = row["options"][ord(gold) - 65] if row["options"] and rng.random() < 0.3 else gold
            parts.insert(rng.randrange(len(parts) + 1), said)
        inputs.append((row, "".join(parts)))
    out = Path(__file__).parent / "data" / "official_verdicts.jsonl"
    with out.open("w", encoding="utf-8") as fh:
        for row, text in inputs:
            verdict = bool(reference(row, [text])["mathvision_standard_eval"]["scores"][0])
            fh.write(json.dumps({"id": row["id"], "input": text, "correct": verdict}, ensure_ascii=False) + "\n")
    print(f"wrote {len(inputs)} verdicts to {out}")


if __name__ == "__main__":
    main()
