"""vLLM requests from token-level jobs: the one place our ids become a ``vllm.TokensPrompt``.

The evaluation :class:`~vthinker_plugins.backends.vllm.VLLMBackend` and the GRPO trainer's colocated
rollouts both send vLLM the ids the core built, with the images, never a re-tokenised text. vLLM 0.33
re-expands already expanded image tokens (TRL issue #6294), so each image run is sent as one placeholder
and vLLM's expansion is checked against our ids. vLLM itself is imported only when a request is sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from PIL import Image

from .tokens import GeneratedTokens, GenerationJob


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


def never_sampled_bias(ids: Iterable[int]) -> dict[int, float]:
    """The ``logit_bias`` that keeps ``ids`` (vision and turn-opening tokens) from ever being sampled."""
    return dict.fromkeys((int(i) for i in ids), -100.0)


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
    """A token-level :data:`~vthinker_plugins.generation.tokens.Generator` over a ``vllm.LLM``.

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


__all__ = [
    "PromptMismatchError",
    "VLLMGenerator",
    "check_vllm_prompt",
    "engine_images",
    "engine_prompt_ids",
    "image_token_runs",
    "never_sampled_bias",
    "token_prompt",
]
