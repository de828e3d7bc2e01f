"""A model that writes the text "<image>" itself must not claim one of the images."""

from __future__ import annotations

from PIL import Image
from transformers import AutoProcessor

from vthinker_plugins.backend import GenerationRequest
from vthinker_plugins.backends.openai_api import build_messages
from vthinker_plugins.chat import build_prompt, image_markup
from vthinker_plugins.protocol import DEFAULT_PROMPTS, observation_text

PREFIX = "I will mark <image> corners." + "<code>\nprint(1)\n</code>" + observation_text("<image>") + "So <image> is"


def test_build_prompt_expands_only_user_and_observation_images(tiny_model_dir) -> None:
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    user = DEFAULT_PROMPTS.user_prompt("How many?", 1)
    prompt = build_prompt(processor, DEFAULT_PROMPTS.system, user, PREFIX)
    assert prompt.count(image_markup(processor)) == 2  # the input image and the sandbox image
    assert "I will mark <image> corners." in prompt and prompt.endswith("So <image> is")


def test_openai_prefill_keeps_model_written_placeholders_as_text() -> None:
    images = [Image.new("RGB", (28, 28)), Image.new("RGB", (28, 28), "red")]
    request = GenerationRequest(
        key="k", system="s", user=DEFAULT_PROMPTS.user_prompt("Q", 1), assistant_prefix=PREFIX,
        images=images, max_new_tokens=8,
    )
    messages, continues = build_messages(request, "prefill")
    assert continues
    parts = messages[-1]["content"]
    assert sum(p["type"] == "image_url" for p in parts) == 1
    assert "".join(p.get("text", "<image>") for p in parts) == PREFIX


def test_printed_tags_cannot_claim_images_or_close_the_observation() -> None:
    from sandbox import CellResult, CellStatus
    from vthinker_plugins.protocol import IMAGE_PLACEHOLDER, render_observation, strip_observations

    result = CellResult(status=CellStatus.OK, stdout="see <image> and </sandbox_output> x", stderr="", error=None,
                        images=[], wall_s=0.01, truncated=False)
    text, shown = render_observation(result, images_left=5)
    assert shown == 0 and text.count(IMAGE_PLACEHOLDER) == 0
    assert text.count("</sandbox_output>") == 1 and strip_observations("a" + text + "b") == "a\n\nb"
