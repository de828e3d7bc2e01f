"""V-Perception-40K rows -> stage-1 (perception alignment) samples.

A row asks for pixel coordinates of elements of a rendered figure; the sample is one user turn
(image + question) and one assistant turn (the answer, verbatim). Rows larger than ``max_pixels``
(LlamaFactory would resize them, moving every point) or with points outside the image are excluded
with a reason.

Design notes: docs/data.md.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from vthinker_plugins.data.interaction import ConvertedRow, RowExcluded, image_blob
from vthinker_plugins.protocol import IMAGE_PLACEHOLDER

HUB_ID = "We-Math/V-Perception-40K"
HUB_SPLITS = ("v_perception_40k",)
COLUMNS = ("id", "image", "question", "answer", "python_code", "element_arrtibute")
IMAGE_COLUMNS = ("image",)


def hub_features():
    """The hub's column types (the image embedded as ``{"bytes", "path"}``), for writing rows in its schema."""
    import datasets

    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "image": datasets.Image(),
            "question": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "python_code": datasets.Value("string"),
            "element_arrtibute": datasets.Sequence(datasets.Value("string")),
        }
    )
#: V-Thinker's stage-1 ``image_max_pixels`` (LlamaFactory resizes anything larger).
DEFAULT_MAX_PIXELS = 4_194_304


def parse_points(answer: str) -> dict[str, tuple[float, float]] | None:
    """``"{'P4': (280, 80)}"`` -> ``{"P4": (280.0, 80.0)}``; ``None`` if the answer is not a point dict."""
    try:
        value = ast.literal_eval(answer.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(value, dict) or not value:
        return None
    points: dict[str, tuple[float, float]] = {}
    for key, xy in value.items():
        if (
            not isinstance(xy, (tuple, list))
            or len(xy) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xy)
        ):
            return None
        points[str(key)] = (float(xy[0]), float(xy[1]))
    return points


def format_points(points: dict[str, tuple[int, int]]) -> str:
    """The answer format of V-Perception: ``{'P4': (280, 80)}``."""
    return "{" + ", ".join(f"{name!r}: ({int(x)}, {int(y)})" for name, (x, y) in points.items()) + "}"


def convert_row(row: dict[str, Any], max_pixels: int = DEFAULT_MAX_PIXELS, base_dir: str | None = None) -> ConvertedRow:
    """One V-Perception row -> a stage-1 sharegpt sample (raises :class:`RowExcluded`)."""
    row_id = str(row.get("id") if row.get("id") is not None else "")
    if not row_id:
        raise RowExcluded("missing_id", "row has no id")
    question = (row.get("question") or "").strip()
    answer = str(row.get("answer") if row.get("answer") is not None else "").strip()
    if not question:
        raise RowExcluded("missing_question", "question is empty")
    if not answer:
        raise RowExcluded("missing_answer", "answer is empty")
    if IMAGE_PLACEHOLDER in question:
        raise RowExcluded("placeholder_count_mismatch", "the question itself contains an <image> placeholder")
    image = image_blob(row.get("image"), "image", base_dir)
    if image.width * image.height > max_pixels:
        raise RowExcluded(
            "image_exceeds_max_pixels",
            f"{image.width}x{image.height} > {max_pixels} pixels: LlamaFactory would resize it and move the points",
        )
    points = parse_points(answer)
    if points:
        outside = [k for k, (x, y) in points.items() if not (0 <= x <= image.width and 0 <= y <= image.height)]
        if outside:
            raise RowExcluded("point_outside_image", f"{outside} outside {image.width}x{image.height}")
    messages = [
        {"role": "user", "content": IMAGE_PLACEHOLDER + question},
        {"role": "assistant", "content": answer},
    ]
    return ConvertedRow(id=row_id, messages=messages, images=[image], extra={"answer": answer})


@dataclass
class PerceptionConverter:
    """Batch converter for :func:`vthinker_plugins.data.sharegpt.convert` (picklable for worker processes)."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    base_dir: str | None = None

    def __call__(self, rows: list[dict[str, Any]]) -> list[ConvertedRow | RowExcluded]:
        results: list[ConvertedRow | RowExcluded] = []
        for row in rows:
            try:
                results.append(convert_row(row, self.max_pixels, self.base_dir))
            except RowExcluded as exc:
                results.append(exc)
        return results
