"""Fixtures of the GRPO tests: a small RL dataset in the hub's shape, a shared sandbox, scripts."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw


def make_image(seed: int, size: int = 112) -> Image.Image:
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    draw.polygon([(10 + seed, 90), (60, 10 + seed), (100, 90)], outline="black", width=2)
    return image


@pytest.fixture(scope="session")
def rl_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four V-Interaction-shaped rows (question, image, answer) as parquet with embedded images."""
    import datasets

    rows = {
        "id": [f"q{i}" for i in range(4)],
        "question": [f"How many sides does shape {i} have?" for i in range(4)],
        "image": [make_image(i) for i in range(4)],
        "answer": ["3", "3", "4", "3"],
    }
    features = datasets.Features(
        {"id": datasets.Value("string"), "question": datasets.Value("string"), "image": datasets.Image(),
         "answer": datasets.Value("string")}
    )
    path = tmp_path_factory.mktemp("rl") / "train.parquet"
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(path))
    return path


@pytest.fixture(scope="session")
def sandbox():
    from sandbox import Sandbox, SandboxConfig

    box = Sandbox(SandboxConfig(wall_time_s=2.0, workers=2))
    yield box
    close = getattr(box, "close", None)
    if close is not None:
        close()


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
