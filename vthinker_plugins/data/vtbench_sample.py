"""A small VTBench-format sample that the project generates itself (no hub needed).

Each row is a geometry figure rendered from code, with questions for all three VTBench tasks, the
reference tool code that solves each, the ground-truth annotations and the answers, written as
parquet in the hub schema of ``We-Math/VTBench`` plus code columns. Deterministic for a seed.

Schema and command: docs/data.md.
"""

from __future__ import annotations

import contextlib
import io
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

WIDTH, HEIGHT = 480, 400
DEFAULT_FILE_NAME = "vtbench_sample.parquet"

Point = tuple[int, int]

_FIGURE_HEADER = """\
from PIL import Image, ImageDraw, ImageFont
img = Image.new("RGB", ({w}, {h}), "white")
draw = ImageDraw.Draw(img)
font = ImageFont.load_default(size=18)
"""


def _tool_code(source_var: str, body: str) -> str:
    """Tool code in the protocol's shape: open an input, draw, save to processed_path, print it."""
    return (
        "from PIL import Image, ImageDraw\n"
        f"img = Image.open({source_var}).convert('RGB')\n"
        "draw = ImageDraw.Draw(img)\n"
        f"{body.strip()}\n"
        "img.save(processed_path)\n"
        "print(processed_path)\n"
    )


def _dot(p: Point, color: str, r: int = 7) -> str:
    return f"draw.ellipse(({p[0] - r}, {p[1] - r}, {p[0] + r}, {p[1] + r}), fill={color!r})"


def _line(p: Point, q: Point, color: str, width: int = 4) -> str:
    return f"draw.line(({p[0]}, {p[1]}, {q[0]}, {q[1]}), fill={color!r}, width={width})"


def _label(p: Point, text: str, dx: int = 8, dy: int = -24) -> str:
    return f"draw.text(({p[0] + dx}, {p[1] + dy}), {text!r}, fill='black', font=font)"


def _mid(p: Point, q: Point) -> Point:
    return ((p[0] + q[0]) // 2, (p[1] + q[1]) // 2)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _right_triangle(rng: random.Random) -> dict[str, Any]:
    k = rng.choice([2, 4, 6, 8])
    ab, ac = 3 * k, 4 * k
    ax, ay = rng.randint(70, 110), rng.randint(330, 360)
    a, b, c = (ax, ay), (ax, ay - rng.randint(200, 260)), (ax + rng.randint(280, 340), ay)
    m = _mid(b, c)
    figure = [
        f"draw.polygon([{a}, {b}, {c}], outline='black', width=3)",
        f"draw.rectangle(({ax}, {ay - 18}, {ax + 18}, {ay}), outline='black', width=2)",
        _label(a, "A", -26, 4), _label(b, "B", -26, -8), _label(c, "C", 6, 4),
        _label(_mid(a, b), f"AB = {ab}", -70, -10), _label(_mid(a, c), f"AC = {ac}", -30, 8),
    ]
    return {
        "figure": figure,
        "question_perception": "Mark the vertices B and C of the triangle with filled red dots.",
        "code_perception": _tool_code("image_path", _dot(b, "red") + "\n" + _dot(c, "red")),
        "question_instruction": "Draw the median from vertex A to side BC as a blue line segment.",
        "answer_instruction": f"A blue segment from A {a} to the midpoint M {m} of BC.",
        "code_instruction": _tool_code("image_path", _line(a, m, "blue")),
        "question_reasoning": (
            f"In the figure, triangle ABC has a right angle at A, AB = {ab} and AC = {ac}. "
            "M is the midpoint of BC. What is the length of AM?"
        ),
        "answer_reasoning": _fmt(5 * k / 2),
        "code_reasoning": [
            _tool_code("image_path", _dot(m, "green")),  # locate M on BC
            _tool_code("image_paths[-1]", _line(a, m, "blue")),  # then draw AM on that drawing
        ],
    }


def _rectangle(rng: random.Random) -> dict[str, Any]:
    k = rng.choice([1, 2, 3])
    ab, bc = 5 * k, 12 * k
    x0, y0 = rng.randint(60, 100), rng.randint(80, 120)
    w, h = rng.randint(280, 340), rng.randint(180, 220)
    a, b, c, d = (x0, y0 + h), (x0 + w, y0 + h), (x0 + w, y0), (x0, y0)
    figure = [
        f"draw.rectangle(({x0}, {y0}, {x0 + w}, {y0 + h}), outline='black', width=3)",
        _label(a, "A", -24, 0), _label(b, "B", 6, 0), _label(c, "C", 6, -20), _label(d, "D", -24, -20),
        _label(_mid(a, b), f"AB = {bc}", -30, 6), _label(_mid(b, c), f"BC = {ab}", 8, -8),
    ]
    return {
        "figure": figure,
        "question_perception": "Mark the vertices A and C of the rectangle with filled red dots.",
        "code_perception": _tool_code("image_path", _dot(a, "red") + "\n" + _dot(c, "red")),
        "question_instruction": "Draw the diagonal BD of the rectangle as a blue line segment.",
        "answer_instruction": f"A blue segment from B {b} to D {d}.",
        "code_instruction": _tool_code("image_path", _line(b, d, "blue")),
        "question_reasoning": (
            f"ABCD is a rectangle with AB = {bc} and BC = {ab}. What is the length of the diagonal AC?"
        ),
        "answer_reasoning": _fmt(13 * k),
        "code_reasoning": [
            _tool_code("image_path", _line(a, c, "red")),  # the diagonal splits ABCD into right triangles
            _tool_code("image_paths[-1]", _dot(b, "green")),  # the right angle of triangle ABC sits at B
        ],
    }


def _circle(rng: random.Random) -> dict[str, Any]:
    k = rng.choice([10, 20, 30])
    radius, dist = 5 * k // 10, 3 * k // 10  # the labelled lengths (3-4-5 scaled)
    cx, cy = rng.randint(220, 260), rng.randint(190, 210)
    rpx = rng.randint(140, 170)
    hy = cy + rpx * 3 // 5
    half = rpx * 4 // 5
    o, h_pt = (cx, cy), (cx, hy)
    a, b = (cx - half, hy), (cx + half, hy)
    figure = [
        f"draw.ellipse(({cx - rpx}, {cy - rpx}, {cx + rpx}, {cy + rpx}), outline='black', width=3)",
        _line(a, b, "black", 3),
        f"draw.ellipse(({cx - 4}, {cy - 4}, {cx + 4}, {cy + 4}), fill='black')",
        _label(o, "O", 6, -22), _label(a, "A", -24, -8), _label(b, "B", 6, -8), _label(h_pt, "H", 4, 2),
        f"draw.text((20, 20), 'radius = {radius}, OH = {dist}, OH is perpendicular to AB', fill='black', font=font)",
    ]
    return {
        "figure": figure,
        "question_perception": "Mark the center O of the circle and the point H with filled red dots.",
        "code_perception": _tool_code("image_path", _dot(o, "red") + "\n" + _dot(h_pt, "red")),
        "question_instruction": "Draw the radius OA as a blue line segment.",
        "answer_instruction": f"A blue segment from the center O {o} to A {a}.",
        "code_instruction": _tool_code("image_path", _line(o, a, "blue")),
        "question_reasoning": (
            f"Circle O has radius {radius}. The chord AB is at distance OH = {dist} from the center, "
            "where H is the foot of the perpendicular from O to AB. What is the length of AB?"
        ),
        "answer_reasoning": _fmt(8 * k // 10),
        "code_reasoning": [
            _tool_code("image_path", _line(o, h_pt, "green")),  # the perpendicular from O bisects AB
            _tool_code("image_paths[-1]", _line(o, a, "blue")),  # OA is a radius: right triangle OHA
        ],
    }


_TEMPLATES: tuple[Callable[[random.Random], dict[str, Any]], ...] = (_right_triangle, _rectangle, _circle)


def run_drawing_code(code: str, inputs: list[Image.Image]) -> Image.Image:
    """Execute trusted, project-written drawing code the way the sandbox would (``image_path``,
    ``image_path_1``... 1-based, ``image_paths``, ``processed_path``) and return the image it saved. Used only to render
    the figures and ground truths of this generated sample, never for model code."""
    with tempfile.TemporaryDirectory(prefix="vtbench-sample-") as tmp:
        env: dict[str, Any] = {"processed_path": str(Path(tmp) / "processed.png"), "output_path": None}
        paths = []
        for i, image in enumerate(inputs):
            path = Path(tmp) / f"input_{i}.png"
            image.save(path)
            paths.append(str(path))
            env[f"image_path_{i + 1}"] = str(path)
        env["image_path"] = paths[0] if paths else None
        env["image_paths"] = paths
        env["output_path"] = env["processed_path"]
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(code, "<vtbench-sample>", "exec"), env)  # our own code, see the docstring
        out = Image.open(env["processed_path"])
        out.load()
        return out.convert("RGB")


def build_rows(n: int = 6, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` rows (templates in turn), each with PIL images and code columns."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rows = []
    for i in range(n):
        rng = random.Random(seed * 100_003 + i)
        spec = _TEMPLATES[i % len(_TEMPLATES)](rng)
        body = "\n".join(spec.pop("figure"))
        figure_code = _FIGURE_HEADER.format(w=WIDTH, h=HEIGHT) + body + "\nimg.save(output_path)\n"
        image = run_drawing_code(figure_code, [])
        steps = [image]
        for code in spec["code_reasoning"]:  # validate the multi-round reference solution
            steps.append(run_drawing_code(code, steps))
        rows.append(
            {
                "id": f"vts-{seed}-{i:03d}",
                "image": image,
                "annotation_instruction": run_drawing_code(spec["code_instruction"], [image]),
                "annotation_perception": run_drawing_code(spec["code_perception"], [image]),
                "question_reasoning": spec["question_reasoning"],
                "answer_reasoning": spec["answer_reasoning"],
                "question_perception": spec["question_perception"],
                "question_instruction": spec["question_instruction"],
                "answer_instruction": spec["answer_instruction"],
                "code_perception": spec["code_perception"],
                "code_instruction": spec["code_instruction"],
                "code_reasoning": spec["code_reasoning"],
                "figure_code": figure_code,
            }
        )
    return rows


def features():
    """The ``datasets`` features: VTBench's hub schema, then the extra code columns."""
    import datasets

    text = datasets.Value("string")
    return datasets.Features(
        {
            "id": text,
            "image": datasets.Image(),
            "annotation_instruction": datasets.Image(),
            "annotation_perception": datasets.Image(),
            "question_reasoning": text,
            "answer_reasoning": text,
            "question_perception": text,
            "question_instruction": text,
            "answer_instruction": text,
            "code_perception": text,
            "code_instruction": text,
            "code_reasoning": datasets.List(text),
            "figure_code": text,
        }
    )


def make_vtbench_sample(path: str | Path, n: int = 6, seed: int = 0) -> Path:
    """Write the sample as parquet (images embedded as PNG bytes) and return the file path.

    ``path`` may be a ``.parquet`` file or a folder (``vtbench_sample.parquet`` inside it).
    """
    import datasets

    out = Path(path)
    if out.suffix != ".parquet":
        out = out / DEFAULT_FILE_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = build_rows(n, seed)
    columns = {name: [row[name] for row in rows] for name in features()}
    dataset = datasets.Dataset.from_dict(columns, features=features())
    tmp = out.with_name(out.name + ".tmp")
    dataset.to_parquet(str(tmp))
    tmp.replace(out)  # atomic: a half-written file is never mistaken for the cache
    return out


def add_arguments(parser) -> None:
    parser.add_argument("output", help=f"parquet file, or a folder to hold {DEFAULT_FILE_NAME}")
    parser.add_argument("--n", type=int, default=6, help="rows (x3 tasks each); default 6")
    parser.add_argument("--seed", type=int, default=0)


def main(args) -> int:
    path = make_vtbench_sample(args.output, n=args.n, seed=args.seed)
    print(f"VTBench-format sample: {args.n} rows ({3 * args.n} items) written to {path}")
    return 0
