"""The judge-free pixel metric on constructed drawings."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vthinker_plugins.scoring.pixel_metric import PixelMetricConfig, drawn_mask, pixel_metric

W, H = 400, 300  # diagonal 500 px -> default tolerance 15 px
POINTS = [(100, 80), (300, 200)]


def figure() -> Image.Image:
    """A geometry-like figure: a triangle, a circle, some text, saved as JPEG like benchmark images."""
    image = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(image)
    draw.polygon([(50, 250), (350, 250), (200, 40)], outline="black", width=2)
    draw.ellipse([160, 140, 240, 220], outline="gray", width=2)
    draw.text((20, 20), "Figure 1", fill="black")
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def marked(base: Image.Image, points, color="red", radius=5, labels=True) -> Image.Image:
    image = base.copy()
    draw = ImageDraw.Draw(image)
    for i, (x, y) in enumerate(points):
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=color)
        if labels:
            draw.text((x + 7, y - 12), f"P{i + 1}", fill=color)
    return image


@pytest.fixture(scope="module")
def original():
    return figure()


@pytest.fixture(scope="module")
def truth(original):
    return marked(original, POINTS)


def test_exact_match_passes(original, truth):
    score = pixel_metric(original, marked(original, POINTS, color="blue"), truth)
    assert score.status == "ok" and score.passed
    assert score.f1 > 0.95 and score.marks_found == score.ground_truth_marks == 2
    assert score.tolerance_px == pytest.approx(15.0)


def test_small_shift_within_tolerance_passes(original, truth):
    shifted = [(x + 6, y - 5) for x, y in POINTS]
    score = pixel_metric(original, marked(original, shifted, color="green", radius=4), truth)
    assert score.passed and score.f1 > 0.9


def test_shift_beyond_tolerance_fails(original, truth):
    shifted = [(x + 60, y + 40) for x, y in POINTS]
    score = pixel_metric(original, marked(original, shifted), truth)
    assert not score.passed and score.f1 < 0.2 and score.marks_found == 0


def test_one_of_two_points_missing(original, truth):
    score = pixel_metric(original, marked(original, POINTS[:1]), truth)
    assert score.precision > 0.9 and 0.3 < score.recall < 0.7 and score.f1 > 0.6
    assert score.marks_found == 1 and not score.passed  # every requested mark is needed


def test_extra_marks_lower_precision(original, truth):
    extra = [*POINTS, (60, 60), (340, 60), (200, 280), (30, 150), (370, 150), (120, 180)]
    score = pixel_metric(original, marked(original, extra), truth)
    assert score.recall > 0.95 and score.precision < 0.45
    assert not score.passed and score.generated_marks == 8


def test_nothing_drawn(original, truth):
    unchanged = pixel_metric(original, original.copy(), truth)
    missing = pixel_metric(original, None, truth)
    for score in (unchanged, missing):
        assert score.status == "nothing_drawn" and score.passed is False and score.f1 == 0


def test_ground_truth_without_marks_is_unscorable(original):
    score = pixel_metric(original, marked(original, POINTS), original.copy())
    assert score.status == "no_ground_truth_marks" and score.passed is None


def test_resized_output_is_rescaled(original, truth):
    big = original.resize((W * 2, H * 2), Image.Resampling.BICUBIC)
    drawn_big = marked(big, [(2 * x, 2 * y) for x, y in POINTS], radius=10)
    score = pixel_metric(original, drawn_big, truth)
    assert score.rescaled and score.passed and score.f1 > 0.85
    small = original.resize((W // 2, H // 2))  # PIL's default filter, as model code would use
    drawn_small = marked(small, [(x // 2, y // 2) for x, y in POINTS], radius=3, labels=False)
    assert pixel_metric(original, drawn_small, truth).passed


def test_lines_are_compared_along_their_length(original):
    truth = original.copy()
    ImageDraw.Draw(truth).line([(200, 40), (200, 250)], fill="red", width=3)  # the altitude
    right = original.copy()
    ImageDraw.Draw(right).line([(203, 45), (202, 250)], fill="blue", width=2)
    half = original.copy()
    ImageDraw.Draw(half).line([(200, 40), (200, 140)], fill="blue", width=2)
    wrong = original.copy()
    ImageDraw.Draw(wrong).line([(50, 250), (275, 145)], fill="blue", width=2)  # a median instead
    same_start = original.copy()
    ImageDraw.Draw(same_start).line([(200, 40), (320, 200)], fill="blue", width=2)  # from the apex, wrong way
    assert pixel_metric(original, right, truth).passed
    half_score = pixel_metric(original, half, truth)
    assert half_score.precision > 0.9 and 0.35 < half_score.recall < 0.65 and not half_score.passed
    assert not pixel_metric(original, wrong, truth).passed
    assert not pixel_metric(original, same_start, truth).passed


def test_jpeg_noise_is_not_a_mark(original):
    buf = io.BytesIO()
    original.save(buf, format="JPEG", quality=40)
    noisy = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    mask = drawn_mask(np.asarray(original), np.asarray(noisy), PixelMetricConfig())
    assert mask.sum() == 0


def test_tolerance_is_configurable(original, truth):
    shifted = [(x + 25, y) for x, y in POINTS]
    generated = marked(original, shifted)
    assert not pixel_metric(original, generated, truth).passed
    assert pixel_metric(original, generated, truth, PixelMetricConfig(tolerance_frac=0.08)).passed


def test_as_dict_is_json_ready(original, truth):
    import json

    data = pixel_metric(original, marked(original, POINTS), truth).as_dict()
    assert json.loads(json.dumps(data))["passed"] is True
    assert set(data) >= {"precision", "recall", "f1", "passed", "status", "tolerance_px", "marks_found"}
