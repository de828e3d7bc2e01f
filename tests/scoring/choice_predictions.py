"""Predictions for the differential tests of the multiple-choice scorers (We-Math, VisuLogic).

Every template is written with the gold letter ``{g}`` (right answers) or another letter ``{w}``
(wrong ones); the kinds cover what models write: bare letters, answer phrases, boxes, option
texts, V-Thinker's ``<think>``/``<answer>`` blocks with code and sandbox output, and malformed
output (empty, cut off, lower case, two letters, unclosed tags, LaTeX decoration).
"""

from __future__ import annotations

import random

_CODE = ("<code>\n```python\nfrom PIL import Image\nimg = Image.open(image_path)\nimg.save(processed_path)\n"
         "print(processed_path)\n```\n</code>\n<sandbox_output>Answer: {w}<image></sandbox_output>\n")

TEMPLATES = {
    "right": [
        "{g}", "Answer: {g}", "Answer:{g}", "Answer: ({g})", "The answer is {g}.", "The correct answer is {g}.",
        "({g})\nThe figure shows it.", "{g}\nBecause of symmetry.", "\\boxed{{{g}}}", "Answer: \\boxed{{{g}}}",
        "So the final answer is \\boxed{{{g}}}.", "the answer is option {g}", "The answer should be {g}",
        "{g}. 12 cm", "Final Answer: {g}", "After checking, the best match is {g}.", "\\boxed{{\\text{{{g}}}}}",
        "$\\boxed{{{g}}}$",
    ],
    "wrong": [
        "{w}", "Answer: {w}", "The answer is {w}.", "\\boxed{{{w}}}", "({w})\nIt fits.", "Answer: ({w})",
        "I think it is {w}.",
    ],
    "tagged": [
        "<think>Let me look at the figure.</think><answer>{g}</answer>",
        "<think>The answer is {w} at first sight, but checking again.</think><answer>{g}</answer>",
        "<think>I mark the figure.\n" + _CODE + "The mark shows it.</think><answer>{g}</answer>",
        "<think>I mark the figure.\n" + _CODE + "</think><answer>Answer: {g}</answer>",
        "<think>check</think><answer>\\boxed{{{g}}}</answer>",
        "<think>check</think><answer>({g})</answer>",
        "<think>check</think><answer>{w}</answer>",
        "<think>first {g}</think><answer>{w}</answer> retry <answer>{g}</answer>",
        "<think>check</think>\nAnswer: {g}",
        "<think>check</think>{g}",
        "<think>check</think><answer>{g}",
        "<answer>The answer is {g}</answer>",
        "<answer>{g}. The shaded part</answer>",
    ],
    "malformed": [
        "", "   ", "Answer:", "The answer is", "I cannot determine the answer.", "<answer></answer>", "<answer>",
        "{gl}", "answer: {gl}", "Answer: {gl}", "\\boxed{{{g} or {w}}}", "\\boxed{{}}", "\\boxed{{{g}{w}}}",
        "{g}{w}", "{g}\n{w}", "Answer: {g}. Answer: {w}", "<|endoftext|>", "{g}<|endoftext|>", "Answer: Z",
        "The answer is ({g})", "\\boxed{{\\boxed{{{g}}}}}", "\\boxed{{{g}}} \\boxed{{{w}}}", "Option {g}",
        "<answer>{g}</answer", "{g}.", " {g}.", "the answer is: {gl}.", "Answer {g}", "Answer>{g}",
        "\\boxed{{LETTER}}", "\\boxed{{{g}.}}", "<think>unfinished reasoning about {g}",
    ],
}
KINDS = tuple(TEMPLATES)


def prediction(gold: str, letters: str, rng: random.Random) -> tuple[str, str]:
    """(kind, prediction) for a row whose gold letter is ``gold`` among ``letters``."""
    kind = rng.choice(KINDS)
    wrong = rng.choice([c for c in letters if c != gold])
    text = rng.choice(TEMPLATES[kind]).format(g=gold, w=wrong, gl=gold.lower())
    return kind, text
