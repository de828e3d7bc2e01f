"""Render a (partial) V-Thinker conversation into the model's prompt text.

The system and user turns go through the model's own chat template; the
assistant turn is opened and the text generated so far is appended verbatim,
with each ``<image>`` placeholder (prompt images and sandbox images alike)
replaced by the model's image markup. Backends and the RL trainer both call
:func:`build_prompt`, so a rollout is scored on exactly the text it was
generated from.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from vthinker_plugins.model_family import IMAGE_MARKUP
from vthinker_plugins.protocol import IMAGE_PLACEHOLDER, OBS_CLOSE, OBS_OPEN


def _template_owner(processor: Any) -> Any:
    return processor if getattr(processor, "chat_template", None) else getattr(processor, "tokenizer", processor)


@lru_cache(maxsize=32)
def _markup_for(owner_id: int, owner: Any) -> str:
    probe = "\x00MARK\x00"
    text = owner.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": probe}]}],
        tokenize=False,
        add_generation_prompt=False,
    )
    head = text[: text.index(probe)]
    # The markup is what the template put between the user header and the probe text.
    marker = "user\n"
    return head[head.rindex(marker) + len(marker):] if marker in head else IMAGE_MARKUP


def image_markup(processor: Any) -> str:
    """The text one image becomes in this model's prompts (discovered from its chat template)."""
    owner = _template_owner(processor)
    try:
        markup = _markup_for(id(owner), owner)
    except Exception:  # noqa: BLE001 - templates without image support fall back to Qwen's
        return IMAGE_MARKUP
    return markup or IMAGE_MARKUP


def _user_content(user: str) -> list[dict[str, str]]:
    parts: list[dict[str, str]] = []
    pieces = user.split(IMAGE_PLACEHOLDER)
    for i, piece in enumerate(pieces):
        if i:
            parts.append({"type": "image"})
        if piece:
            parts.append({"type": "text", "text": piece})
    return parts


def prompt_messages(system: str, user: str) -> list[dict[str, Any]]:
    """The system and user turns as chat messages (``<image>`` placeholders become image parts).

    :func:`build_prompt` renders exactly these; the GRPO dataset stores them as its ``prompt``
    column so TRL's own rendering of a row equals the rollout's prompt.
    """
    return [
        {"role": "system", "content": [{"type": "text", "text": system}]},
        {"role": "user", "content": _user_content(user)},
    ]


def build_prompt(processor: Any, system: str, user: str, assistant_prefix: str = "") -> str:
    """Prompt text up to the point where the model continues its assistant turn."""
    owner = _template_owner(processor)
    messages = prompt_messages(system, user)
    text = owner.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text + expand_observation_images(processor, assistant_prefix)


_OBSERVATION_RE = re.compile(re.escape(OBS_OPEN) + r".*?" + re.escape(OBS_CLOSE), re.S)


def expand_observation_images(processor: Any, assistant_text: str) -> str:
    """Expand ``<image>`` only inside ``<sandbox_output>`` blocks: a literal ``<image>`` that the
    model itself wrote is text, and must not claim one of the images."""
    markup = image_markup(processor)
    return _OBSERVATION_RE.sub(lambda m: m.group(0).replace(IMAGE_PLACEHOLDER, markup), assistant_text)


def count_prompt_images(user: str, assistant_prefix: str = "") -> int:
    """Images a prompt claims, as :func:`build_prompt` expands them: every ``<image>`` of the user
    turn and those inside ``<sandbox_output>`` blocks of the assistant prefix."""
    in_observations = sum(m.group(0).count(IMAGE_PLACEHOLDER) for m in _OBSERVATION_RE.finditer(assistant_prefix))
    return user.count(IMAGE_PLACEHOLDER) + in_observations


def expand_placeholders(processor: Any, text: str) -> str:
    """Replace ``<image>`` placeholders in any text (e.g. an observation) by the model's markup."""
    return text.replace(IMAGE_PLACEHOLDER, image_markup(processor))
