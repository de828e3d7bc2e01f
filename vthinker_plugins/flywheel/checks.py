"""The deterministic checks of the checker-repairer, run before any LMM sees a problem.

:func:`text_checks` (question, answer, one drawing step), then :func:`render_checks` (the rendered
figure and interaction cell, and the trajectory through the stage-2 converter), each stopping at its
first failure, whose ``reason`` is the rejection reason when no repair fixes it. :func:`point_check`
decides whether the problem's labelled points make a perception row.

Details of each check: docs/data.md.
"""

from __future__ import annotations

import io
import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image

from sandbox import OutputImage
from vthinker_plugins.data.interaction import RowExcluded, convert_row
from vthinker_plugins.flywheel.problem import Problem, hub_row
from vthinker_plugins.flywheel.render import CellRun, Rendered
from vthinker_plugins.protocol import extract_answer, parse_code_blocks

_TAG_RE = re.compile(r"</?(?:think|answer|code|sandbox_output|image)\b|<image>", re.I)
_CELL_REASON = {"error": "crashed", "timeout": "timed_out", "killed": "killed", "limit_exceeded": "over_limit"}


@dataclass
class ImageLimits:
    """What a usable figure is: pixels (V-Thinker trains at up to 4,194,304), sides, ink, and what the
    drawing step must change (a crop or resize always counts as a change)."""

    max_pixels: int = 4_194_304
    min_side: int = 28  # one Qwen2.5-VL patch x merge
    max_side: int = 4096
    min_ink: float = 0.0005  # share of pixels that differ from the background colour
    min_changed_pixels: int = 50  # pixels the drawing step must change (a visible mark, whatever the size)
    max_question_chars: int = 2000
    max_answer_chars: int = 100


@dataclass
class Check:
    name: str
    ok: bool
    reason: str = ""  # rejection code when not ok
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _fail(name: str, reason: str, detail: str) -> Check:
    return Check(name, False, reason, detail)


def text_checks(problem: Problem, limits: ImageLimits) -> list[Check]:
    q, a = problem.question, problem.answer
    if len(q) > limits.max_question_chars:
        return [_fail("question", "question_too_long", f"{len(q)} characters > {limits.max_question_chars}")]
    if _TAG_RE.search(q):
        return [_fail("question", "question_has_tags", f"protocol tag {_TAG_RE.search(q).group(0)!r} in the question")]
    checks = [Check("question", True)]
    if len(a) > limits.max_answer_chars:
        return [*checks, _fail("answer", "answer_too_long", f"{len(a)} characters > {limits.max_answer_chars}")]
    if "\n" in a:
        return [*checks, _fail("answer", "answer_multiline", "the answer spans several lines")]
    if _TAG_RE.search(a) or re.search(r"</?[A-Za-z_]+>", a):
        return [*checks, _fail("answer", "answer_has_tags", f"markup in the answer {a!r}")]
    checks.append(Check("answer", True))
    n = len(problem.code_steps)
    if n != 1:
        reason = "no_drawing_step" if n == 0 else "several_drawing_steps"
        return [*checks, _fail("drawing_step", reason,
                               f"{n} solution steps with code; exactly one must draw on the figure")]
    checks.append(Check("drawing_step", True))
    return checks


def _cell_check(name: str, cell: CellRun | None, prefix: str) -> Check:
    if cell is None:
        return _fail(name, f"{prefix}_not_run", "the cell was not run")
    if cell.status != "ok":
        return _fail(name, f"{prefix}_{_CELL_REASON.get(cell.status, cell.status)}", cell.error or cell.status)
    if cell.n_images == 0:
        what = "image" if prefix == "image_code" else "edited_image"
        return _fail(name, f"no_{what}", "the code ran but saved no image (save to processed_path)"
                     + (f"; it printed {cell.stdout[-200:]!r}" if cell.stdout.strip() else ""))
    return Check(name, True, detail=f"{cell.wall_s:.3f} s")


def decode(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB")))


def background(pixels: np.ndarray) -> np.ndarray:
    """The background colour: the per-channel median of every 4th pixel each way."""
    return np.median(pixels[::4, ::4].reshape(-1, 3), axis=0).astype(np.uint8)


def differs(a: np.ndarray, b: np.ndarray, threshold: int) -> np.ndarray:
    """Mask of the pixels where some channel of ``a`` and ``b`` differs by more than ``threshold``
    (OpenCV: a few times faster than numpy on a 1-megapixel image)."""
    import cv2

    if b.shape != a.shape:
        b = np.full(a.shape, b, np.uint8)
    d = cv2.absdiff(a, b)
    return cv2.max(cv2.max(d[..., 0], d[..., 1]), d[..., 2]) > threshold


def share(mask: np.ndarray) -> float:
    return float(np.count_nonzero(mask)) / mask.size


def _image_check(name: str, image: OutputImage, limits: ImageLimits, label: str) -> tuple[Check, np.ndarray | None]:
    w, h = image.width, image.height
    if w * h > limits.max_pixels or max(w, h) > limits.max_side:
        return _fail(name, f"{label}_too_large", f"{w}x{h} > {limits.max_pixels} pixels or a side > "
                     f"{limits.max_side}"), None
    if min(w, h) < limits.min_side:
        return _fail(name, f"{label}_too_small", f"{w}x{h}: a side < {limits.min_side}"), None
    try:
        pixels = decode(image.png)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the image's
        return _fail(name, f"undecodable_{label}", f"{type(exc).__name__}: {exc}"), None
    ink = share(differs(pixels, background(pixels), 32))
    if ink < limits.min_ink:
        return _fail(name, f"blank_{label}", f"{ink:.5f} of the pixels differ from the background"), None
    return Check(name, True, detail=f"{w}x{h}, ink {ink:.3f}"), pixels


def render_checks(row_id: str, problem: Problem, rendered: Rendered, limits: ImageLimits) -> list[Check]:
    """The figure step, then the drawing step on it: each cell ran and saved a valid image; stops at the
    first failure."""
    checks: list[Check] = []
    pixels: list[np.ndarray] = []
    steps = (("image_code", rendered.image_cell, "image", rendered.image),
             ("tool_code", rendered.tool_cell, "edited_image", rendered.edited))
    for cell_name, cell, image_name, image in steps:
        checks.append(_cell_check(cell_name, cell, cell_name))
        if not checks[-1].ok or image is None:
            return checks
        check, decoded = _image_check(image_name, image, limits, image_name)
        checks.append(check)
        if not check.ok:
            return checks
        pixels.append(decoded)
    original, edited = pixels
    if edited.shape == original.shape:
        changed = int(np.count_nonzero(differs(edited, original, 16)))
        if changed < limits.min_changed_pixels:
            checks[-1] = _fail("edited_image", "edited_image_unchanged",
                               f"the drawing step changed {changed} pixel(s) (< {limits.min_changed_pixels})")
            return checks
    checks.append(trajectory_check(row_id, problem, rendered.image.png, rendered.edited.png))
    return checks


def trajectory_check(row_id: str, problem: Problem, image_png: bytes, edited_png: bytes) -> Check:
    """The row goes through the stage-2 converter, and the converted turn reads back the same code and answer."""
    try:
        converted = convert_row(hub_row(row_id, problem, image_png, edited_png))
    except RowExcluded as exc:
        return _fail("trajectory", f"trajectory_{exc.reason}", exc.detail or exc.reason)
    turn = "".join(m["content"] for m in converted.messages[2:])
    blocks = parse_code_blocks(turn)
    if len(blocks) != 1 or blocks[0].code.strip() != problem.tool_code.strip():
        return _fail("trajectory", "trajectory_code_mismatch", "the re-rendered turn does not carry the drawing code")
    answer = extract_answer(turn)
    if answer != problem.answer:
        return _fail("trajectory", "trajectory_answer_mismatch",
                     f"the re-rendered turn answers {answer!r}, the problem {problem.answer!r}")
    return Check("trajectory", True)


def point_check(problem: Problem, image_png: bytes, radius: int = 6) -> tuple[bool, str]:
    """Labelled points make a perception row when each lies inside the image and on drawn ink."""
    if not problem.points:
        return False, "no labelled points"
    pixels = decode(image_png)
    h, w = pixels.shape[:2]
    ink = differs(pixels, background(pixels), 32)
    for name, (x, y) in problem.points.items():
        if not (0 <= x < w and 0 <= y < h):
            return False, f"point {name} at ({x:g}, {y:g}) is outside the {w}x{h} image"
        xi, yi = round(x), round(y)
        patch = ink[max(0, yi - radius):yi + radius + 1, max(0, xi - radius):xi + radius + 1]
        if not patch.any():
            return False, f"nothing is drawn within {radius} px of point {name} at ({x:g}, {y:g})"
    return True, f"{len(problem.points)} point(s)"
