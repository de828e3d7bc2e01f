"""vLLM offline engine backend (GPU; ``pip install vllm`` — optional, imported only here).

Prompts are rendered with the same :func:`~vthinker_plugins.chat.build_prompt` as
every other backend and passed as ``{"prompt": text, "multi_modal_data": {"image": [...]}}``;
vLLM expands each ``<|image_pad|>`` into the image's tokens. Sampling uses
``SamplingParams(stop=..., include_stop_str_in_output=True)`` so the returned text
ends with ``</code>``/``</answer>`` like the other backends. vLLM's automatic
prefix caching makes the round-by-round re-submission of a growing prompt cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vthinker_plugins.chat import build_prompt
from vthinker_plugins.loop import Backend, GenerationOutput, GenerationRequest


def vllm_prompt(processor: Any, request: GenerationRequest, prepare: Any = None) -> dict[str, Any]:
    """The vLLM prompt dict of one request (text + its images, resized by ``prepare`` if given)."""
    images = [prepare(im) if prepare else im.convert("RGB") for im in request.images]
    prompt: dict[str, Any] = {"prompt": build_prompt(processor, request.system, request.user, request.assistant_prefix)}
    if images:
        prompt["multi_modal_data"] = {"image": images}
    return prompt


def sampling_kwargs(request: GenerationRequest, *, logprobs: bool = False, seed: int | None = None) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` for one request."""
    kwargs: dict[str, Any] = {
        "max_tokens": request.max_new_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p if request.temperature > 0 else 1.0,
        "stop": list(request.stop),
        "include_stop_str_in_output": True,
        "skip_special_tokens": False,
    }
    if logprobs:
        kwargs["logprobs"] = 0  # the sampled token's logprob only
    if seed is not None:
        kwargs["seed"] = seed
    return kwargs


def to_output(completion: Any, eos_token_ids: Sequence[int] = ()) -> GenerationOutput:
    """Map a vLLM ``CompletionOutput`` to a :class:`GenerationOutput`."""
    ids = list(completion.token_ids)
    if completion.finish_reason == "length":
        finish = "length"
    elif isinstance(completion.stop_reason, str):
        finish = "stop"
    else:  # None (EOS) or an int stop token id
        finish = "eos"
        if ids and ids[-1] in eos_token_ids:
            ids = ids[:-1]
    logprobs = None
    if completion.logprobs:
        logprobs = [step[tok].logprob for step, tok in zip(completion.logprobs, completion.token_ids, strict=False)]
        logprobs = logprobs[: len(ids)]
    text = completion.text
    for tok_text in ("<|im_end|>", "<|endoftext|>"):  # skip_special_tokens=False keeps the EOS text
        if finish == "eos" and text.endswith(tok_text):
            text = text[: -len(tok_text)]
    return GenerationOutput(text=text, finish_reason=finish, token_ids=ids, logprobs=logprobs)


class VLLMBackend(Backend):
    """Generate with ``vllm.LLM``.

    Args:
        model: checkpoint folder or hub id.
        tensor_parallel_size, gpu_memory_utilization, max_model_len, dtype, seed: passed to ``vllm.LLM``.
        max_images: images per prompt (``limit_mm_per_prompt``); user + tool images.
        min_pixels / max_pixels: handed to the image processor (``mm_processor_kwargs``).
        max_batch_size: requests per ``generate`` call (vLLM batches internally).
        logprobs: return per-token logprobs (RL).
    """

    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.85,
        max_model_len: int | None = None,
        dtype: str = "auto",
        max_images: int = 11,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        max_batch_size: int = 256,
        logprobs: bool = False,
        seed: int = 0,
        **engine_kwargs: Any,
    ) -> None:
        try:
            from vllm import LLM
        except ImportError as exc:
            raise ImportError("the vllm backend needs vLLM on a GPU machine: pip install vllm") from exc
        from transformers import AutoProcessor

        self.processor = AutoProcessor.from_pretrained(model)
        mm_kwargs = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
        self.llm = LLM(
            model=model,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            dtype=dtype,
            limit_mm_per_prompt={"image": max_images},
            mm_processor_kwargs=mm_kwargs or None,
            seed=seed,
            **engine_kwargs,
        )
        tok = getattr(self.processor, "tokenizer", self.processor)
        self.eos_ids = [i for i in (tok.eos_token_id, tok.pad_token_id) if i is not None]
        self.max_batch_size = int(max_batch_size)
        self.logprobs = logprobs

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationOutput]:
        from vllm import SamplingParams

        prompts = [vllm_prompt(self.processor, r) for r in requests]
        params = [SamplingParams(**sampling_kwargs(r, logprobs=self.logprobs)) for r in requests]
        results = self.llm.generate(prompts, sampling_params=params, use_tqdm=False)
        return [to_output(res.outputs[0], self.eos_ids) for res in results]

    def close(self) -> None:
        self.llm = None


__all__ = ["VLLMBackend", "sampling_kwargs", "to_output", "vllm_prompt"]
