"""vLLM at the token level: the one place our generation jobs become vLLM requests.

Both the evaluation :class:`VLLMBackend` and the GRPO trainer's colocated rollouts
(:mod:`vthinker_plugins.trl.rollout`) send vLLM the token ids the core built
(:mod:`~vthinker_plugins.backends.tokens`: prompt, generated ids, observations encoded on their own)
with the images, so evaluation and RL feed the model the same ids, never a re-tokenised text.

vLLM 0.33 expands every image token of a token prompt into that image's tokens, including tokens of
a run that is already expanded (TRL issue #6294; ``tests/vllm_contract`` shows it with vLLM's own
processor). So each run of image tokens is sent as one placeholder token (:func:`engine_prompt_ids`)
and vLLM's expansion is checked to give back exactly our ids (:func:`check_vllm_prompt`); images are
first resized to the size the trainer's processor gives them (:func:`engine_images`), so vLLM's
processor, with its own pixel bounds, computes the same number of tokens.

vLLM is optional and imported only when an engine is built: this module imports without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from vthinker_plugins.backend import Backend, GenerationOutput, GenerationRequest
from vthinker_plugins.model_family import never_sampled_ids

from .tokens import (
    TOKENIZER_LOCK,
    GeneratedTokens,
    GenerationJob,
    SegmentEncoder,
    TokenStates,
    check_image_count,
    finish_turn_segment,
)


class PromptMismatchError(RuntimeError):
    """vLLM saw other prompt tokens than the processor produced (TRL issue #6294)."""


def image_token_runs(ids: Sequence[int], image_token_id: int) -> list[int]:
    """Lengths of the runs of ``image_token_id`` in ``ids`` (one run per image)."""
    runs: list[int] = []
    count = 0
    for tok in ids:
        if tok == image_token_id:
            count += 1
        elif count:
            runs.append(count)
            count = 0
    if count:
        runs.append(count)
    return runs


def engine_prompt_ids(ids: Sequence[int], image_token_id: int) -> list[int]:
    """``ids`` with each run of image tokens collapsed to one: the form vLLM expands itself."""
    out: list[int] = []
    for tok in ids:
        if tok != image_token_id or not out or out[-1] != image_token_id:
            out.append(tok)
    return out


def engine_images(processor: Any, images: Sequence[Image.Image]) -> list[Image.Image]:
    """``images`` resized to the size the trainer's image processor gives them.

    vLLM processes the images itself with the checkpoint's pixel bounds, not the trainer's
    (``max_pixels``/``min_pixels``): an image outside the trainer's bounds would get another
    number of image tokens there than in our ids. Already at that size, it gets the same number
    under any wider bounds; such images are passed as they are.
    """
    proc = getattr(processor, "image_processor", None)
    size = getattr(proc, "size", None)
    bounds = [size.get(k) if hasattr(size, "get") else None for k in ("shortest_edge", "longest_edge")]
    if None in bounds or not hasattr(proc, "merge_size"):  # pixel-area bounds: Qwen2-VL-style processors only
        return list(images)
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    factor = getattr(proc, "patch_size", 14) * getattr(proc, "merge_size", 2)
    out = []
    for image in images:
        h, w = smart_resize(image.height, image.width, factor=factor, min_pixels=bounds[0], max_pixels=bounds[1])
        if (h, w) != (image.height, image.width):
            image = image.convert("RGB").resize((w, h), Image.Resampling.BICUBIC)
        out.append(image)
    return out


def token_prompt(processor: Any, ids: Sequence[int], images: Sequence[Image.Image]) -> dict[str, Any]:
    """The ``vllm.TokensPrompt`` of a job: one placeholder token per image, and its images."""
    prompt: dict[str, Any] = {"prompt_token_ids": engine_prompt_ids(ids, processor.image_token_id)}
    if images:
        resized = engine_images(processor, images)
        prompt["multi_modal_data"] = {"image": resized if len(resized) > 1 else resized[0]}
    return prompt


def check_vllm_prompt(ours: Sequence[int], theirs: Sequence[int], key: str) -> None:
    """Fail loudly when vLLM's expanded prompt differs from the processor's ids (TRL issue #6294)."""
    if list(ours) != list(theirs):
        pairs = enumerate(zip(ours, theirs, strict=False))
        first_diff = next((i for i, (a, b) in pairs if a != b), min(len(ours), len(theirs)))
        raise PromptMismatchError(
            f"rollout {key}: vLLM saw {len(theirs)} prompt tokens, the processor produced {len(ours)} "
            f"(first difference at position {first_diff}). vLLM expanded the image tokens differently "
            "(TRL issue #6294; check that vLLM and the processor use the same pixel bounds); refusing to go on "
            "with corrupted prompts. Generate with transformers instead (use_vllm=False, or the hf backend)."
        )


class VLLMGenerator:
    """A token-level :data:`~vthinker_plugins.backends.tokens.Generator` over a ``vllm.LLM``.

    One request per job: its :func:`token_prompt` and ``SamplingParams`` built from ``sampling``
    (fixed keywords, e.g. ``logit_bias``, ``seed``), the job's budget and the request's temperature
    and top-p, and the stop strings (``stop_strings``, or each request's own when ``None``), kept in
    the output. vLLM's expanded prompt must equal the job's ids.
    """

    #: vLLM processes the images itself: the token states keep no pixel values.
    needs_pixel_values = False

    def __init__(
        self,
        llm: Any,
        processor: Any,
        sampling: dict[str, Any],
        stop_strings: Sequence[str] | None = None,
        sampling_params_cls: Any = None,
    ) -> None:
        self.llm = llm
        self.processor = processor
        self.sampling = dict(sampling)
        self.stop_strings = None if stop_strings is None else list(stop_strings)
        self.sampling_params_cls = sampling_params_cls

    def sampling_params(self, job: GenerationJob) -> dict[str, Any]:
        """The ``SamplingParams`` keywords of one job."""
        request = job.request
        stop = self.stop_strings if self.stop_strings is not None else [s for s in request.stop if s]
        return {
            **self.sampling,
            "n": 1,
            "max_tokens": job.max_new_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p if request.temperature > 0 else 1.0,
            "stop": stop,
            "include_stop_str_in_output": True,
        }

    def __call__(self, jobs: Sequence[GenerationJob]) -> list[GeneratedTokens]:
        if self.sampling_params_cls is not None:
            SamplingParams = self.sampling_params_cls
        else:
            from vllm import SamplingParams

        prompts = [token_prompt(self.processor, job.ids, job.images) for job in jobs]
        params = [SamplingParams(**self.sampling_params(job)) for job in jobs]
        outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=False)
        results = []
        for job, out in zip(jobs, outputs, strict=True):
            check_vllm_prompt(job.ids, list(out.prompt_token_ids), job.request.key)
            completion = out.outputs[0]
            logprobs = None
            if completion.logprobs is not None:
                pairs = zip(completion.logprobs, completion.token_ids, strict=True)
                logprobs = [float(lp[tok].logprob) for lp, tok in pairs]
            results.append(GeneratedTokens(list(completion.token_ids), logprobs))
        return results


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
            sampling["logit_bias"] = dict.fromkeys(suppress, -100.0)
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


__all__ = [
    "PromptMismatchError",
    "VLLMBackend",
    "VLLMGenerator",
    "check_vllm_prompt",
    "engine_images",
    "engine_prompt_ids",
    "image_token_runs",
    "token_prompt",
]
