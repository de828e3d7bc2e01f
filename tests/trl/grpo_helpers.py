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
    """A rollout_logits_processors factory forcing each rollout's text with the project's
    ScriptedLogitsProcessor; ``script`` maps rollout index -> list of round texts."""
    from vthinker_plugins.backends.scripted import Script, ScriptedLogitsProcessor

    tok = processing_class.tokenizer
    plan = Script({f"rollout{i}": rounds for i, rounds in script.items()})

    def factory(requests, prompt_length):
        targets = []
        for req in requests:
            text = plan.text_for(req.sample.id if req.sample else None, req.assistant_prefix)
            targets.append(None if text is None else tok.encode(text, add_special_tokens=False))
        return [ScriptedLogitsProcessor(targets, prompt_length, tok.convert_tokens_to_ids("<|im_end|>"))]

    return factory
