"""The Qwen2-VL / Qwen2.5-VL family's special tokens and ChatML pieces, spelled once.

Everything that renders, encodes, stops at or suppresses one of these tokens (the prompt
renderer, the SFT template and its length check, the backends, the GRPO rollouts, the tiny test
checkpoint) imports them from here.
"""

from __future__ import annotations

from typing import Any

ENDOFTEXT = "<|endoftext|>"  # Qwen's pad token; also ends a turn in some checkpoints
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"  # end of turn (the chat checkpoints' eos)
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
VISION_PAD = "<|vision_pad|>"
IMAGE_PAD = "<|image_pad|>"  # the processor expands one per merged image patch
VIDEO_PAD = "<|video_pad|>"

#: The family's added special tokens, in the order the released tokenizers number them.
SPECIAL_TOKENS = (
    ENDOFTEXT,
    IM_START,
    IM_END,
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    VISION_START,
    VISION_END,
    VISION_PAD,
    IMAGE_PAD,
    VIDEO_PAD,
)

#: Markup of one image in a prompt (the processor expands the pad token).
IMAGE_MARKUP = VISION_START + IMAGE_PAD + VISION_END
#: ChatML pieces as the SFT template renders them (the LlamaFactory template and the converter's
#: length check both use these, so they cannot drift apart).
CHATML_SYSTEM = IM_START + "system\n{content}" + IM_END + "\n"
CHATML_USER = IM_START + "user\n{content}" + IM_END + "\n" + IM_START + "assistant\n"
END_OF_TURN = IM_END + "\n"
#: Texts that end an assistant turn when a server returns special tokens as text.
END_OF_TURN_TEXTS = (IM_END, ENDOFTEXT)

#: Tokens a policy must never sample mid-turn: a stray vision token breaks the image-token/feature
#: correspondence of the next round and of the training forward pass; a turn opener starts a new turn.
NEVER_SAMPLED_TOKENS = (IMAGE_PAD, VIDEO_PAD, VISION_START, VISION_END, VISION_PAD, IM_START)


def never_sampled_ids(tokenizer: Any) -> list[int]:
    """Ids of :data:`NEVER_SAMPLED_TOKENS` that ``tokenizer`` has (unknown tokens are left out)."""
    unk = getattr(tokenizer, "unk_token_id", None)
    ids = (tokenizer.convert_tokens_to_ids(name) for name in NEVER_SAMPLED_TOKENS)
    return sorted({i for i in ids if isinstance(i, int) and i >= 0 and i != unk})
