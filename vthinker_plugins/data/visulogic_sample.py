"""A small VisuLogic-format sample that the project generates itself (no hub needed).

Each row is a visual puzzle drawn from code (panels following a rule, a ``?`` panel, four candidate
panels ``A``-``D``); rows cycle through VisuLogic's six reasoning categories and are written in the
layout of the hub repository ``VisuLogic/VisuLogic``. Deterministic for a seed.

Puzzle rules, layout and command: docs/data.md.
"""

from __future__ import annotations

import io
import json
import random
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

#: VisuLogic's reasoning categories (its ``tag`` values).
CATEGORIES = ("Quantitative Reasoning", "Spatial Reasoning", "Positional Reasoning", "Attribute Reasoning",
              "Stylistic Reasoning", "Other")
PANEL, GAP = 64, 8
QUESTION = ("The panels in the top row follow a rule. Which of the four options A, B, C and D below should "
            "replace the question mark?")

Panel = Callable[[ImageDraw.ImageDraw, int, int], None]  # draws one panel at (x, y)


def _dots(count: int, color: str = "black") -> Panel:
    def draw(d: ImageDraw.ImageDraw, x: int, y: int) -> None:
        for k in range(count):
            cx, cy = x + 12 + (k % 4) * 13, y + 12 + (k // 4) * 13
            d.ellipse((cx - 4, cy - 4, cx + 4, cy + 4), fill=color)
    return draw


def _corner(position: int) -> Panel:
    def draw(d: ImageDraw.ImageDraw, x: int, y: int) -> None:
        cx, cy = [(x + 14, y + 14), (x + 50, y + 14), (x + 50, y + 50), (x + 14, y + 50)][position % 4]
        d.ellipse((cx - 7, cy - 7, cx + 7, cy + 7), fill="black")
    return draw


def _shape(color: str) -> Panel:
    def draw(d: ImageDraw.ImageDraw, x: int, y: int) -> None:
        d.rectangle((x + 16, y + 16, x + 48, y + 48), fill=color, outline="black")
    return draw


def _count_puzzle(rng: random.Random) -> tuple[list[Panel], Panel, list[Panel]]:
    start = rng.randint(1, 3)
    wrong = [_dots(start + 3 + d) for d in rng.sample([-2, -1, 1, 2], 3)]
    return [_dots(start + k) for k in range(3)], _dots(start + 3), wrong


def _corner_puzzle(rng: random.Random) -> tuple[list[Panel], Panel, list[Panel]]:
    start = rng.randint(0, 3)
    return [_corner(start + k) for k in range(3)], _corner(start + 3), [_corner(start + k) for k in (0, 1, 2)]


def _colour_puzzle(rng: random.Random) -> tuple[list[Panel], Panel, list[Panel]]:
    a, b, c, e = rng.sample(["red", "blue", "green", "orange", "purple"], 4)
    return [_shape(a), _shape(b), _shape(a)], _shape(b), [_shape(a), _shape(c), _shape(e)]


_PUZZLES = (_count_puzzle, _corner_puzzle, _colour_puzzle)


def _render(sequence: list[Panel], candidates: list[Panel]) -> Image.Image:
    width = 4 * PANEL + 5 * GAP
    img = Image.new("RGB", (width, 2 * PANEL + 3 * GAP + 20), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=16)
    for i, panel in enumerate([*sequence, None]):
        x, y = GAP + i * (PANEL + GAP), GAP
        d.rectangle((x, y, x + PANEL, y + PANEL), outline="black", width=2)
        if panel is None:
            d.text((x + 26, y + 22), "?", fill="black", font=font)
        else:
            panel(d, x, y)
    for i, panel in enumerate(candidates):
        x, y = GAP + i * (PANEL + GAP), 2 * GAP + PANEL
        d.rectangle((x, y, x + PANEL, y + PANEL), outline="gray", width=2)
        panel(d, x, y)
        d.text((x + 26, y + PANEL + 2), "ABCD"[i], fill="black", font=font)
    return img


def build_rows(n: int = 12, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` rows (categories in turn) with PIL images under ``image``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rows = []
    for i in range(n):
        rng = random.Random(seed * 100_003 + i)
        sequence, right, wrong = _PUZZLES[i % len(_PUZZLES)](rng)
        gold = rng.randrange(4)
        candidates = [*wrong[:gold], right, *wrong[gold:]]
        row_id = f"vl-{seed}-{i:04d}"
        rows.append({"id": row_id, "question": QUESTION, "label": "ABCD"[gold], "image_path": f"images/{row_id}.png",
                     "tag": CATEGORIES[i % len(CATEGORIES)], "image": _render(sequence, candidates)})
    return rows


def make_visulogic_sample(folder: str | Path, n: int = 12, seed: int = 0) -> Path:
    """Write ``data.jsonl`` and ``images.zip`` into ``folder`` (the hub layout); returns the folder."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    rows = build_rows(n, seed)
    archive, data = out / "images.zip.tmp", out / "data.jsonl.tmp"
    with zipfile.ZipFile(archive, "w") as zf:
        for row in rows:
            buffer = io.BytesIO()
            row["image"].save(buffer, format="PNG")
            zf.writestr(row["image_path"], buffer.getvalue())
    data.write_text("".join(json.dumps({k: v for k, v in row.items() if k != "image"}) + "\n" for row in rows),
                    encoding="utf-8")
    archive.replace(out / "images.zip")  # the images first: data.jsonl names them
    data.replace(out / "data.jsonl")
    return out


def add_arguments(parser) -> None:
    parser.add_argument("output", help="folder to hold data.jsonl and images.zip")
    parser.add_argument("--n", type=int, default=12, help="puzzles; default 12 (two per category)")
    parser.add_argument("--seed", type=int, default=0)


def main(args) -> int:
    path = make_visulogic_sample(args.output, n=args.n, seed=args.seed)
    print(f"VisuLogic-format sample: {args.n} puzzles written to {path} (data.jsonl, images.zip)")
    return 0
