"""Helpers of the GRPO tests: test images, scripted code blocks, a scripted-generation factory."""

from __future__ import annotations

from PIL import Image, ImageDraw


def make_image(seed: int, size: int = 112) -> Image.Image:
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    draw.polygon([(10 + seed, 90), (60, 10 + seed), (100, 90)], outline="black", width=2)
    return image


DRAW = (
    "<code>\n```python\nfrom PIL import Image, ImageDraw\nimg = Image.open(image_path)\n"
    "ImageDraw.Draw(img).line((0, 0, 60, 60), fill='red', width=3)\nimg.save(processed_path)\n"
    "print(processed_path)\n```\n</code>"
)
FAIL = "<code>\n```python\nraise ValueError('boom from the test')\n```\n</code>"
HANG = "<code>\n```python\nimport time\ntime.sleep(30)\n```\n</code>"


def scripted(processing_class, script):
    """A rollout_logits_processors factory forcing rollout ``i`` to write ``script[i]`` (round texts)."""
    from vthinker_plugins.testing.scripted import scripted_logits_processors

    return scripted_logits_processors(processing_class, {f"rollout{i}": rounds for i, rounds in script.items()})
