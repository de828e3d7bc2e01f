"""Hugging Face transformers backend: Qwen2.5-VL, or any ``AutoModelForImageTextToText`` with a chat template.

Each generation step renders the conversation with :func:`vthinker_plugins.chat.build_prompt`
(system + user through the chat template, then the assistant prefix verbatim,
sandbox images included) and re-encodes it. KV-cache reuse across rounds: the
simple, always-correct path is implemented — the whole prompt + prefix is
re-encoded every round. Its cost is one prefill per round (the vision tower on
every image again plus the text prefill); ``benchmarks/hf_reencode.py`` measures
it against decoding. Carrying the cache over would save that prefill, but a
Qwen2.5-VL cache cannot simply be extended: M-RoPE positions of the new images
depend on ``image_grid_thw`` and the rope deltas are recomputed per prompt.

Batches are left-padded; generation stops at the protocol's stop strings
(``stop_strings`` + tokenizer in ``generate``), and the returned text includes the
stop string. Vision and turn-opening tokens are suppressed: a model that emits
``<|image_pad|>`` mid-turn crashes the next round.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from vthinker_plugins.chat import build_prompt, expand_placeholders, image_markup
from vthinker_plugins.loop import Backend, GenerationOutput, GenerationRequest
from vthinker_plugins.tiny_model import suppressed_token_ids

from .scripted import Script, ScriptedLogitsProcessor


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
        script: a :class:`~vthinker_plugins.backends.scripted.Script` or JSONL path; forces
            the generated tokens (tests: the real model/processor/loop, scripted output).
        attn_implementation: passed to ``from_pretrained`` (e.g. ``sdpa``, ``flash_attention_2``).
        max_new_tokens: cap on the tokens of one generation step, whatever the loop asks for;
            default: the checkpoint's ``generation_config.max_new_tokens`` when it sets one (the
            tiny test model does; released Qwen2.5-VL checkpoints do not), else no cap.
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
        script: str | Path | Script | None = None,
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
        # The loop encodes observations on its event-loop thread while a batch is being encoded or
        # decoded in the generation thread; the Rust tokenizer's padding state is shared between them.
        self._tokenizer_lock = threading.RLock()
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
        self._markup = image_markup(self.processor)

        if suppress_tokens is True:
            self.suppress_ids = [i for i in suppressed_token_ids(self.tokenizer) if isinstance(i, int) and i >= 0]
            unk = getattr(self.tokenizer, "unk_token_id", None)
            self.suppress_ids = [i for i in self.suppress_ids if i != unk]
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
        self.script = Script.load(script) if script is not None else None
        cap = max_new_tokens if max_new_tokens is not None else self.model.generation_config.max_new_tokens
        self.max_new_tokens_cap = int(cap) if cap else None

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
        """The exact text the model continues for ``request``."""
        return build_prompt(self.processor, request.system, request.user, request.assistant_prefix)

    def _generate_batch(self, requests: Sequence[GenerationRequest]) -> list[GenerationOutput]:
        import torch

        prompts = [self.prompt_text(r) for r in requests]
        images: list[Image.Image] = []
        for req, prompt in zip(requests, prompts, strict=True):
            n_marks = prompt.count(self._markup)
            if n_marks != len(req.images):
                raise ValueError(
                    f"request {req.key}: the prompt has {n_marks} image placeholder(s) but {len(req.images)} image(s)"
                )
            images.extend(self.prepare_image(im) for im in req.images)
        with self._tokenizer_lock:
            inputs = self.processor(text=prompts, images=images or None, padding=True, return_tensors="pt")
        inputs = inputs.to(self.device)
        prompt_len = inputs["input_ids"].shape[1]
        first = requests[0]
        max_new = max(self._budget(r) for r in requests)
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": max_new,
            "stop_strings": list(first.stop) or None,
            "tokenizer": self.tokenizer,
            "eos_token_id": self.eos_ids,
            "pad_token_id": self.pad_id,
            "do_sample": first.temperature > 0,
        }
        if first.temperature > 0:
            gen_kwargs.update(temperature=first.temperature, top_p=first.top_p)
        else:
            gen_kwargs.update(temperature=None, top_p=None, top_k=None)
        if self.suppress_ids:
            gen_kwargs["suppress_tokens"] = self.suppress_ids
        if self.script is not None:
            targets = []
            for req in requests:
                sample = req.sample
                text = self.script.text_for(
                    sample.id if sample else req.key.split("#")[0],
                    req.assistant_prefix,
                    sample.answer if sample else None,
                )
                with self._tokenizer_lock:
                    targets.append(None if text is None else self.tokenizer.encode(text, add_special_tokens=False))
            gen_kwargs["logits_processor"] = [ScriptedLogitsProcessor(targets, prompt_len, self.eos_ids[0])]
        with torch.inference_mode():
            sequences = self.model.generate(**inputs, **gen_kwargs)
        with self._tokenizer_lock:
            return [self._finish(req, sequences[row, prompt_len:].tolist()) for row, req in enumerate(requests)]

    def _budget(self, request: GenerationRequest) -> int:
        if self.max_new_tokens_cap is None:
            return request.max_new_tokens
        return min(request.max_new_tokens, self.max_new_tokens_cap)

    def _finish(self, request: GenerationRequest, generated: list[int]) -> GenerationOutput:
        """Cut one row at end of turn / its own token limit / the first stop string."""
        ids: list[int] = []
        saw_eos = False
        for tok in generated:
            if tok in self.eos_ids:
                saw_eos = True
                break
            ids.append(tok)
        budget = self._budget(request)
        if len(ids) > budget:  # batch-mates may allow more tokens than this request
            ids, saw_eos = ids[:budget], False
        text = self.tokenizer.decode(ids, skip_special_tokens=False)
        hits = [(text.find(s) + len(s), s) for s in request.stop if s and s in text]
        if hits:
            end = min(hits)[0]
            # Keep the shortest token prefix whose text already contains the stop string.
            while len(ids) > 1 and len(self.tokenizer.decode(ids[:-1], skip_special_tokens=False)) >= end:
                ids = ids[:-1]
            return GenerationOutput(text=text[:end], finish_reason="stop", token_ids=ids)
        return GenerationOutput(text=text, finish_reason="eos" if saw_eos else "length", token_ids=ids)

    def observation_token_ids(self, observation: str, images: Sequence[Image.Image]) -> list[int] | None:
        """Token ids of an observation with each image expanded to its image tokens."""
        text = expand_placeholders(self.processor, observation)
        prepared = [self.prepare_image(im) for im in images]
        with self._tokenizer_lock:
            if not prepared:
                return self.tokenizer(text, add_special_tokens=False)["input_ids"]
            enc = self.processor(text=[text], images=prepared, return_tensors="pt")
        return enc["input_ids"][0].tolist()

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass
