"""A small We-Math-format sample that the project generates itself (no hub needed).

It has We-Math's group structure (a multi-step problem with one single-step problem per knowledge
concept, sharing an ``ID``) that the four-dimensional metrics compare, with figures drawn from code
and computed answers, in the hub schema of ``We-Math/We-Math``. Deterministic for a seed.

Schema, options and command: docs/data.md.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

DEFAULT_FILE_NAME = "wemath_sample.parquet"
TESTMINI_GROUPS = (360, 165)  # two-step and three-step groups of the real testmini (3*360 + 4*165 = 1740)
SIZE = (240, 180)

#: Knowledge concepts used here (names as We-Math writes them) and a one-line description each.
CONCEPTS = {
    "Perimeter of Rectangles": "The perimeter of a rectangle is 2 x (length + width).",
    "Area of Rectangles": "The area of a rectangle is length x width.",
    "Understanding Circles": "The diameter of a circle is twice its radius.",
    "Area of Circles": "The area of a circle is pi x radius^2 (pi = 3.14 here).",
    "Perimeter of Squares": "The perimeter of a square is 4 x side.",
    "Area of Squares": "The area of a square is side x side.",
    "Area of Triangles": "The area of a triangle is base x height / 2.",
}

Step = tuple[str, str, float, str]  # (knowledge concept, question, answer, unit of the options)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.2f}".rstrip("0").rstrip(".")


def _font(size: int = 14) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _rectangle(rng: random.Random) -> tuple[Callable[[], Image.Image], list[Step], Step]:
    w, h = rng.randint(4, 15), rng.randint(2, 9)

    def draw() -> Image.Image:
        img = Image.new("RGB", SIZE, "white")
        d = ImageDraw.Draw(img)
        d.rectangle((40, 40, 200, 130), outline="black", width=3)
        d.text((105, 135), f"{w} cm", fill="black", font=_font())
        d.text((205, 78), f"{h} cm", fill="black", font=_font())
        return img

    steps = [
        ("Perimeter of Rectangles", f"The rectangle in the figure is {w} cm long and {h} cm wide. "
                                    "What is its perimeter in cm?", 2 * (w + h), "cm"),
        ("Area of Rectangles", f"The rectangle in the figure is {w} cm long and {h} cm wide. "
                               "What is its area in square cm?", w * h, "sq cm"),
    ]
    multi = ("Area of Rectangles", f"The perimeter of the rectangle in the figure is {2 * (w + h)} cm and it is "
                                   f"{w} cm long. What is its area in square cm?", w * h, "sq cm")
    return draw, steps, multi


def _circle(rng: random.Random) -> tuple[Callable[[], Image.Image], list[Step], Step]:
    r = rng.randint(2, 10)

    def draw() -> Image.Image:
        img = Image.new("RGB", SIZE, "white")
        d = ImageDraw.Draw(img)
        d.ellipse((60, 30, 180, 150), outline="black", width=3)
        d.line((60, 90, 180, 90), fill="blue", width=2)
        d.text((100, 70), f"d = {2 * r} cm", fill="black", font=_font())
        return img

    steps = [
        ("Understanding Circles", f"The diameter of the circle in the figure is {2 * r} cm. What is its radius in cm?",
         r, "cm"),
        ("Area of Circles", f"The radius of the circle in the figure is {r} cm. What is its area in square cm "
                            "(pi = 3.14)?", round(3.14 * r * r, 2), "sq cm"),
    ]
    multi = ("Area of Circles", f"The diameter of the circle in the figure is {2 * r} cm. What is its area in "
                                "square cm (pi = 3.14)?", round(3.14 * r * r, 2), "sq cm")
    return draw, steps, multi


def _square(rng: random.Random) -> tuple[Callable[[], Image.Image], list[Step], Step]:
    s = 2 * rng.randint(1, 8)

    def draw() -> Image.Image:
        img = Image.new("RGB", SIZE, "white")
        d = ImageDraw.Draw(img)
        d.rectangle((70, 30, 170, 130), outline="black", width=3)
        d.line((70, 130, 170, 30), fill="red", width=2)
        d.text((75, 135), f"perimeter {4 * s} cm", fill="black", font=_font())
        return img

    steps = [
        ("Perimeter of Squares", f"The perimeter of the square in the figure is {4 * s} cm. How long is a side in cm?",
         s, "cm"),
        ("Area of Squares", f"Each side of the square in the figure is {s} cm. What is its area in square cm?",
         s * s, "sq cm"),
        ("Area of Triangles", f"The red diagonal cuts the square with side {s} cm into two triangles. What is the "
                              "area of one triangle in square cm?", s * s / 2, "sq cm"),
    ]
    multi = ("Area of Triangles", f"The perimeter of the square in the figure is {4 * s} cm. The red diagonal cuts "
                                  "it into two triangles. What is the area of one triangle in square cm?",
             s * s / 2, "sq cm")
    return draw, steps, multi


_TWO_STEP = (_rectangle, _circle)


def _options(answer: float, unit: str, rng: random.Random) -> tuple[str, str]:
    """The hub's option string (four values and "No correct answer") and the gold letter."""
    wrong: set[float] = set()
    while len(wrong) < 3:
        candidate = round(answer + rng.choice([-3, -2, -1, 1, 2, 3, 4]) * max(1, round(answer / 5)), 2)
        if candidate > 0 and candidate != answer:
            wrong.add(candidate)
    values = [answer, *sorted(wrong)]
    rng.shuffle(values)
    texts = [f"{_fmt(v)} {unit}".strip() for v in values] + ["No correct answer"]
    letters = "ABCDE"
    option = "; ".join(f"{letter}. {text}" for letter, text in zip(letters, texts, strict=True))
    return option, letters[values.index(answer)]


def build_rows(two_step: int = 4, three_step: int = 2, seed: int = 0) -> list[dict[str, Any]]:
    """Rows of ``two_step`` two-step and ``three_step`` three-step groups (PIL images), ordered as
    the hub orders them: by ``key``, then group."""
    if two_step < 0 or three_step < 0 or two_step + three_step == 0:
        raise ValueError(f"need at least one group, got two_step={two_step}, three_step={three_step}")
    groups = [(2, n, _TWO_STEP[(n - 1) % len(_TWO_STEP)]) for n in range(1, two_step + 1)]
    groups += [(3, n, _square) for n in range(1, three_step + 1)]
    rows = []
    for steps_n, n, template in groups:
        rng = random.Random(f"{seed}-{steps_n}-{n}")
        draw, steps, multi = template(rng)
        image = draw()
        group = f"{steps_n}steps_{n}"
        for part, (concept, question, answer, unit) in [*((str(i), s) for i, s in enumerate(steps, 1)),
                                                        ("multi", multi)]:
            option, letter = _options(answer, unit, rng)
            rows.append({"ID": group, "split": "testmini", "knowledge concept": concept, "question": question,
                         "option": option, "answer": letter, "image_path": image, "key": f"{group[0]}steps_{part}",
                         "knowledge concept description": f"{concept}:\n1. {CONCEPTS[concept]}"})
    rows.sort(key=lambda r: (r["key"][0], r["key"].split("_")[1] == "multi", r["key"], int(r["ID"].split("_")[1])))
    for number, row in enumerate(rows, 1):
        row["question number"] = number
    return rows


def features():
    """The ``datasets`` features of the hub schema."""
    import datasets

    text = datasets.Value("string")
    return datasets.Features({
        "ID": text, "split": text, "knowledge concept": text, "question": text, "option": text, "answer": text,
        "image_path": datasets.Image(), "key": text, "question number": datasets.Value("int64"),
        "knowledge concept description": text,
    })


def make_wemath_sample(path: str | Path, two_step: int = 4, three_step: int = 2, seed: int = 0) -> Path:
    """Write the sample as parquet (images embedded as PNG bytes) and return the file path.

    ``path`` may be a ``.parquet`` file or a folder (``wemath_sample.parquet`` inside it).
    """
    import datasets

    out = Path(path)
    if out.suffix != ".parquet":
        out = out / DEFAULT_FILE_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = build_rows(two_step, three_step, seed)
    columns = {name: [row[name] for row in rows] for name in features()}
    tmp = out.with_name(out.name + ".tmp")
    datasets.Dataset.from_dict(columns, features=features()).to_parquet(str(tmp))
    tmp.replace(out)
    return out


def add_arguments(parser) -> None:
    parser.add_argument("output", help=f"parquet file, or a folder to hold {DEFAULT_FILE_NAME}")
    parser.add_argument("--two-step", type=int, default=4, help="two-step groups (3 problems each); default 4")
    parser.add_argument("--three-step", type=int, default=2, help="three-step groups (4 problems each); default 2")
    parser.add_argument("--testmini-layout", action="store_true",
                        help=f"as many groups as the real testmini ({TESTMINI_GROUPS[0]} + {TESTMINI_GROUPS[1]})")
    parser.add_argument("--seed", type=int, default=0)


def main(args) -> int:
    two, three = TESTMINI_GROUPS if args.testmini_layout else (args.two_step, args.three_step)
    path = make_wemath_sample(args.output, two, three, seed=args.seed)
    print(f"We-Math-format sample: {two} two-step + {three} three-step groups ({3 * two + 4 * three} problems) "
          f"written to {path}")
    return 0
