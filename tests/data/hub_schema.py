"""Rows in exactly the hub schemas of V-Interaction-400K and V-Perception-40K (parquet, embedded
images as ``{"bytes", "path"}`` structs), good ones and one malformed row per exclusion reason.
Shared by tests/data and tests/llamafactory."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw

# The tool code every good row carries; the stored edited image is what it draws.
TOOL_CODE = """\
from PIL import Image, ImageDraw
img = Image.open(image_path).convert("RGB")
d = ImageDraw.Draw(img)
d.line([(10, 10), ({x}, 50)], fill=(255, 0, 0), width=3)
img.save(processed_path)
print(processed_path)
"""


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def base_image(i: int) -> Image.Image:
    img = Image.new("RGB", (64, 64), (255, 255, 255))
    ImageDraw.Draw(img).rectangle([8, 8, 20 + i % 30, 40], outline=(0, 0, 0), width=2)
    return img


def edited_image(i: int) -> Image.Image:
    img = base_image(i).copy()
    ImageDraw.Draw(img).line([(10, 10), (40 + i % 20, 50)], fill=(255, 0, 0), width=3)
    return img


def interaction_row(i: int, style: str = "backtick") -> dict:
    code = TOOL_CODE.format(x=40 + i % 20)
    fences = {
        "backtick": f"<code>\n```python\n{code}```\n</code>",
        "quote": f"<code>\n'''python\n{code}'''\n</code>",
        "bare": f"<code>\n{code}</code>",
    }
    cot = (
        f"<think>I draw a helper line from the corner.\n{fences[style]}\n"
        f"The red line shows the diagonal, so the answer is {i}.</think>\n<answer>{i}</answer>"
    )
    return {
        "id": f"vi-{i}",
        "question": f"What is the value of x in figure {i}?",
        "image": {"bytes": png(base_image(i)), "path": None},
        "original_img_code": "# drawn by the generator",
        "edited_image": {"bytes": png(edited_image(i)), "path": None},
        "tool_code": code,
        "CoT_with_code": cot,
        "answer": str(i),
    }


def interaction_rows() -> tuple[list[dict], dict[str, str]]:
    """Good rows in three fence styles plus one malformed row per reason; returns rows and id -> reason."""
    rows = [interaction_row(i, style) for i, style in enumerate(["backtick", "quote", "bare", "backtick"])]
    bad: dict[str, str] = {}

    two_blocks = interaction_row(10)
    two_blocks["CoT_with_code"] = two_blocks["CoT_with_code"].replace(
        "The red line", "<code>print(1)</code> The red line"
    )
    bad["vi-10"] = "placeholder_count_mismatch"
    missing = interaction_row(11)
    missing["edited_image"] = None
    bad["vi-11"] = "missing_edited_image"
    broken = interaction_row(12)
    broken["image"] = {"bytes": png(base_image(12))[:60], "path": None}
    bad["vi-12"] = "undecodable_image"
    no_code = interaction_row(13)
    no_code["CoT_with_code"] = "<think>No drawing needed.</think><answer>13</answer>"
    bad["vi-13"] = "placeholder_count_mismatch"
    failing = interaction_row(14)
    failing["tool_code"] = "raise ValueError('boom')"
    bad["vi-14"] = "tool_code_failed"  # only with --verify
    wrong = interaction_row(15)
    wrong["edited_image"] = {"bytes": png(Image.new("RGB", (64, 64), (0, 0, 0))), "path": None}
    bad["vi-15"] = "edited_image_mismatch"  # only with --verify
    rows += [two_blocks, missing, broken, no_code, failing, wrong]
    return rows, bad


def write_interaction_parquet(path: Path, rows: list[dict]) -> Path:
    import datasets

    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "question": datasets.Value("string"),
            "image": datasets.Image(),
            "original_img_code": datasets.Value("string"),
            "edited_image": datasets.Image(),
            "tool_code": datasets.Value("string"),
            "CoT_with_code": datasets.Value("string"),
            "answer": datasets.Value("string"),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows, features=features).to_parquet(str(path))
    return path




def perception_row(i: int) -> dict:
    img = Image.new("RGB", (200, 100), (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.ellipse([40 + i - 3, 30 - 3, 40 + i + 3, 30 + 3], fill=(0, 0, 0))
    return {
        "id": f"vp-{i}",
        "image": {"bytes": png(img), "path": None},
        "question": "Output the pixel coordinates of point P1.",
        "answer": str({"P1": (40 + i, 30)}),
        "python_code": "# drawn by the test",
        "element_arrtibute": ["point"],
    }


def write_perception_parquet(path: Path) -> tuple[Path, dict[str, str]]:
    """Four good rows and three malformed ones; returns the path and id -> reason."""
    import datasets

    rows = [perception_row(i) for i in range(4)]
    outside = perception_row(5)
    outside["answer"] = "{'P1': (500, 30)}"
    empty = perception_row(6)
    empty["answer"] = ""
    big = perception_row(7)
    big["image"] = {"bytes": png(Image.new("RGB", (3000, 3000), (255, 255, 255))), "path": None}
    rows += [outside, empty, big]
    bad = {"vp-5": "point_outside_image", "vp-6": "missing_answer", "vp-7": "image_exceeds_max_pixels"}
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "image": datasets.Image(),
            "question": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "python_code": datasets.Value("string"),
            "element_arrtibute": datasets.Sequence(datasets.Value("string")),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows, features=features).to_parquet(str(path))
    return path, bad
