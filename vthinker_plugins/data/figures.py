"""Programmatic figures with exact pixel-coordinate answers (V-Perception style).

Each generator draws one figure as a short PIL program and asks one question about it. The program
is stored as the sample's ``python_code`` and :func:`render` runs it, so the image can be re-created,
and answers come from the coordinates drawn at, not from pixels. Levels follow V-Perception
(``surface``, ``semantic``, ``integrated``).

Design notes (canvas sizes, levels): docs/data.md.
"""

from __future__ import annotations

import io
import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

LEVELS = ("surface", "semantic", "integrated")
COLORS = ("black", "blue", "red", "green", "purple", "orange", "brown", "teal")


@dataclass
class Figure:
    """A drawing program plus the question and its exact answer."""

    width: int
    height: int
    lines: list[str] = field(default_factory=list)
    question: str = ""
    answer: dict[str, tuple[int, int]] = field(default_factory=dict)
    elements: list[str] = field(default_factory=list)
    level: str = "surface"

    def code(self) -> str:
        """A self-contained script that draws the figure and saves it to ``output_path``."""
        head = [
            "from PIL import Image, ImageDraw, ImageFont",
            f"img = Image.new('RGB', ({self.width}, {self.height}), 'white')",
            "d = ImageDraw.Draw(img)",
            "font = ImageFont.load_default(size=16)",
        ]
        return "\n".join([*head, *self.lines, "img.save(output_path, format='PNG', compress_level=1)"]) + "\n"


def render(code: str) -> bytes:
    """Run a figure program (our own generated code) and return the PNG bytes."""
    buf = io.BytesIO()
    exec(compile(code, "<figure>", "exec"), {"output_path": buf})  # the program is generated here, not user input
    return buf.getvalue()


def _canvas(rng: random.Random) -> Figure:
    return Figure(width=28 * rng.randint(14, 28), height=28 * rng.randint(11, 20))


def _point(fig: Figure, rng: random.Random, margin: int = 40) -> tuple[int, int]:
    return rng.randint(margin, fig.width - margin), rng.randint(margin, fig.height - margin)


def _far_points(fig: Figure, rng: random.Random, n: int, min_dist: float = 60) -> list[tuple[int, int]]:
    points: list[tuple[int, int]] = []
    while len(points) < n:
        p = _point(fig, rng)
        if all(math.dist(p, q) >= min_dist for q in points):
            points.append(p)
    return points


def _dot(fig: Figure, p: tuple[int, int], label: str | None, color: str = "black") -> None:
    x, y = p
    fig.lines.append(f"d.ellipse([{x - 4}, {y - 4}, {x + 4}, {y + 4}], fill={color!r})")
    if label:
        fig.lines.append(f"d.text(({x + 8}, {y - 8}), {label!r}, fill={color!r}, font=font, anchor='ls')")


def _names(points: dict[str, tuple[float, float]]) -> dict[str, tuple[int, int]]:
    return {k: (round(x), round(y)) for k, (x, y) in points.items()}


# --------------------------------------------------------------------------- surface

def points_surface(rng: random.Random) -> Figure:
    fig = _canvas(rng)
    n = rng.randint(3, 6)
    pts = _far_points(fig, rng, n)
    for i, p in enumerate(pts, 1):
        _dot(fig, p, f"P{i}", rng.choice(COLORS))
    asked = sorted(rng.sample(range(1, n + 1), rng.randint(1, min(3, n))))
    names = ", ".join(f"P{i}" for i in asked)
    fig.question = f"Output the pixel coordinates of point{'s' if len(asked) > 1 else ''} {names} in the image."
    fig.answer = {f"P{i}": pts[i - 1] for i in asked}
    fig.elements = ["point", "text"]
    return fig


def text_surface(rng: random.Random) -> Figure:
    fig = _canvas(rng)
    words = rng.sample(["apple", "river", "north", "cube", "delta", "pivot", "orbit", "prism", "vertex", "ratio"], 4)
    centers = _far_points(fig, rng, len(words), min_dist=90)
    for word, (x, y) in zip(words, centers, strict=True):
        # anchor "mm" puts the middle of the text exactly at (x, y): the answer is the anchor.
        fig.lines.append(f"d.text(({x}, {y}), {word!r}, fill={rng.choice(COLORS)!r}, font=font, anchor='mm')")
    k = rng.randrange(len(words))
    fig.question = f"Output the pixel coordinates of the center of the text label '{words[k]}' as {{'T': (x, y)}}."
    fig.answer = {"T": centers[k]}
    fig.elements = ["text"]
    return fig


# --------------------------------------------------------------------------- semantic

def polyline_peak(rng: random.Random) -> Figure:
    fig = _canvas(rng)
    n = rng.randint(4, 7)
    xs = sorted(rng.sample(range(40, fig.width - 40, 10), n))
    ys = rng.sample(range(40, fig.height - 40, 6), n)  # distinct heights: one peak
    pts = list(zip(xs, ys, strict=True))
    fig.lines.append(f"d.line({pts}, fill='blue', width=3)")
    for i, p in enumerate(pts, 1):
        _dot(fig, p, f"P{i}")
    k = min(range(n), key=lambda i: ys[i])
    fig.question = (
        "Which labelled vertex is the peak of the polyline (its highest point in the image)? "
        "Output its label and pixel coordinates."
    )
    fig.answer = {f"P{k + 1}": pts[k]}
    fig.elements = ["polyline", "point", "text"]
    fig.level = "semantic"
    return fig


def circle_center(rng: random.Random) -> Figure:
    fig = _canvas(rng)
    r = rng.randint(40, min(fig.width, fig.height) // 2 - 30)
    cx, cy = rng.randint(r + 20, fig.width - r - 20), rng.randint(r + 20, fig.height - r - 20)
    fig.lines.append(f"d.ellipse([{cx - r}, {cy - r}, {cx + r}, {cy + r}], outline='black', width=3)")
    for i in range(1, rng.randint(2, 4) + 1):  # labelled points on the circle as distractors
        t = rng.uniform(0, 2 * math.pi)
        _dot(fig, (round(cx + r * math.cos(t)), round(cy + r * math.sin(t))), f"A{i}", "red")
    fig.question = "Output the pixel coordinates of the center O of the circle as {'O': (x, y)}."
    fig.answer = {"O": (cx, cy)}
    fig.elements = ["circle", "point", "text"]
    fig.level = "semantic"
    return fig


def angle_vertex(rng: random.Random) -> Figure:
    fig = _canvas(rng)
    v = _point(fig, rng, margin=80)
    ends = []
    for _ in range(2):
        while True:
            e = _point(fig, rng, margin=30)
            if math.dist(e, v) > 80:
                break
        ends.append(e)
    a, b = ends
    fig.lines.append(f"d.line([{a}, {v}, {b}], fill='black', width=3)")
    _dot(fig, a, "A")
    _dot(fig, b, "B")
    fig.question = "The figure shows angle AVB with its vertex V unlabelled. Output the pixel coordinates of V."
    fig.answer = {"V": v}
    fig.elements = ["angle", "line", "point", "text"]
    fig.level = "semantic"
    return fig


def tallest_bar(rng: random.Random) -> Figure:
    fig = _canvas(rng)
    n = rng.randint(3, 7)
    base = fig.height - 40
    slot = (fig.width - 80) // n
    heights = rng.sample(range(30, base - 40, 5), n)  # distinct: one tallest bar
    cats = [chr(ord("A") + i) for i in range(n)]
    fig.lines.append(f"d.line([(40, {base}), ({fig.width - 40}, {base})], fill='black', width=2)")
    tops = []
    for i, h in enumerate(heights):
        x0 = 40 + i * slot + slot // 5
        x1 = 40 + (i + 1) * slot - slot // 5
        fig.lines.append(f"d.rectangle([{x0}, {base - h}, {x1}, {base}], fill={COLORS[i % len(COLORS)]!r})")
        fig.lines.append(f"d.text(({(x0 + x1) // 2}, {base + 14}), {cats[i]!r}, fill='black', font=font, anchor='mm')")
        tops.append(((x0 + x1) / 2, base - h))
    k = max(range(n), key=lambda i: heights[i])
    fig.question = (
        "In the bar chart, output the pixel coordinates of the midpoint of the top edge of the tallest bar, "
        "labelled by its category."
    )
    fig.answer = _names({cats[k]: tops[k]})
    fig.elements = ["chart", "bar", "text"]
    fig.level = "semantic"
    return fig


# --------------------------------------------------------------------------- integrated reasoning

def segment_midpoint(rng: random.Random) -> Figure:
    fig = _canvas(rng)
    a, b = _far_points(fig, rng, 2, min_dist=120)
    fig.lines.append(f"d.line([{a}, {b}], fill='black', width=3)")
    _dot(fig, a, "A")
    _dot(fig, b, "B")
    fig.question = "Output the pixel coordinates of the midpoint M of segment AB as {'M': (x, y)}."
    fig.answer = _names({"M": ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)})
    fig.elements = ["segment", "point", "text"]
    fig.level = "integrated"
    return fig


def segments_intersection(rng: random.Random) -> Figure:
    fig = _canvas(rng)
    while True:
        a, b, c, e = _far_points(fig, rng, 4, min_dist=70)
        hit = _intersect(a, b, c, e)
        if hit is not None:
            break
    fig.lines.append(f"d.line([{a}, {b}], fill='blue', width=3)")
    fig.lines.append(f"d.line([{c}, {e}], fill='red', width=3)")
    for name, p in zip("ABCD", (a, b, c, e), strict=True):
        _dot(fig, p, name)
    fig.question = "Segments AB and CD cross. Output the pixel coordinates of their intersection X as {'X': (x, y)}."
    fig.answer = _names({"X": hit})
    fig.elements = ["segment", "point", "text"]
    fig.level = "integrated"
    return fig


def polyline_crossing(rng: random.Random) -> Figure:
    fig = _canvas(rng)
    n = rng.randint(3, 5)
    xs = sorted(rng.sample(range(40, fig.width - 40, 10), n))
    ys = [rng.randint(40, fig.height - 40) for _ in range(n)]
    level_y = rng.randint(min(ys) + 1, max(ys) - 1) if max(ys) - min(ys) > 2 else None
    if level_y is None:
        return polyline_crossing(rng)
    pts = list(zip(xs, ys, strict=True))
    fig.lines.append(f"d.line({pts}, fill='blue', width=3)")
    fig.lines.append(f"d.line([(0, {level_y}), ({fig.width}, {level_y})], fill='gray', width=1)")
    fig.lines.append(f"d.text((6, {level_y - 4}), 'y = {level_y}', fill='gray', font=font, anchor='ls')")
    for i, p in enumerate(pts, 1):
        _dot(fig, p, f"P{i}")
    # The first (leftmost) crossing of the polyline with the horizontal line.
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        if (y0 - level_y) * (y1 - level_y) <= 0 and y0 != y1:
            t = (level_y - y0) / (y1 - y0)
            hit = (x0 + t * (x1 - x0), level_y)
            break
    fig.question = (
        f"The gray line is the image row y = {level_y}. Output the pixel coordinates of the leftmost point "
        "where the blue polyline meets it, as {'X': (x, y)}."
    )
    fig.answer = _names({"X": hit})
    fig.elements = ["polyline", "line", "point", "text"]
    fig.level = "integrated"
    return fig


def _intersect(a, b, c, d) -> tuple[float, float] | None:
    """Intersection of segments ab and cd well inside both (None if they do not cross)."""
    (x1, y1), (x2, y2), (x3, y3), (x4, y4) = a, b, c, d
    den = (x1 - x2) * (y3 - y4) - (y1 - y2) * (x3 - x4)
    if abs(den) < 1e-9:
        return None
    t = ((x1 - x3) * (y3 - y4) - (y1 - y3) * (x3 - x4)) / den
    u = -((x1 - x2) * (y1 - y3) - (y1 - y2) * (x1 - x3)) / den
    if not (0.1 < t < 0.9 and 0.1 < u < 0.9):
        return None
    return x1 + t * (x2 - x1), y1 + t * (y2 - y1)


GENERATORS: dict[str, tuple[Callable[[random.Random], Figure], ...]] = {
    "surface": (points_surface, text_surface),
    "semantic": (polyline_peak, circle_center, angle_vertex, tallest_bar),
    "integrated": (segment_midpoint, segments_intersection, polyline_crossing),
}


def make_figure(rng: random.Random, level: str | None = None) -> Figure:
    """One random figure of ``level`` (or of a random level)."""
    level = level or rng.choice(LEVELS)
    return rng.choice(GENERATORS[level])(rng)

