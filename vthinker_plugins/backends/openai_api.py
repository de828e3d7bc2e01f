"""Any OpenAI-compatible chat endpoint (vLLM/SGLang servers, OpenAI, other hosted APIs).

Images travel as ``data:image/png;base64,...`` URLs. A partial assistant turn is continued by
``prefill`` (vLLM/SGLang servers: the model continues its own turn) or ``turns`` (APIs without
assistant prefill, e.g. OpenAI's); ``auto`` (default) picks by ``base_url``.
The modes in detail: docs/generation.md.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PIL import Image

from vthinker_plugins.backend import Backend, GenerationOutput, GenerationRequest
from vthinker_plugins.model_family import END_OF_TURN_TEXTS
from vthinker_plugins.protocol import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    CODE_CLOSE,
    CODE_OPEN,
    IMAGE_PLACEHOLDER,
    OBS_CLOSE,
    OBS_OPEN,
)

MODES = ("auto", "prefill", "turns")


def image_data_url(image: Image.Image) -> str:
    """A PNG data URL for ``image``."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def content_parts(text: str, images: Sequence[Image.Image]) -> list[dict[str, Any]]:
    """Chat content parts: ``text`` split at ``<image>`` placeholders, each filled by the next image."""
    pieces = text.split(IMAGE_PLACEHOLDER)
    if len(pieces) - 1 != len(images):
        raise ValueError(f"{len(pieces) - 1} image placeholder(s) but {len(images)} image(s)")
    parts: list[dict[str, Any]] = []
    for i, piece in enumerate(pieces):
        if i:
            parts.append({"type": "image_url", "image_url": {"url": image_data_url(images[i - 1])}})
        if piece:
            parts.append({"type": "text", "text": piece})
    return parts


def _split_rounds(prefix: str) -> list[tuple[str, str]]:
    """``prefix`` as (assistant text, observation) pairs; the last observation may be empty."""
    pairs: list[tuple[str, str]] = []
    pos = 0
    while True:
        start = prefix.find(OBS_OPEN, pos)
        if start < 0:
            pairs.append((prefix[pos:], ""))
            return [(a, o) for a, o in pairs if a or o]
        end = prefix.find(OBS_CLOSE, start)
        end = len(prefix) if end < 0 else end + len(OBS_CLOSE)
        # The observation's surrounding newlines belong to it (render_observation adds them).
        text = prefix[pos:start]
        obs_start = start - 1 if text.endswith("\n") else start
        obs_end = end + 1 if prefix[end:end + 1] == "\n" else end
        pairs.append((prefix[pos:obs_start], prefix[obs_start:obs_end]))
        pos = obs_end


def build_messages(request: GenerationRequest, mode: str) -> tuple[list[dict[str, Any]], bool]:
    """Chat messages for ``request`` and whether the last one is an assistant prefix to continue."""
    if mode not in ("prefill", "turns"):
        raise ValueError(f"mode must be 'prefill' or 'turns', got {mode!r}")
    n_user = request.user.count(IMAGE_PLACEHOLDER)
    user_images, tool_images = list(request.images[:n_user]), list(request.images[n_user:])
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": request.system},
        {"role": "user", "content": content_parts(request.user, user_images)},
    ]
    prefix = request.assistant_prefix
    if not prefix:
        return messages, False
    if mode == "prefill":
        # Only observations carry images; an "<image>" the model wrote itself stays text.
        parts: list[dict[str, Any]] = []
        for text, observation in _split_rounds(prefix):
            if text:
                parts.append({"type": "text", "text": text})
            if observation:
                n = observation.count(IMAGE_PLACEHOLDER)
                shown, tool_images = tool_images[:n], tool_images[n:]
                parts.extend(content_parts(observation, shown))
        merged: list[dict[str, Any]] = []
        for part in parts:  # adjacent text pieces travel as one part
            if merged and part["type"] == "text" and merged[-1]["type"] == "text":
                merged[-1] = {"type": "text", "text": merged[-1]["text"] + part["text"]}
            else:
                merged.append(part)
        messages.append({"role": "assistant", "content": merged})
        return messages, True
    continues = False
    for text, observation in _split_rounds(prefix):
        if text:
            messages.append({"role": "assistant", "content": text})
            continues = True
        if observation:
            n = observation.count(IMAGE_PLACEHOLDER)
            shown, tool_images = tool_images[:n], tool_images[n:]
            messages.append({"role": "user", "content": content_parts(observation.strip("\n"), shown)})
            continues = False
    return messages, continues


def restore_stop(text: str, finish_reason: str, stop: Sequence[str], matched: Any = None) -> tuple[str, str]:
    """Put back the stop string an API stripped, and map its finish reason to ours."""
    if finish_reason == "length":
        return text, "length"
    if any(text.endswith(s) for s in stop):
        return text, "stop"
    if isinstance(matched, str) and matched in stop:  # vLLM reports the matched stop string
        return text + matched, "stop"
    for open_tag, close_tag in ((CODE_OPEN, CODE_CLOSE), (ANSWER_OPEN, ANSWER_CLOSE)):
        if close_tag in stop and text.rfind(open_tag) > text.rfind(close_tag):
            return text + close_tag, "stop"
    return text, "eos"


class OpenAIBackend(Backend):
    """Continue V-Thinker turns through an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        model: the served model name.
        base_url / api_key: default to ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``.
        mode: ``auto``, ``prefill`` or ``turns`` (see the module docstring).
        max_batch_size: requests sent concurrently.
        timeout / max_retries: per request, handed to the OpenAI client.
        extra_body: extra request fields (e.g. ``{"top_k": 1}`` for vLLM).
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        mode: str = "auto",
        max_batch_size: int = 16,
        timeout: float = 600.0,
        max_retries: int = 3,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        from openai import OpenAI

        if not model:
            raise ValueError("openai backend: empty model name (use openai:MODEL_NAME)")
        if mode not in MODES:
            raise ValueError(f"openai backend: mode must be one of {MODES}, got {mode!r}")
        self.model = model
        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"  # local servers accept any key
        if mode == "auto":
            mode = "prefill" if base_url and "api.openai.com" not in base_url else "turns"
        self.mode = mode
        self.max_batch_size = int(max_batch_size)
        self.extra_body = dict(extra_body or {})
        self.client = OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)

    def request_kwargs(self, request: GenerationRequest) -> dict[str, Any]:
        """Keyword arguments of ``client.chat.completions.create`` for ``request``."""
        messages, continues = build_messages(request, self.mode)
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "stop": list(request.stop) or None,
        }
        if request.top_p < 1.0:
            kwargs["top_p"] = request.top_p
        extra = dict(self.extra_body)
        if self.mode == "prefill":
            extra.setdefault("include_stop_str_in_output", True)
            extra.setdefault("skip_special_tokens", False)
            if continues:
                extra.update(continue_final_message=True, add_generation_prompt=False)
        if extra:
            kwargs["extra_body"] = extra
        return kwargs

    def _one(self, request: GenerationRequest) -> GenerationOutput:
        response = self.client.chat.completions.create(**self.request_kwargs(request))
        choice = response.choices[0]
        text = choice.message.content or ""
        if choice.finish_reason == "stop":
            for eot in END_OF_TURN_TEXTS:
                if text.endswith(eot):
                    return GenerationOutput(text=text[: -len(eot)], finish_reason="eos")
        matched = getattr(choice, "stop_reason", None)
        text, finish = restore_stop(text, choice.finish_reason or "stop", request.stop, matched)
        return GenerationOutput(text=text, finish_reason=finish)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationOutput]:
        if len(requests) == 1:
            return [self._one(requests[0])]
        with ThreadPoolExecutor(max_workers=len(requests)) as pool:
            return list(pool.map(self._one, requests))

    def close(self) -> None:
        self.client.close()
