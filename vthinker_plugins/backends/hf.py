"""Hugging Face transformers backend: Qwen2.5-VL, or any ``AutoModelForImageTextToText`` with a chat template.

Token-level, like the GRPO rollouts, through the same core (:mod:`vthinker_plugins.generation`): per
trajectory it keeps the prompt segment, then per round the ids exactly as generated and the observation
encoded on its own, so the model sees the same tokens as in training, never a re-tokenised text.
Batches are left-padded; no KV cache is kept across rounds. Design notes: docs/generation.md.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from vthinker_plugins.backend import Backend, GenerationOutput, GenerationRequest
from vthinker_plugins.chat import build_prompt
from vthinker_plugins.generation.tokens import (
    TOKENIZER_LOCK,
    GenerationJob,
    SegmentEncoder,
    TokenStates,
    check_image_count,
    finish_turn_segment,
)
from vthinker_plugins.generation.transformers_generator import TransformersGenerator
from vthinker_plugins.model_family import never_sampled_ids


def _resolve_dtype(dtype: Any, device: str) -> Any:
    import torch

    if dtype in (None, "auto"):
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if isinstance(dtype, str):
        try:
            return getattr(torch, {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}.get(dtype, dtype))
        except AttributeError:
            raise ValueError(f"unknown dtype {dtype!r}; use auto, bfloat16, float16 or float32") from None
    return dtype


class HFBackend(Backend):
    """Generate with a local or hub checkpoint through ``transformers``.

    Args:
        model: checkpoint folder or hub id.
        device: ``cpu``, ``cuda``, ``cuda:1``...; default: cuda when available.
        dtype: ``auto`` (bf16 on GPU, fp32 on CPU), ``bfloat16``, ``float16``, ``float32``.
        min_pixels / max_pixels: image size bounds; images are resized with
            qwen-vl-utils ``smart_resize`` to a multiple of the patch grid within
            these bounds and the image processor is set to the same bounds.
        max_batch_size: requests per ``generate`` call (left padding).
        suppress_tokens: suppress vision/``<|im_start|>`` ids (True), none (False) or an explicit id list.
        attn_implementation: passed to ``from_pretrained`` (e.g. ``sdpa``, ``flash_attention_2``).
        max_new_tokens: cap on the tokens of one generation step, whatever the loop asks for (default: none).
    """

    name = "hf"

    def __init__(
        self,
        model: str | Path,
        *,
        device: str | None = None,
        dtype: Any = "auto",
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        max_batch_size: int = 4,
        suppress_tokens: bool | Sequence[int] = True,
        attn_implementation: str | None = None,
        trust_remote_code: bool = False,
        max_new_tokens: int | None = None,
    ) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

        self.model_path = str(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.max_batch_size = int(max_batch_size)
        self.processor = AutoProcessor.from_pretrained(self.model_path, trust_remote_code=trust_remote_code)
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        if not (getattr(self.processor, "chat_template", None) or getattr(self.tokenizer, "chat_template", None)):
            raise ValueError(f"{self.model_path}: the processor has no chat template; the backend needs one")
        self.tokenizer.padding_side = "left"  # decoder-only batching: prompts end where generation starts
        config = AutoConfig.from_pretrained(self.model_path, trust_remote_code=trust_remote_code)
        kwargs: dict[str, Any] = {"dtype": _resolve_dtype(dtype, self.device), "trust_remote_code": trust_remote_code}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        if config.model_type == "qwen2_5_vl":
            from transformers import Qwen2_5_VLForConditionalGeneration as model_cls
        else:
            model_cls = AutoModelForImageTextToText
        if self.device != "cpu":
            kwargs["device_map"] = self.device  # load straight onto the GPU, not via host memory
        self.model = model_cls.from_pretrained(self.model_path, **kwargs)
        if self.device == "cpu":
            self.model.to(self.device)
        self.model.eval()

        self.min_pixels, self.max_pixels = min_pixels, max_pixels
        image_processor = getattr(self.processor, "image_processor", None)
        self._factor = 28
        if image_processor is not None:
            self._factor = getattr(image_processor, "patch_size", 14) * getattr(image_processor, "merge_size", 2)
            if min_pixels is not None or max_pixels is not None:
                size = dict(getattr(image_processor, "size", None) or {})
                if min_pixels is not None:
                    size["shortest_edge"] = int(min_pixels)
                if max_pixels is not None:
                    size["longest_edge"] = int(max_pixels)
                image_processor.size = size

        if suppress_tokens is True:
            self.suppress_ids = never_sampled_ids(self.tokenizer)
        elif suppress_tokens is False:
            self.suppress_ids = []
        else:
            self.suppress_ids = [int(i) for i in suppress_tokens]
        # End of turn: the tokenizer's eos, the model's eos ids and the pad token (Qwen's
        # <|endoftext|>); the pad must end a row too, or padding and text are indistinguishable.
        eos: list[int] = []
        gen_eos = self.model.generation_config.eos_token_id
        for tok in [self.tokenizer.eos_token_id, *(gen_eos if isinstance(gen_eos, list) else [gen_eos])]:
            if tok is not None and tok not in eos:
                eos.append(int(tok))
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos[0]
        if self.pad_id not in eos:
            eos.append(int(self.pad_id))
        self.eos_ids = eos
        self.max_new_tokens_cap = int(max_new_tokens) if max_new_tokens else None

        # Token-level state per trajectory (the loop's observation thread and the generation thread
        # share the tokenizer through the core's TOKENIZER_LOCK). Evaluation prompts are seen once:
        # no prompt cache; a prefix that does not extend the state is re-encoded, not an error.
        self.encoder = SegmentEncoder(self.processor, prepare_image=self.prepare_image, cache_prompts=False)
        self.tokens = TokenStates(self.encoder, strict=False)
        generation_config = copy.deepcopy(self.model.generation_config)
        generation_config.eos_token_id = list(self.eos_ids)
        generation_config.pad_token_id = self.pad_id
        self.generator = TransformersGenerator(
            lambda: self.model,
            self.processor,
            generation_config,
            stop_strings=None,  # the requests' own (evaluation: </code> and </answer>)
            logits_processors=self.logits_processors,
            suppress_ids=self.suppress_ids,
        )

    # ------------------------------------------------------------------ images

    def prepare_image(self, image: Image.Image) -> Image.Image:
        """RGB, resized with qwen-vl-utils ``smart_resize`` when pixel bounds are set."""
        image = image.convert("RGB") if image.mode != "RGB" else image
        if self.min_pixels is None and self.max_pixels is None:
            return image
        from qwen_vl_utils import smart_resize

        h, w = smart_resize(image.height, image.width, self._factor, self.min_pixels, self.max_pixels)
        return image if (h, w) == (image.height, image.width) else image.resize((w, h), Image.Resampling.BICUBIC)

    # ------------------------------------------------------------------ generation

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationOutput]:
        outputs: list[GenerationOutput | None] = [None] * len(requests)
        # Sampling settings are per generate() call, so group requests that share them.
        groups: dict[tuple[float, float, tuple[str, ...]], list[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault((req.temperature, req.top_p, tuple(req.stop)), []).append(i)
        for idx in groups.values():
            for start in range(0, len(idx), self.max_batch_size):
                chunk = idx[start:start + self.max_batch_size]
                for i, out in zip(chunk, self._generate_batch([requests[i] for i in chunk]), strict=True):
                    outputs[i] = out
        return [o for o in outputs if o is not None]

    def prompt_text(self, request: GenerationRequest) -> str:
        """The text the model continues for ``request`` (it is fed the segment-wise ids, not this re-encoded)."""
        return build_prompt(self.processor, request.system, request.user, request.assistant_prefix)

    def _job(self, request: GenerationRequest) -> GenerationJob:
        check_image_count(request)
        return self.tokens.job(request, self._budget(request))

    def logits_processors(self, requests: Sequence[GenerationRequest], prompt_length: int) -> list[Any]:
        """Extra ``transformers`` logits processors of one batch (``prompt_length``: its left-padded width);
        none here. A subclass constrains generation with them (the ``scripted:`` test spec)."""
        return []

    def _generate_batch(self, requests: Sequence[GenerationRequest]) -> list[GenerationOutput]:
        jobs = [self._job(r) for r in requests]
        generated = self.generator(jobs)
        outputs = []
        with TOKENIZER_LOCK:
            for req, gen in zip(requests, generated, strict=True):
                out = self._finish(req, gen.ids)
                self.tokens.record(req.key, out.token_ids or [], out.text)
                outputs.append(out)
        return outputs

    def _budget(self, request: GenerationRequest) -> int:
        if self.max_new_tokens_cap is None:
            return request.max_new_tokens
        return min(request.max_new_tokens, self.max_new_tokens_cap)

    def _finish(self, request: GenerationRequest, generated: list[int]) -> GenerationOutput:
        """Cut one row at end of turn / its own token limit / the first stop string."""
        return finish_turn_segment(self.tokenizer, request, generated, self.eos_ids, self._budget(request))

    def observation_token_ids(self, observation: str, images: Sequence[Image.Image]) -> list[int] | None:
        """Token ids of an observation with each image expanded to its image tokens.

        The segment is kept: the trajectory's next round appends exactly these ids."""
        return self.tokens.observation(observation, images).ids

    def release(self, key: str) -> None:
        self.tokens.release(key)

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass
