"""Multi-turn GRPO rollouts at the token level: :class:`PolicyBackend`, the interaction loop's backend
for the policy being trained.

It keeps per rollout the exact ids the model saw (prompt, sampled tokens, observation tokens) and the
features of every image, so the training forward pass scores what was sampled, never a re-tokenised
text. The loop is the one :class:`~vthinker_plugins.loop.InteractionLoop`; token states and generators
are the core's (:mod:`vthinker_plugins.generation`). Here: logprobs, RL stop strings, :func:`assemble`,
and the two vLLM generators of TRL (colocated engine, ``trl vllm-serve``), both guarding TRL issue #6294.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from vthinker_plugins.backend import Backend, GenerationOutput, GenerationRequest
from vthinker_plugins.generation.tokens import (
    TOKENIZER_LOCK,
    GeneratedTokens,
    GenerationJob,
    Generator,
    SegmentEncoder,
    TokenStates,
)
from vthinker_plugins.generation.vllm_requests import (
    PromptMismatchError,
    VLLMGenerator,
    check_vllm_prompt,
    engine_images,
    image_token_runs,
    never_sampled_bias,
)
from vthinker_plugins.loop import InteractionLoop, Trajectory
from vthinker_plugins.model_family import never_sampled_ids
from vthinker_plugins.protocol import CODE_CLOSE
from vthinker_plugins.sample import Sample

#: RL rollouts pause only at ``</code>``; the answer ends at the end-of-turn token, which is
#: trained, so the policy learns to close its turn (stopping at ``</answer>`` would leave every
#: completion without one and TRL would count them all as truncated).
RL_STOP_STRINGS: tuple[str, ...] = (CODE_CLOSE,)


# --------------------------------------------------------------------------- vLLM generators

class VLLMColocateGenerator(VLLMGenerator):
    """Generate with TRL's colocated ``vllm.LLM`` (tensor parallel size 1), one request per job: the
    core's token prompts, paused at ``</code>``, with sampled logprobs and vision tokens never sampled."""

    def __init__(
        self,
        llm: Any,
        processor: Any,
        sampling: dict[str, Any],
        stop_strings: Sequence[str] = RL_STOP_STRINGS,
        sampling_params_cls: Any = None,
    ) -> None:
        fixed = {"logit_bias": never_sampled_bias(never_sampled_ids(processor.tokenizer)), **sampling, "logprobs": 0}
        super().__init__(llm, processor, fixed, stop_strings=stop_strings, sampling_params_cls=sampling_params_cls)

    def sampling_params(self, job: GenerationJob) -> dict[str, Any]:
        return {**super().sampling_params(job), "top_p": job.request.top_p}


class VLLMServerGenerator:
    """Generate with a ``trl vllm-serve`` server: images are processed by the server, paired
    with our token ids, and the server's image-token counts are checked against ours."""

    needs_pixel_values = False

    def __init__(
        self,
        client: Any,
        processor: Any,
        sampling: dict[str, Any],
        place_features: Callable[[dict | None, list[int]], dict | None],
        stop_strings: Sequence[str] = RL_STOP_STRINGS,
    ) -> None:
        self.client = client
        self.processor = processor
        self.sampling = {"logit_bias": never_sampled_bias(never_sampled_ids(processor.tokenizer)), **sampling}
        self.place_features = place_features
        self.stop_strings = list(stop_strings)
        self.image_token_id = processor.image_token_id

    def __call__(self, jobs: Sequence[GenerationJob]) -> list[GeneratedTokens]:
        features: list[dict | None] = [None] * len(jobs)
        with_images = [i for i, j in enumerate(jobs) if j.images]
        if with_images:
            served = self.client.image_features([engine_images(self.processor, jobs[i].images) for i in with_images])
            for i, feats in zip(with_images, served, strict=True):
                ours = image_token_runs(jobs[i].ids, self.image_token_id)
                theirs = [int(p["length"]) for p in feats["mm_placeholders"]["image"]]
                if ours != theirs:
                    raise PromptMismatchError(
                        f"rollout {jobs[i].request.key}: the vLLM server expands the images to {theirs} tokens, "
                        f"the processor to {ours} (TRL issue #6294); check that server and trainer use the same "
                        "processor settings (max_pixels)"
                    )
                features[i] = self.place_features(feats, list(jobs[i].ids))
        results: list[GeneratedTokens | None] = [None] * len(jobs)
        # One HTTP call per distinct token budget: the server takes one max_tokens per call.
        by_budget: dict[int, list[int]] = {}
        for i, job in enumerate(jobs):
            by_budget.setdefault(job.max_new_tokens, []).append(i)
        first = jobs[0].request
        for budget, idxs in by_budget.items():
            out = self.client.generate(
                prompts=[list(jobs[i].ids) for i in idxs],
                features=[features[i] for i in idxs] if with_images else None,
                n=1,
                temperature=first.temperature,
                top_p=first.top_p,
                max_tokens=budget,
                logprobs=0,
                generation_kwargs={**self.sampling, "stop": self.stop_strings, "include_stop_str_in_output": True},
            )
            for pos, i in enumerate(idxs):
                check_vllm_prompt(jobs[i].ids, list(out["prompt_ids"][pos]), jobs[i].request.key)
                lps = out.get("logprobs")
                results[i] = GeneratedTokens(
                    list(out["completion_ids"][pos]),
                    None if lps is None else [float(lp[0]) if lp and lp[0] is not None else float("nan")
                                              for lp in lps[pos]],
                )
        return [r for r in results if r is not None]


# --------------------------------------------------------------------------- the backend

class PolicyBackend(Backend):
    """The loop backend of GRPO rollouts: token-exact, budgeted, observation-aware."""

    name = "grpo-policy"

    def __init__(
        self,
        processor: Any,
        generator: Generator,
        eos_token_ids: Sequence[int],
        stop_strings: Sequence[str] = RL_STOP_STRINGS,
        max_batch_size: int = 64,
    ) -> None:
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.encoder = SegmentEncoder(processor)
        self.generator = generator
        self.eos_token_ids = set(eos_token_ids)
        self.stop_strings = tuple(stop_strings)
        self.max_batch_size = max_batch_size
        # The ids are trained on: a prefix that does not extend them is an error, never re-encoded.
        self.tokens = TokenStates(
            self.encoder, keep_pixels=bool(getattr(generator, "needs_pixel_values", True)), strict=True
        )

    def reset(self) -> None:
        """Forget everything of the previous step."""
        self.tokens.clear()
        self.encoder.clear()

    def observation_token_ids(self, observation: str, images: Sequence[Image.Image]) -> list[int]:
        return self.tokens.observation(observation, images).ids

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationOutput]:
        jobs = [self.tokens.job(r) for r in requests]
        generated = self.generator(jobs)
        outputs = []
        for job, gen in zip(jobs, generated, strict=True):
            ids = gen.ids[: job.max_new_tokens]
            logprobs = gen.logprobs[: len(ids)] if gen.logprobs is not None else None
            outputs.append(self._output(job, ids, logprobs))
        return outputs

    def _output(self, job: GenerationJob, ids: list[int], logprobs: list[float] | None) -> GenerationOutput:
        with TOKENIZER_LOCK:
            ended = bool(ids) and ids[-1] in self.eos_token_ids
            text = self.tokenizer.decode(ids[:-1] if ended else ids, skip_special_tokens=True)
        if ended:
            reason = "eos"
        else:
            stripped = text.rstrip()
            if any(stripped.endswith(s) for s in self.stop_strings):
                reason = "stop"
            else:
                reason = "length" if len(ids) >= job.max_new_tokens else "stop"
        self.tokens.record(job.request.key, ids, text)
        return GenerationOutput(text=text, finish_reason=reason, token_ids=list(ids), logprobs=logprobs)

    def release(self, key: str) -> None:
        self.tokens.release(key)


# --------------------------------------------------------------------------- assembling TRL's inputs

class PromptedLoop(InteractionLoop):
    """The interaction loop, with each sample's system and user text taken from its
    conversational prompt (``sample.meta["system"]``/``["user"]``) rather than rebuilt, so a
    rollout starts from exactly the prompt TRL rendered."""

    def start(self, sample: Sample) -> Trajectory:
        traj = super().start(sample)
        if "system" in sample.meta:
            traj.system = sample.meta["system"]
        if "user" in sample.meta:
            traj.user = sample.meta["user"]
        return traj


@dataclass
class RolloutTensors:
    """One rollout as TRL's ``_generate`` returns it."""

    prompt_ids: list[int]
    completion_ids: list[int]
    tool_mask: list[int]
    logprobs: list[float] | None
    images: list[Image.Image]
    tool_images: list[Image.Image]


def assemble(trajectory: Trajectory, encoder: SegmentEncoder) -> RolloutTensors:
    """Prompt ids, completion ids (generated + observation tokens) and the tool mask
    (1 on generated tokens, 0 exactly on observation tokens) of a finished trajectory."""
    prompt = encoder.prompt(trajectory.system, trajectory.user, trajectory.sample.images)
    completion: list[int] = []
    mask: list[int] = []
    logprobs: list[float] | None = []
    for rnd in trajectory.rounds:
        if rnd.gen_token_ids is None:
            raise RuntimeError(f"rollout of {trajectory.sample.id}: the backend reported no token ids")
        completion += rnd.gen_token_ids
        mask += [1] * len(rnd.gen_token_ids)
        if logprobs is not None:
            logprobs = logprobs + list(rnd.gen_logprobs) if rnd.gen_logprobs is not None else None
        obs = rnd.obs_token_ids or []
        if rnd.observation and not obs:
            raise RuntimeError(f"rollout of {trajectory.sample.id}: an observation without token ids")
        completion += obs
        mask += [0] * len(obs)
        if logprobs is not None:
            logprobs += [0.0] * len(obs)
    return RolloutTensors(
        prompt_ids=list(prompt.ids),
        completion_ids=completion,
        tool_mask=mask,
        logprobs=logprobs,
        images=list(trajectory.images),
        tool_images=list(trajectory.tool_images),
    )


#: Public names, including those that moved to the core (the trainer and tests import them from here).
__all__ = [
    "RL_STOP_STRINGS",
    "PolicyBackend",
    "PromptedLoop",
    "RolloutTensors",
    "VLLMColocateGenerator",
    "VLLMServerGenerator",
    "assemble",
]
