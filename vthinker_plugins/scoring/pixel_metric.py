"""A deterministic, judge-free score for VTBench perception and instruction-guided drawing.

What the model drew and what the ground-truth annotation drew are recovered by differencing each
against the original image, reduced to sample points and matched with a spatial tolerance
(precision, recall, f1, marks found); a row passes when f1 is high enough and every ground-truth
mark is found. Scoring uses it when there is no judge.

Design notes (the algorithm and its parameters): docs/scoring.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image


@dataclass(frozen=True)
class PixelMetricConfig:
    """Knobs of :func:`pixel_metric`; the defaults suit VTBench-sized figures (300-1500 px)."""

    tolerance_frac: float = 0.03  # match radius as a fraction of the image diagonal
    diff_threshold: int = 48  # 0-255: a pixel is drawn if some channel moved this much
    min_area_frac: float = 2e-5  # components smaller than this fraction of the image are noise
    pass_f1: float = 0.6  # f1 at or above this passes (when every ground-truth mark is found)
    mark_found_frac: float = 0.7  # a ground-truth mark is found when this fraction of its points is


@dataclass
class PixelScore:
    """The result of :func:`pixel_metric` (``as_dict`` for JSON)."""

    status: str  # "ok" | "nothing_drawn" | "no_ground_truth_marks"
    precision: float
    recall: float
    f1: float
    passed: bool | None
    tolerance_px: float
    generated_marks: int
    ground_truth_marks: int
    marks_found: int
    generated_pixels: int
    ground_truth_pixels: int
    rescaled: bool

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("precision", "recall", "f1", "tolerance_px"):
            out[key] = round(out[key], 4)
        return out


def _array(image: Image.Image | np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """RGB uint8 array of ``image`` at ``size`` (width, height); whether it had to be resized."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image = image.convert("RGB")
    rescaled = image.size != size
    if rescaled:
        # Area averaging when shrinking, bicubic when growing: least ringing around strokes.
        shrinking = image.size[0] * image.size[1] > size[0] * size[1]
        image = image.resize(size, Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8), rescaled


def _in_frame(
    image: Image.Image | np.ndarray, original: Image.Image, base: np.ndarray
) -> tuple[np.ndarray, bool, np.ndarray]:
    """``image`` in the original's frame, whether it was rescaled, and the baseline to difference it
    against: the original itself, or — when rescaled — the original taken through the same round
    trip of sizes, so that resampling blur of the unchanged figure is not mistaken for drawing."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    array, rescaled = _array(image, original.size)
    if not rescaled:
        return array, False, base
    there, _ = _array(original, image.size)
    back, _ = _array(Image.fromarray(there), original.size)
    return array, True, back


def drawn_mask(original: np.ndarray, drawn: np.ndarray, config: PixelMetricConfig) -> np.ndarray:
    """Boolean mask of the pixels where ``drawn`` differs from ``original`` (noise removed)."""
    a = cv2.GaussianBlur(original, (3, 3), 0).astype(np.int16)
    b = cv2.GaussianBlur(drawn, (3, 3), 0).astype(np.int16)
    mask = (np.abs(a - b).max(axis=2) >= config.diff_threshold).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    min_area = max(3, int(config.min_area_frac * mask.size))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = np.zeros(count, dtype=bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    return keep[labels]


def _components(mask: np.ndarray, merge_px: int) -> np.ndarray:
    """Label image of marks: components after closing gaps up to ``merge_px`` (a dot and its label)."""
    kernel = np.ones((2 * merge_px + 1, 2 * merge_px + 1), np.uint8)
    merged = cv2.dilate(mask.astype(np.uint8), kernel)
    _, labels = cv2.connectedComponents(merged, connectivity=8)
    return np.where(mask, labels, 0)


def _sample_points(mask: np.ndarray, cell: int) -> tuple[np.ndarray, np.ndarray]:
    """One point (x, y) per occupied grid cell: the centroid of the mask pixels in it, plus
    one mask pixel (y, x) of that cell (a centroid can fall off a ring-shaped mark)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return np.zeros((0, 2)), np.zeros((0, 2), dtype=int)
    width_cells = mask.shape[1] // cell + 1
    cells = (ys // cell) * width_cells + xs // cell
    unique, first, inverse, counts = np.unique(cells, return_index=True, return_inverse=True, return_counts=True)
    cx = np.bincount(inverse, weights=xs, minlength=len(unique)) / counts
    cy = np.bincount(inverse, weights=ys, minlength=len(unique)) / counts
    return np.stack([cx, cy], axis=1), np.stack([ys[first], xs[first]], axis=1)


def _distance_to(mask: np.ndarray) -> np.ndarray:
    """Per pixel: the distance to the nearest pixel of ``mask``."""
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)


def _near(points: np.ndarray, distance: np.ndarray, tolerance: float) -> np.ndarray:
    if len(points) == 0:
        return np.zeros(0, dtype=bool)
    h, w = distance.shape
    xs = np.clip(np.rint(points[:, 0]).astype(int), 0, w - 1)
    ys = np.clip(np.rint(points[:, 1]).astype(int), 0, h - 1)
    return distance[ys, xs] <= tolerance


def pixel_metric(
    original: Image.Image | np.ndarray,
    generated: Image.Image | np.ndarray | None,
    ground_truth: Image.Image | np.ndarray,
    config: PixelMetricConfig | None = None,
) -> PixelScore:
    """Compare what the model drew (``generated`` vs ``original``) with the ground-truth annotation.

    See the module documentation for the method. ``generated=None`` (no image produced)
    scores as nothing drawn.
    """
    config = config or PixelMetricConfig()
    if isinstance(original, np.ndarray):
        original = Image.fromarray(original)
    size = original.size
    base, _ = _array(original, size)
    truth, truth_rescaled, truth_base = _in_frame(ground_truth, original, base)
    tolerance = config.tolerance_frac * float(np.hypot(*size))
    cell = max(2, int(tolerance / 2))
    truth_mask = drawn_mask(truth_base, truth, config)
    if generated is not None:
        drawn, drawn_rescaled, drawn_base = _in_frame(generated, original, base)
        drawn_mask_ = drawn_mask(drawn_base, drawn, config)
    else:
        drawn_rescaled, drawn_mask_ = False, np.zeros_like(truth_mask)

    truth_labels = _components(truth_mask, merge_px=max(1, int(tolerance / 3)))
    drawn_labels = _components(drawn_mask_, merge_px=max(1, int(tolerance / 3)))
    n_truth = len(np.unique(truth_labels[truth_mask]))
    n_drawn = len(np.unique(drawn_labels[drawn_mask_]))
    common = {
        "tolerance_px": tolerance,
        "generated_marks": n_drawn,
        "ground_truth_marks": n_truth,
        "generated_pixels": int(drawn_mask_.sum()),
        "ground_truth_pixels": int(truth_mask.sum()),
        "rescaled": bool(truth_rescaled or drawn_rescaled),
    }
    if n_truth == 0:
        return PixelScore("no_ground_truth_marks", 0.0, 0.0, 0.0, None, marks_found=0, **common)
    if n_drawn == 0:
        return PixelScore("nothing_drawn", 0.0, 0.0, 0.0, False, marks_found=0, **common)

    truth_points, truth_pixels = _sample_points(truth_mask, cell)
    drawn_points, _ = _sample_points(drawn_mask_, cell)
    drawn_ok = _near(drawn_points, _distance_to(truth_mask), tolerance)
    truth_ok = _near(truth_points, _distance_to(drawn_mask_), tolerance)
    precision = float(drawn_ok.mean())
    recall = float(truth_ok.mean())
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)

    # Marks found: ground-truth components with at least half of their points found.
    point_labels = truth_labels[truth_pixels[:, 0], truth_pixels[:, 1]]
    found = sum(
        int(truth_ok[point_labels == label].mean() >= config.mark_found_frac) for label in np.unique(point_labels)
    )
    passed = f1 >= config.pass_f1 and found == n_truth
    return PixelScore("ok", precision, recall, f1, passed, marks_found=found, **common)
