"""The seam with TRL's and transformers' private API for V-Thinker GRPO.

Written against TRL 1.16.0 on transformers 5.18.0; ``tests/trl/test_trl_compat.py`` fails with a clear
message on any other version. Every private TRL name the GRPO trainer touches is here, nowhere else.
Rollouts enter through TRL's public ``rollout_func``, but no public extension point carries the tool
images into the training forward pass: :class:`GRPOTrainerBase` closes that gap with the smallest
override. Design notes: docs/seams.md.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from trl import GRPOTrainer
from trl.models import unwrap_model_for_generation

from vthinker_plugins.seam_versions import check_tested_versions
from vthinker_plugins.transformers_compat import CheckpointWeightsMixin, check_transformers_version

TESTED_TRL_VERSION = "1.16.0"
TESTED_TRANSFORMERS_VERSION = "5.18.0"


def check_versions(trl_version: str | None = None, transformers_version: str | None = None) -> None:
    """Raise with a clear message unless TRL and transformers are the versions this seam was written for."""
    check_transformers_version(transformers_version)
    check_tested_versions("trl.compat", {"TRL": [TESTED_TRL_VERSION], "transformers": [TESTED_TRANSFORMERS_VERSION]},
                          {"TRL": trl_version, "transformers": transformers_version},
                          "GRPOTrainer._generate, _generate_and_score_completions and the tools path")


@dataclass
class RolloutMedia:
    """What a rollout step produced beyond TRL's ``rollout_func`` result: per rollout, the completion
    as the model and sandbox wrote it, every image in its sequence (prompt images, then tool images)
    and the tool images alone."""

    completions: list[list[dict[str, Any]]]
    images: list[list[Any]]
    tool_images: list[list[Any]]


class GRPOTrainerBase(CheckpointWeightsMixin, GRPOTrainer):
    """TRL's ``GRPOTrainer`` whose rollouts (a ``rollout_func``) bring their tool images into the
    training forward pass, and whose resume and best-model loading restore every weight.

    A subclass passes ``rollout_func`` and sets :attr:`rollout_media` from it; TRL's ``rollout_func``
    path does the rest (weight sync, ``env_mask`` as the loss mask, completion-length metrics).
    """

    #: The rows of the batch being generated (TRL gives ``rollout_func`` only their prompts).
    rollout_rows: list[dict[str, Any]] | None = None
    #: Set by the rollout function for the ``_generate`` call in flight.
    rollout_media: RolloutMedia | None = None

    def __init__(self, *args: Any, rollout_func: Callable[..., dict[str, Any]], **kwargs: Any) -> None:
        with warnings.catch_warnings():
            # The "experimental feature" notice: the API is pinned to TESTED_TRL_VERSION and tested here.
            warnings.filterwarnings("ignore", message="You are using 'rollout_func'", category=UserWarning)
            super().__init__(*args, rollout_func=rollout_func, **kwargs)

    def _generate(self, prompts: list):
        # A marker tool left from a scoring pass would start TRL's JSON tool-call loop on our completions.
        self.tools = []
        self.rollout_media = None
        prompt_ids, completion_ids, tool_mask, completions, logprobs, extra, images, tool_images = super()._generate(
            prompts
        )
        media, self.rollout_media = self.rollout_media, None
        if media is not None:
            completions, images, tool_images = media.completions, media.images, media.tool_images
            # TRL rebuilds pixel_values/image_grid_thw over prompt + tool images (and the image-token
            # mask Qwen2.5-VL's rope needs) only while self.tools is truthy.
            if any(tool_images):
                self.tools = [_tool_images_marker]
        return prompt_ids, completion_ids, tool_mask, completions, logprobs, extra, images, tool_images

    def _generate_and_score_completions(self, inputs):
        self.rollout_rows = list(inputs)
        try:
            return super()._generate_and_score_completions(inputs)
        finally:
            self.tools = []
            self.rollout_rows = None


def _tool_images_marker() -> str:
    """Marks a scoring pass whose rollouts hold tool images (never called)."""
    raise RuntimeError("the tool-images marker is not a tool")


# --------------------------------------------------------------------------- private TRL state, read or written

def is_vlm(trainer: GRPOTrainer) -> bool:
    """Whether TRL loaded a processor with an image processor (not a bare tokenizer)."""
    return bool(trainer._is_vlm)


def log_metric(trainer: GRPOTrainer, name: str, value: float) -> None:
    """Append to TRL's per-step metrics (averaged and logged with its own)."""
    mode = "train" if trainer.model.training else "eval"
    trainer._metrics[mode][name].append(value)


@contextlib.contextmanager
def policy_for_generation(trainer: GRPOTrainer) -> Iterator[Any]:
    """The unwrapped policy for ``model.generate``, its ZeRO-3 / FSDP parameters gathered once for the
    whole rollout phase (ranks run different numbers of generation calls, so per-call gathers could
    not line up); as TRL's own ``_generate_single_turn`` holds it."""
    import torch

    with (
        unwrap_model_for_generation(
            trainer.model_wrapped,
            trainer.accelerator,
            gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
            generation_kwargs=trainer.generation_kwargs,
            gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs,
        ) as unwrapped,
        torch.no_grad(),
        trainer._dist.summon_full_params(trainer.model_wrapped, recurse=False),
    ):
        yield unwrapped


@contextlib.contextmanager
def colocated_vllm_awake(trainer: GRPOTrainer) -> Iterator[None]:
    """Colocated vLLM with current weights and its KV cache for the rollout phase, asleep again after
    (TRL's ``VLLMGeneration.generate`` does the same around one call; rollouts make many). TRL's
    ``rollout_func`` path has synced the weights when the step changed."""
    vllm = trainer.vllm_generation
    sleeping = trainer.vllm_mode == "colocate" and trainer.args.vllm_enable_sleep_mode
    if sleeping:
        if vllm._llm_weights_sleeping:  # level-2 sleep discarded them: push them again
            vllm.sync_weights()
        vllm.llm.wake_up(tags=["kv_cache"])
    try:
        yield
    finally:
        if sleeping:
            vllm.llm.sleep(level=2)
            vllm._llm_weights_sleeping = True


def server_feature_placer(trainer: GRPOTrainer) -> Callable[[dict | None, Sequence[int]], dict | None]:
    """TRL's placement of a ``vllm-serve`` server's image features at the image-token runs of our ids."""
    return trainer.vllm_generation._place_features
