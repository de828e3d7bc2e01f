"""Token length of a stage-2 sample exactly as LlamaFactory 0.9.5 encodes it (``vthinker_qwen2_vl``).

LlamaFactory truncates samples longer than ``cutoff_len`` regardless of image tokens, and a
V-Interaction sample cut through its images makes training crash; 0.9.5 cannot drop such samples
itself. :class:`LengthCounter` counts text and image tokens as LlamaFactory will, so that
``vthinker convert interaction --cutoff-len`` can exclude them first (reason ``too_long``).

Design notes (how text and image tokens are counted): docs/data.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vthinker_plugins.model_family import CHATML_SYSTEM, CHATML_USER, END_OF_TURN, VISION_END, VISION_START
from vthinker_plugins.protocol import DEFAULT_SYSTEM_PROMPT, IMAGE_PLACEHOLDER

#: The ``vthinker_qwen2_vl`` template's message formats (see :mod:`vthinker_plugins.llamafactory.template`).
SYSTEM_FORMAT, USER_FORMAT = CHATML_SYSTEM, CHATML_USER

#: LlamaFactory 0.9.5 defaults (``ProcessorArguments``); the project's YAMLs set image_max_pixels: 4194304.
LF_IMAGE_MAX_PIXELS = 4_194_304
LF_IMAGE_MIN_PIXELS = 32 * 32

_LOADED: dict[str, tuple[Any, Any]] = {}


def _load(checkpoint: str) -> tuple[Any, Any]:
    """(tokenizer, image processor) of a checkpoint folder or hub id, once per process."""
    if checkpoint not in _LOADED:
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(checkpoint)
        image_processor = getattr(processor, "image_processor", None)
        if image_processor is None or not hasattr(image_processor, "get_number_of_image_patches"):
            raise ValueError(f"{checkpoint}: not a Qwen-VL processor (no image processor counting patches)")
        _LOADED[checkpoint] = (getattr(processor, "tokenizer", processor), image_processor)
    return _LOADED[checkpoint]


def lf_image_size(width: int, height: int, image_max_pixels: int, image_min_pixels: int) -> tuple[int, int]:
    """The size LlamaFactory's Qwen2-VL plugin resizes an image to before the image processor sees it."""
    if width * height > image_max_pixels:
        factor = math.sqrt(image_max_pixels / (width * height))
        width, height = int(width * factor), int(height * factor)
    if width * height < image_min_pixels:
        factor = math.sqrt(image_min_pixels / (width * height))
        width, height = int(width * factor), int(height * factor)
    if min(width, height) < 28:
        width, height = max(width, 28), max(height, 28)
    if width / height > 200:
        width, height = height * 180, height
    if height / width > 200:
        width, height = width, width * 180
    return width, height


@dataclass
class LengthCounter:
    """Counts a sample's tokens as LlamaFactory will (picklable: the checkpoint loads lazily per process)."""

    checkpoint: str
    image_max_pixels: int = LF_IMAGE_MAX_PIXELS
    image_min_pixels: int = LF_IMAGE_MIN_PIXELS

    def image_tokens(self, width: int, height: int) -> int:
        """``<|image_pad|>`` tokens of one image of this size (without the vision start/end tokens)."""
        _, image_processor = _load(self.checkpoint)
        w, h = lf_image_size(width, height, self.image_max_pixels, self.image_min_pixels)
        patches = image_processor.get_number_of_image_patches(h, w, {})
        return int(patches) // int(image_processor.merge_size) ** 2

    def count(self, messages: Sequence[dict[str, str]], image_sizes: Sequence[tuple[int, int]]) -> int:
        """Tokens of a sharegpt sample (``system?, user, assistant, observation, ..., assistant``) whose
        ``<image>`` placeholders stand, in order, for images of ``image_sizes`` (width, height)."""
        tokenizer, _ = _load(self.checkpoint)
        messages = list(messages)
        system = ""
        if messages and messages[0]["role"] == "system":
            system = messages[0]["content"]
            messages = messages[1:]
        system = system or DEFAULT_SYSTEM_PROMPT  # the template's default_system, as LlamaFactory does

        def encode(text: str) -> int:
            text = text.replace(IMAGE_PLACEHOLDER, VISION_START + VISION_END)
            return len(tokenizer.encode(text, add_special_tokens=False)) if text else 0

        total = 0
        for i, message in enumerate(messages):
            if i == 0:
                total += encode(SYSTEM_FORMAT.format(content=system))
            content = message["content"]
            total += encode(USER_FORMAT.format(content=content) if message["role"] == "user" else content)
        if messages and messages[-1]["role"] == "assistant":
            total += encode(END_OF_TURN)
        n_placeholders = sum(m["content"].count(IMAGE_PLACEHOLDER) for m in messages)
        if n_placeholders != len(image_sizes):
            raise ValueError(f"{n_placeholders} <image> placeholders for {len(image_sizes)} images")
        return total + sum(self.image_tokens(w, h) for w, h in image_sizes)
