"""Token-level bookkeeping of multi-round assistant turns, shared by evaluation and RL.

A turn is kept as segments of ids (the prompt, then per round the generated ids and the sandbox
observation encoded on its own), never re-rendered as text, so the model always continues exactly the
tokens it produced. :class:`SegmentEncoder` tokenises; :class:`TokenStates` keeps each trajectory's ids
and images. Framework-free: torch, PIL and the model's processor only. Design notes: docs/generation.md.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from vthinker_plugins.backend import GenerationOutput, GenerationRequest
from vthinker_plugins.chat import build_prompt, count_prompt_images, expand_observation_images, expand_placeholders
from vthinker_plugins.protocol import IMAGE_PLACEHOLDER

#: Rust tokenizers raise "Already borrowed" when one thread encodes (which may reset padding and
#: truncation) while another decodes; the loop encodes observations on its event-loop thread while
#: the worker thread generates and decodes, so every tokenizer call of a backend goes through this.
TOKENIZER_LOCK = threading.RLock()


# --------------------------------------------------------------------------- segments

@dataclass
class Segment:
    """Token ids of a piece of text with its images expanded, plus those images' features."""

    ids: list[int]
    pixel_values: torch.Tensor | None = None
    image_grid_thw: torch.Tensor | None = None

    @property
    def n_images(self) -> int:
        return 0 if self.image_grid_thw is None else int(self.image_grid_thw.shape[0])


def _digest(image: Image.Image) -> str:
    return hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest() + f"{image.size}{image.mode}"


class SegmentEncoder:
    """Tokenise prompts and observations with the model's processor (image tokens expanded).

    The same image processor later builds the training ``pixel_values``, so the number of
    image tokens always agrees with ``image_grid_thw``. ``prepare_image`` (e.g. a resize to
    the backend's pixel bounds) is applied to every image before the processor sees it.
    Prompt encodings are cached when ``cache_prompts`` (the G rollouts of a GRPO prompt share
    one); call :meth:`clear` between steps. Evaluation sees each prompt once: no cache.
    """

    def __init__(
        self,
        processor: Any,
        prepare_image: Callable[[Image.Image], Image.Image] | None = None,
        cache_prompts: bool = True,
    ) -> None:
        self.processor = processor
        self.prepare_image = prepare_image
        self.cache_prompts = cache_prompts
        self._prompts: dict[tuple[str, tuple[str, ...]], Segment] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._prompts.clear()

    def encode(self, text: str, images: Sequence[Image.Image]) -> Segment:
        """``text`` in model markup (image tokens already in place) with ``images`` in order."""
        kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt"}
        if images:
            kwargs["images"] = [self.prepare_image(im) for im in images] if self.prepare_image else list(images)
        with TOKENIZER_LOCK:
            enc = self.processor(**kwargs)
        return Segment(
            ids=enc["input_ids"][0].tolist(),
            pixel_values=enc.get("pixel_values") if images else None,
            image_grid_thw=enc.get("image_grid_thw") if images else None,
        )

    def prompt_text(self, system: str, user: str) -> str:
        return build_prompt(self.processor, system, user)

    def prompt(self, system: str, user: str, images: Sequence[Image.Image]) -> Segment:
        text = self.prompt_text(system, user)
        if not self.cache_prompts:
            return self.encode(text, images)
        key = (text, tuple(_digest(im) for im in images))
        with self._lock:
            cached = self._prompts.get(key)
        if cached is None:
            cached = self.encode(text, images)
            with self._lock:
                self._prompts[key] = cached
        return cached

    def observation(self, observation: str, images: Sequence[Image.Image]) -> Segment:
        """An observation as it is appended to the assistant turn."""
        return self.encode(expand_placeholders(self.processor, observation), images)

    def assistant_text(self, text: str, images: Sequence[Image.Image]) -> Segment:
        """Assistant-turn text encoded as one piece (only ``<image>`` inside observations are images)."""
        return self.encode(expand_observation_images(self.processor, text), images)


# --------------------------------------------------------------------------- jobs for generators

@dataclass
class GenerationJob:
    """One continuation: the full token ids so far and every image in them."""

    request: GenerationRequest
    ids: list[int]
    images: list[Image.Image]
    pixel_values: torch.Tensor | None
    image_grid_thw: torch.Tensor | None
    max_new_tokens: int


@dataclass
class GeneratedTokens:
    ids: list[int]
    logprobs: list[float] | None = None


Generator = Callable[[Sequence[GenerationJob]], list[GeneratedTokens]]


# --------------------------------------------------------------------------- per-trajectory state

@dataclass
class TokenState:
    """Everything one trajectory's model input consists of so far."""

    ids: list[int]
    images: list[Image.Image]
    pixel_values: list[torch.Tensor] = field(default_factory=list)
    grids: list[torch.Tensor] = field(default_factory=list)
    #: The assistant-turn text these ids stand for (what the loop sends as ``assistant_prefix``).
    prefix: str = ""
    #: The prompt the ids start with: a reused key with another prompt must not extend them.
    system: str = ""
    user: str = ""

    def add(self, segment: Segment, images: Sequence[Image.Image], keep_pixels: bool = True) -> None:
        self.ids.extend(segment.ids)
        self.images.extend(images)
        if segment.image_grid_thw is not None:
            self.grids.append(segment.image_grid_thw)
            # vLLM processes the images itself: pixel values of up to 11 images per rollout would
            # only cost memory there.
            if keep_pixels:
                self.pixel_values.append(segment.pixel_values)


class TokenStates:
    """The token states of the trajectories in flight, keyed by ``GenerationRequest.key``.

    A request with the state's prompt whose ``assistant_prefix`` extends the state's text by an
    observation gets that observation appended as its own segment (the one :meth:`observation` encoded for the loop's
    token budget, when it did). With ``strict`` (RL: the ids are trained on) any other prefix is
    an error; otherwise (evaluation: a request without prior state but with a prefix, a resumed
    conversation) the state is rebuilt once from the prompt plus the prefix encoded as text.
    """

    def __init__(self, encoder: SegmentEncoder, keep_pixels: bool = True, strict: bool = True,
                 max_pending_observations: int = 1024) -> None:
        self.encoder = encoder
        self.keep_pixels = keep_pixels
        self.strict = strict
        self.max_pending_observations = max_pending_observations
        self._states: dict[str, TokenState] = {}
        # (text, image ids) -> (images, segment); the images are held so their ids stay unique.
        self._observations: OrderedDict[tuple[str, tuple[int, ...]], tuple[tuple[Image.Image, ...], Segment]]
        self._observations = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> TokenState | None:
        with self._lock:
            return self._states.get(key)

    def clear(self) -> None:
        with self._lock:
            self._states.clear()
            self._observations.clear()

    def release(self, key: str) -> None:
        with self._lock:
            self._states.pop(key, None)

    def observation(self, observation: str, images: Sequence[Image.Image]) -> Segment:
        """Encode an observation and keep it for the trajectory's next job."""
        segment = self.encoder.observation(observation, images)
        with self._lock:
            self._observations[(observation, tuple(id(im) for im in images))] = (tuple(images), segment)
            while len(self._observations) > self.max_pending_observations:
                self._observations.popitem(last=False)
        return segment

    def _take_observation(self, observation: str, images: Sequence[Image.Image]) -> Segment:
        with self._lock:
            hit = self._observations.pop((observation, tuple(id(im) for im in images)), None)
        if hit is not None and all(a is b for a, b in zip(hit[0], images, strict=True)):
            return hit[1]
        return self.encoder.observation(observation, images)

    def _fresh(self, request: GenerationRequest) -> TokenState:
        """Prompt segment, then (fallback) the whole assistant prefix encoded as text once."""
        n_user = request.user.count(IMAGE_PLACEHOLDER)
        user_images, later = list(request.images[:n_user]), list(request.images[n_user:])
        state = TokenState(ids=[], images=[], system=request.system, user=request.user)
        state.add(self.encoder.prompt(request.system, request.user, user_images), user_images, self.keep_pixels)
        if request.assistant_prefix:
            state.add(self.encoder.assistant_text(request.assistant_prefix, later), later, self.keep_pixels)
            state.prefix = request.assistant_prefix
        return state

    def job(self, request: GenerationRequest, max_new_tokens: int | None = None) -> GenerationJob:
        """The full input of ``request``, its trajectory's state extended by the new observation."""
        state = self.get(request.key)
        prefix = request.assistant_prefix
        same_prompt = state is not None and (state.system, state.user) == (request.system, request.user)
        if state is not None and same_prompt and prefix.startswith(state.prefix):
            tail = prefix[len(state.prefix):]
            if tail:
                new_images = list(request.images[len(state.images):])
                state.add(self._take_observation(tail, new_images), new_images, self.keep_pixels)
                state.prefix += tail
        elif state is None and not prefix:
            state = self._fresh(request)
        elif self.strict:
            raise RuntimeError(f"rollout {request.key}: the assistant turn changed behind the backend's back")
        else:
            state = self._fresh(request)
        with self._lock:
            self._states[request.key] = state
        if len(state.images) != len(request.images):
            raise RuntimeError(
                f"rollout {request.key}: {len(request.images)} images in the request, {len(state.images)} encoded"
            )
        return GenerationJob(
            request=request,
            ids=list(state.ids),
            images=list(state.images),
            pixel_values=torch.cat(state.pixel_values) if state.pixel_values else None,
            image_grid_thw=torch.cat(state.grids) if state.grids else None,
            max_new_tokens=request.max_new_tokens if max_new_tokens is None else max_new_tokens,
        )

    def record(self, key: str, ids: Sequence[int], text: str) -> None:
        """Append what the model generated: its token ids and the text they stand for."""
        state = self.get(key)
        if state is None:
            raise RuntimeError(f"rollout {key}: generated tokens for a trajectory without state")
        state.ids.extend(ids)
        state.prefix += text


# --------------------------------------------------------------------------- evaluation backends' common steps

def check_image_count(request: GenerationRequest) -> None:
    """The request's text has one image placeholder per image (counted on the text: no template render)."""
    n_marks, n_images = count_prompt_images(request.user, request.assistant_prefix), len(request.images)
    if n_marks != n_images:
        raise ValueError(
            f"request {request.key}: the prompt has {n_marks} image placeholder(s) but {n_images} image(s)"
        )


def finish_turn_segment(
    tokenizer: Any, request: GenerationRequest, generated: Sequence[int], eos_ids: Sequence[int], budget: int
) -> GenerationOutput:
    """Cut generated ids at the end of turn, the request's own token budget, or its first stop string.

    The text ends at the stop string. A last token that runs past it (e.g. ``>\n`` completing
    ``</code>``) is replaced by the encoding of the text up to the stop string, so the ids the next
    round continues say what the returned text says.
    """
    ids: list[int] = []
    saw_eos = False
    for tok in generated:
        if tok in eos_ids:
            saw_eos = True
            break
        ids.append(tok)
    if len(ids) > budget:  # batch-mates may allow more tokens than this request
        ids, saw_eos = ids[:budget], False
    text = tokenizer.decode(ids, skip_special_tokens=False)
    hits = [(text.find(s) + len(s), s) for s in request.stop if s and s in text]
    if hits:
        end = min(hits)[0]
        # Keep the shortest token prefix whose text already contains the stop string.
        while len(ids) > 1 and len(tokenizer.decode(ids[:-1], skip_special_tokens=False)) >= end:
            ids = ids[:-1]
        if len(tokenizer.decode(ids, skip_special_tokens=False)) > end:
            head = ids[:-1]
            head_text = tokenizer.decode(head, skip_special_tokens=False)
            ids = head + tokenizer.encode(text[len(head_text):end], add_special_tokens=False)
        return GenerationOutput(text=text[:end], finish_reason="stop", token_ids=ids)
    return GenerationOutput(text=text, finish_reason="eos" if saw_eos else "length", token_ids=ids)
