"""Multi-turn rollouts for GRPO, at the token level.

:class:`PolicyBackend` is an interaction-loop :class:`~vthinker_plugins.loop.Backend` that
generates with the policy being trained. It keeps, per rollout, the exact token ids the
model saw (prompt, generated tokens, observation tokens) and the image features of every
image in them, so the training forward pass scores precisely what was sampled: text is
never re-tokenised. The multi-turn logic itself is the one
:class:`~vthinker_plugins.loop.InteractionLoop`; this module only adds token bookkeeping and
three ways to generate:

- :class:`TransformersGenerator`: ``model.generate`` on the (unwrapped) training model;
- :class:`VLLMColocateGenerator`: TRL's colocated ``vllm.LLM``;
- :class:`VLLMServerGenerator`: a ``trl vllm-serve`` server.

Both vLLM paths guard TRL issue #6294 (prompts with pre-expanded image tokens corrupted
under vLLM): the prompt vLLM reports must equal the processor's token ids, and the
image-token runs must have the lengths the processor computed, or the step fails loudly.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from vthinker_plugins.chat import build_prompt, expand_placeholders
from vthinker_plugins.loop import Backend, GenerationOutput, GenerationRequest, InteractionLoop, Trajectory
from vthinker_plugins.protocol import CODE_CLOSE
from vthinker_plugins.sample import Sample

#: RL rollouts pause only at ``</code>``; the answer ends at the end-of-turn token, which is
#: trained, so the policy learns to close its turn (stopping at ``</answer>`` would leave every
#: completion without one and TRL would count them all as truncated).
RL_STOP_STRINGS: tuple[str, ...] = (CODE_CLOSE,)


#: Rust tokenizers raise "Already borrowed" when one thread encodes (which may reset padding and
#: truncation) while another decodes; observations are encoded on the event loop while the
#: worker thread generates and decodes, so every tokenizer call of a rollout goes through this.
TOKENIZER_LOCK = threading.RLock()


class PromptMismatchError(RuntimeError):
    """vLLM saw other prompt tokens than the processor produced (TRL issue #6294)."""


# --------------------------------------------------------------------------- token segments

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
    image tokens always agrees with ``image_grid_thw``. Prompt encodings are cached (the
    G rollouts of a prompt share one); call :meth:`clear` between steps.
    """

    def __init__(self, processor: Any) -> None:
        self.processor = processor
        self._prompts: dict[tuple[str, tuple[str, ...]], Segment] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._prompts.clear()

    def encode(self, text: str, images: Sequence[Image.Image]) -> Segment:
        """``text`` in model markup (image tokens already in place) with ``images`` in order."""
        kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt"}
        if images:
            kwargs["images"] = list(images)
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


# --------------------------------------------------------------------------- generators

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


def expected_image_tokens(image_grid_thw: torch.Tensor | None, merge_size: int) -> list[int]:
    if image_grid_thw is None:
        return []
    return [int(row.prod().item()) // (merge_size**2) for row in image_grid_thw]


def never_sampled_ids(tokenizer: Any) -> list[int]:
    """Vision and turn-opening token ids of this tokenizer (those it has)."""
    from vthinker_plugins.tiny_model import suppressed_token_ids

    unk = getattr(tokenizer, "unk_token_id", None)
    return sorted({i for i in suppressed_token_ids(tokenizer) if i is not None and i != unk})


class TransformersGenerator:
    """Batched ``model.generate`` with left padding, stop strings and the rollouts' images.

    ``model`` is a callable returning the model to generate with, so the trainer can hand
    over the unwrapped (DeepSpeed/FSDP-gathered) model of the current rollout phase.
    ``logits_processors``, if given, is called with each batch's requests and the (left-padded)
    prompt length and returns extra logits processors (tests script the real model with it).
    """

    #: This generator feeds the processor's pixel values to the model (vLLM takes the images).
    needs_pixel_values = True

    def __init__(
        self,
        model: Callable[[], Any],
        processor: Any,
        generation_config: Any,
        stop_strings: Sequence[str] = RL_STOP_STRINGS,
        logits_processors: Callable[[Sequence[GenerationRequest], int], list[Any]] | None = None,
    ) -> None:
        self.model = model
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.generation_config = generation_config
        self.stop_strings = list(stop_strings)
        self.logits_processors = logits_processors
        self.image_token_id = getattr(processor, "image_token_id", None)
        self.never_sample = never_sampled_ids(self.tokenizer)

    def __call__(self, jobs: Sequence[GenerationJob]) -> list[GeneratedTokens]:
        from transformers import LogitsProcessorList, StoppingCriteriaList

        model = self.model()
        device = next(model.parameters()).device
        pad_id = self.tokenizer.pad_token_id
        width = max(len(j.ids) for j in jobs)
        input_ids = torch.full((len(jobs), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(jobs), width), dtype=torch.long)
        for row, job in enumerate(jobs):
            input_ids[row, width - len(job.ids):] = torch.tensor(job.ids, dtype=torch.long)
            attention_mask[row, width - len(job.ids):] = 1
        inputs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        pixel_values = [j.pixel_values for j in jobs if j.pixel_values is not None]
        if pixel_values:
            inputs["pixel_values"] = torch.cat(pixel_values)
            inputs["image_grid_thw"] = torch.cat([j.image_grid_thw for j in jobs if j.image_grid_thw is not None])
            # Qwen2.5-VL places its 3-D rope positions with this mask of image tokens.
            inputs["mm_token_type_ids"] = (input_ids == self.image_token_id).long()
        inputs = {k: v.to(device) for k, v in inputs.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)

        first = jobs[0].request
        config = copy.deepcopy(self.generation_config)
        config.max_new_tokens = max(j.max_new_tokens for j in jobs)
        config.temperature = first.temperature if first.temperature > 0 else 1.0
        config.do_sample = first.temperature > 0
        config.top_p = first.top_p
        # Vision and turn-opening tokens must never be sampled: a stray image token would break
        # the image-token/feature correspondence of the training forward pass.
        config.suppress_tokens = sorted(set(_as_list(config.suppress_tokens)) | set(self.never_sample))
        extra = LogitsProcessorList(
            self.logits_processors([j.request for j in jobs], width) if self.logits_processors else []
        )
        stopper = StopOnStrings(self.tokenizer, self.stop_strings, width) if self.stop_strings else None
        # torch.no_grad is per thread and the loop generates in a worker thread.
        with torch.no_grad():
            out = model.generate(
                **inputs,
                generation_config=config,
                stopping_criteria=StoppingCriteriaList([stopper] if stopper else []),
                logits_processor=extra,
            )
        eos_ids = _as_list(config.eos_token_id)
        results = []
        for row in range(len(jobs)):
            seq = out[row, width:].tolist()
            if stopper is not None and row in stopper.stopped_at:
                results.append(GeneratedTokens(seq[: stopper.stopped_at[row]]))
                continue
            eos_at = next((i for i, tok in enumerate(seq) if tok in eos_ids), None)
            if eos_at is not None:
                seq = seq[: eos_at + 1]
            else:
                # Rows that stopped early are right-filled with the pad token.
                while seq and seq[-1] == pad_id:
                    seq.pop()
            results.append(GeneratedTokens(seq))
        return results


class StopOnStrings:
    """Stop a row once its generated text gains one of ``stop_strings``.

    A ``transformers`` stopping criterion. Transformers' own ``stop_strings`` rebuilds vocabulary
    tables on every ``generate`` call (about a second each for a 400-token vocabulary, far more for
    Qwen's 150K), which multi-turn rollouts pay once per round; decoding a short tail is cheap.
    """

    def __init__(self, tokenizer: Any, stop_strings: Sequence[str], prompt_length: int, tail_tokens: int = 16) -> None:
        self.tokenizer = tokenizer
        self.stop_strings = tuple(stop_strings)
        self.prompt_length = prompt_length
        self.tail_tokens = tail_tokens
        #: row -> generated length when its stop string completed. transformers right-fills a
        #: finished row with the pad token, which for Qwen checkpoints is also an eos id: cut there.
        self.stopped_at: dict[int, int] = {}

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        start = max(self.prompt_length, input_ids.shape[1] - self.tail_tokens)
        if start >= input_ids.shape[1]:
            return done
        for row in range(input_ids.shape[0]):
            tail = input_ids[row, start:].tolist()
            with TOKENIZER_LOCK:
                text = self.tokenizer.decode(tail, skip_special_tokens=False)
                before = self.tokenizer.decode(tail[:-1], skip_special_tokens=False)
            # Only a stop string completed by the newest token counts.
            hit = any(s in text and text.count(s) > before.count(s) for s in self.stop_strings)
            done[row] = hit
            if hit and row not in self.stopped_at:
                self.stopped_at[row] = input_ids.shape[1] - self.prompt_length
        return done


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


class VLLMColocateGenerator:
    """Generate with TRL's colocated ``vllm.LLM`` (tensor parallel size 1), one request per job."""

    needs_pixel_values = False

    def __init__(
        self,
        llm: Any,
        processor: Any,
        sampling: dict[str, Any],
        stop_strings: Sequence[str] = RL_STOP_STRINGS,
        sampling_params_cls: Any = None,
    ) -> None:
        self.llm = llm
        self.sampling_params_cls = sampling_params_cls
        self.processor = processor
        self.sampling = {"logit_bias": dict.fromkeys(never_sampled_ids(processor.tokenizer), -100.0), **sampling}
        self.stop_strings = list(stop_strings)

    def __call__(self, jobs: Sequence[GenerationJob]) -> list[GeneratedTokens]:
        if self.sampling_params_cls is not None:
            SamplingParams = self.sampling_params_cls
        else:
            from vllm import SamplingParams

        prompts, params = [], []
        for job in jobs:
            prompt: dict[str, Any] = {"prompt_token_ids": list(job.ids)}
            if job.images:
                prompt["multi_modal_data"] = {"image": job.images if len(job.images) > 1 else job.images[0]}
            prompts.append(prompt)
            kwargs = {
                **self.sampling,
                "n": 1,
                "max_tokens": job.max_new_tokens,
                "temperature": job.request.temperature,
                "top_p": job.request.top_p,
                "logprobs": 0,
                "stop": self.stop_strings,
                "include_stop_str_in_output": True,
            }
            params.append(SamplingParams(**kwargs))
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
        self.sampling = {"logit_bias": dict.fromkeys(never_sampled_ids(processor.tokenizer), -100.0), **sampling}
        self.place_features = place_features
        self.stop_strings = list(stop_strings)
        self.image_token_id = processor.image_token_id

    def __call__(self, jobs: Sequence[GenerationJob]) -> list[GeneratedTokens]:
        features: list[dict | None] = [None] * len(jobs)
        with_images = [i for i, j in enumerate(jobs) if j.images]
        if with_images:
            served = self.client.image_features([jobs[i].images for i in with_images])
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


def check_vllm_prompt(ours: Sequence[int], theirs: Sequence[int], key: str) -> None:
    """Fail loudly when vLLM's prompt differs from the processor's (TRL issue #6294)."""
    if list(ours) != list(theirs):
        pairs = enumerate(zip(ours, theirs, strict=False))
        first_diff = next((i for i, (a, b) in pairs if a != b), min(len(ours), len(theirs)))
        raise PromptMismatchError(
            f"rollout {key}: vLLM saw {len(theirs)} prompt tokens, the processor produced {len(ours)} "
            f"(first difference at position {first_diff}). vLLM re-expanded the pre-expanded image tokens "
            "(TRL issue #6294); refusing to train on corrupted prompts. Use a vLLM version that accepts "
            "pre-expanded multimodal token prompts, or generate with transformers (use_vllm=False)."
        )


# --------------------------------------------------------------------------- the backend

@dataclass
class _RolloutTokens:
    ids: list[int]
    images: list[Image.Image]
    pixel_values: list[torch.Tensor] = field(default_factory=list)
    grids: list[torch.Tensor] = field(default_factory=list)
    prefix: str = ""

    def add(self, segment: Segment, images: Sequence[Image.Image], keep_pixels: bool = True) -> None:
        self.ids.extend(segment.ids)
        self.images.extend(images)
        if segment.image_grid_thw is not None:
            self.grids.append(segment.image_grid_thw)
            # vLLM processes the images itself: pixel values of up to 11 images per rollout would
            # only cost memory there.
            if keep_pixels:
                self.pixel_values.append(segment.pixel_values)


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
        self.keep_pixels = bool(getattr(generator, "needs_pixel_values", True))
        self._state: dict[str, _RolloutTokens] = {}
        self._observations: dict[tuple[str, tuple[int, ...]], Segment] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget everything of the previous step."""
        with self._lock:
            self._state.clear()
            self._observations.clear()
        self.encoder.clear()

    def observation_token_ids(self, observation: str, images: Sequence[Image.Image]) -> list[int]:
        segment = self.encoder.observation(observation, images)
        with self._lock:
            self._observations[(observation, tuple(id(im) for im in images))] = segment
        return segment.ids

    def _observation(self, observation: str, images: Sequence[Image.Image]) -> Segment:
        with self._lock:
            segment = self._observations.pop((observation, tuple(id(im) for im in images)), None)
        return segment if segment is not None else self.encoder.observation(observation, images)

    def _job(self, request: GenerationRequest) -> GenerationJob:
        with self._lock:
            state = self._state.get(request.key)
        if state is None:
            prompt = self.encoder.prompt(request.system, request.user, request.images)
            state = _RolloutTokens(ids=[], images=[])
            state.add(prompt, request.images, self.keep_pixels)
            with self._lock:
                self._state[request.key] = state
        else:
            if not request.assistant_prefix.startswith(state.prefix):
                raise RuntimeError(f"rollout {request.key}: the assistant turn changed behind the backend's back")
            tail = request.assistant_prefix[len(state.prefix):]
            if tail:
                new_images = list(request.images[len(state.images):])
                state.add(self._observation(tail, new_images), new_images, self.keep_pixels)
                state.prefix += tail
        if len(state.images) != len(request.images):
            raise RuntimeError(
                f"rollout {request.key}: {len(request.images)} images in the request, {len(state.images)} encoded"
            )
        return GenerationJob(
            request=request,
            ids=state.ids,
            images=list(state.images),
            pixel_values=torch.cat(state.pixel_values) if state.pixel_values else None,
            image_grid_thw=torch.cat(state.grids) if state.grids else None,
            max_new_tokens=request.max_new_tokens,
        )

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationOutput]:
        jobs = [self._job(r) for r in requests]
        generated = self.generator(jobs)
        outputs = []
        for job, gen in zip(jobs, generated, strict=True):
            ids = gen.ids[: job.max_new_tokens]
            logprobs = gen.logprobs[: len(ids)] if gen.logprobs is not None else None
            outputs.append(self._output(job, ids, logprobs))
        return outputs

    def _output(self, job: GenerationJob, ids: list[int], logprobs: list[float] | None) -> GenerationOutput:
        state = self._state[job.request.key]
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
        state.ids.extend(ids)
        state.prefix += text
        return GenerationOutput(text=text, finish_reason=reason, token_ids=list(ids), logprobs=logprobs)

    def release(self, key: str) -> None:
        with self._lock:
            self._state.pop(key, None)


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
