"""The ``vllm:PATH`` evaluation backend: ``vllm.LLM`` at the token level, like the HF backend.

Requests are built by the core (:mod:`vthinker_plugins.generation.vllm_requests`), shared with the GRPO
trainer's colocated rollouts. vLLM is optional and imported only when an engine is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from vthinker_plugins.backend import Backend, GenerationOutput, GenerationRequest
from vthinker_plugins.generation.tokens import (
    TOKENIZER_LOCK,
    SegmentEncoder,
    TokenStates,
    check_image_count,
    finish_turn_segment,
)
from vthinker_plugins.generation.vllm_requests import VLLMGenerator, never_sampled_bias
from vthinker_plugins.model_family import never_sampled_ids


class VLLMBackend(Backend):
    """Evaluate with ``vllm.LLM``, token-level like :class:`~vthinker_plugins.backends.hf.HFBackend`.

    Per trajectory the backend keeps the prompt segment and, per round, the ids as generated (cut at
    the stop string as the HF backend cuts them) and the observation encoded on its own; vLLM's
    automatic prefix caching makes the round-by-round re-submission of the growing ids cheap.

    Args:
        model: checkpoint folder or hub id.
        tensor_parallel_size, gpu_memory_utilization, max_model_len, dtype, seed: passed to ``vllm.LLM``.
        max_images: images per prompt (``limit_mm_per_prompt``); user + tool images.
        min_pixels / max_pixels: image size bounds of our processor and of vLLM's (``mm_processor_kwargs``).
        max_batch_size: requests per ``generate`` call (vLLM batches internally).
        logprobs: return per-token logprobs.
        suppress_tokens: never sample the vision and turn-opening ids (True), or an explicit id list.
        llm: an engine already built for ``model`` (then the engine arguments are not used).
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
        suppress_tokens: bool | Sequence[int] = True,
        llm: Any = None,
        sampling_params_cls: Any = None,
        **engine_kwargs: Any,
    ) -> None:
        from transformers import AutoProcessor

        if llm is None:
            try:
                from vllm import LLM
            except ImportError as exc:
                raise ImportError("the vllm backend needs vLLM on a GPU machine: pip install vllm") from exc
        self.processor = AutoProcessor.from_pretrained(model)
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        mm_kwargs = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
        if mm_kwargs:  # our processor encodes the ids: the same bounds as vLLM's
            size = dict(getattr(self.processor.image_processor, "size", None) or {})
            size.update({"shortest_edge": min_pixels} if min_pixels is not None else {})
            size.update({"longest_edge": max_pixels} if max_pixels is not None else {})
            self.processor.image_processor.size = size
        self.engine_kwargs = {
            "model": model,
            "tensor_parallel_size": tensor_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
            "max_model_len": max_model_len,
            "dtype": dtype,
            "limit_mm_per_prompt": {"image": max_images},
            "mm_processor_kwargs": mm_kwargs or None,
            "seed": seed,
            **engine_kwargs,
        }
        self.llm = llm if llm is not None else LLM(**self.engine_kwargs)
        self.eos_ids = [i for i in (self.tokenizer.eos_token_id, self.tokenizer.pad_token_id) if i is not None]
        self.max_batch_size = int(max_batch_size)
        if suppress_tokens is True:
            suppress = never_sampled_ids(self.tokenizer)
        else:
            suppress = [] if suppress_tokens is False else [int(i) for i in suppress_tokens]
        sampling: dict[str, Any] = {"skip_special_tokens": False}  # the engine's seed: no per-request seed
        if suppress:
            sampling["logit_bias"] = never_sampled_bias(suppress)
        if logprobs:
            sampling["logprobs"] = 0  # the sampled token's logprob only
        self.generator = VLLMGenerator(self.llm, self.processor, sampling, sampling_params_cls=sampling_params_cls)
        # Evaluation prompts are seen once: no prompt cache; a prefix that does not extend the state is
        # re-encoded, not an error.
        self.encoder = SegmentEncoder(self.processor, cache_prompts=False)
        self.tokens = TokenStates(self.encoder, keep_pixels=False, strict=False)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationOutput]:
        outputs: list[GenerationOutput] = []
        for start in range(0, len(requests), self.max_batch_size):
            chunk = requests[start:start + self.max_batch_size]
            jobs = []
            for request in chunk:
                check_image_count(request)
                jobs.append(self.tokens.job(request))
            generated = self.generator(jobs)
            with TOKENIZER_LOCK:
                for request, gen in zip(chunk, generated, strict=True):
                    out = finish_turn_segment(self.tokenizer, request, gen.ids, self.eos_ids, request.max_new_tokens)
                    if gen.logprobs is not None:
                        out.logprobs = gen.logprobs[: len(out.token_ids or [])]
                    self.tokens.record(request.key, out.token_ids or [], out.text)
                    outputs.append(out)
        return outputs

    def observation_token_ids(self, observation: str, images: Sequence[Image.Image]) -> list[int] | None:
        """Token ids of an observation with each image expanded; the next round appends exactly these."""
        return self.tokens.observation(observation, images).ids

    def release(self, key: str) -> None:
        self.tokens.release(key)

    def close(self) -> None:
        self.llm = None


__all__ = ["VLLMBackend"]
