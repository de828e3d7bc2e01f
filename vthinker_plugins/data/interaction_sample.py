"""``vthinker make-interaction-sample``: a small V-Interaction-400K-format sample the project generates
itself, so the LlamaFactory stage-2 smoke runs without the hub.

Rows are figures of :mod:`vthinker_plugins.data.vtbench_sample`, each with one tool-code step, in the
hub schema of V-Interaction-400K. Deterministic for a seed.

Row contents and the smoke commands: docs/data.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vthinker_plugins.data.sources import image_to_png
from vthinker_plugins.data.vtbench_sample import build_rows, run_drawing_code

DEFAULT_FILE_NAME = "interaction_sample.parquet"

_COT = (
    "<think>The question needs a construction on the figure before the lengths can be related, "
    "so I draw it first.\n<code>\n```python\n{code}```\n</code>\n"
    "With the construction drawn, the figure shows the right triangle that links the given lengths; "
    "applying the Pythagorean relation to it gives {answer}.</think>\n<answer>{answer}</answer>"
)


def build_interaction_rows(n: int = 6, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` rows in the V-Interaction-400K schema (images as ``{"bytes", "path"}`` structs)."""
    rows = []
    for figure in build_rows(n, seed):
        code = figure["code_reasoning"][0]  # the first step of the reference solution, on the input image
        edited = run_drawing_code(code, [figure["image"]])
        answer = figure["answer_reasoning"]
        rows.append({
            "id": figure["id"].replace("vts-", "vis-", 1),
            "question": figure["question_reasoning"],
            "image": {"bytes": image_to_png(figure["image"]), "path": None},
            "original_img_code": figure["figure_code"],
            "edited_image": {"bytes": image_to_png(edited), "path": None},
            "tool_code": code,
            "CoT_with_code": _COT.format(code=code, answer=answer),
            "answer": answer,
        })
    return rows


def features():
    """The ``datasets`` features of V-Interaction-400K's hub schema."""
    import datasets

    text = datasets.Value("string")
    return datasets.Features({
        "id": text, "question": text, "image": datasets.Image(), "original_img_code": text,
        "edited_image": datasets.Image(), "tool_code": text, "CoT_with_code": text, "answer": text,
    })


def make_interaction_sample(path: str | Path, n: int = 6, seed: int = 0) -> Path:
    """Write the sample as parquet and return its path (``path``: a ``.parquet`` file or a folder)."""
    import datasets

    out = Path(path)
    if out.suffix != ".parquet":
        out = out / DEFAULT_FILE_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    dataset = datasets.Dataset.from_list(build_interaction_rows(n, seed), features=features())
    tmp = out.with_name(out.name + ".tmp")
    dataset.to_parquet(str(tmp))
    tmp.replace(out)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", help=f"parquet file, or a folder to hold {DEFAULT_FILE_NAME}")
    parser.add_argument("--n", type=int, default=6, help="rows; default 6")
    parser.add_argument("--seed", type=int, default=0)


def main(args: argparse.Namespace) -> int:
    path = make_interaction_sample(args.output, n=args.n, seed=args.seed)
    print(f"V-Interaction-format sample: {args.n} rows written to {path}\n"
          f"next: vthinker convert interaction --source {path} --out data/llamafactory --verify")
    return 0
