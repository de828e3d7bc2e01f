"""``model.generate`` from token-level jobs: left padding, image features, stop strings.

:class:`TransformersGenerator` is the one transformers generation path of the project: the
evaluation backend (:class:`~vthinker_plugins.backends.hf.HFBackend`) and the GRPO trainer's
transformers rollouts both call it with :class:`~vthinker_plugins.generation.tokens.GenerationJob`\\ s.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch

from vthinker_plugins.backend import GenerationRequest
from vthinker_plugins.model_family import never_sampled_ids

from .tokens import TOKENIZER_LOCK, GeneratedTokens, GenerationJob


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


class StopOnStrings:
    """Stop a row once its generated text gains one of ``stop_strings``.

    A ``transformers`` stopping criterion. Transformers' own ``stop_strings`` rebuilds vocabulary
    tables on every ``generate`` call (about a second each for a 400-token vocabulary, far more for
    Qwen's 150K), which multi-turn generation pays once per round; decoding a short tail is cheap.
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
            if row in self.stopped_at:  # finished: its pad-filled tail needs no decoding every step
                done[row] = True
                continue
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


class TransformersGenerator:
    """Batched ``model.generate`` with left padding, stop strings and the jobs' images.

    Args:
        model: a callable returning the model to generate with, so the GRPO trainer can hand
            over the unwrapped (DeepSpeed/FSDP-gathered) model of the current rollout phase.
        processor: the model's processor (tokenizer, ``image_token_id``).
        generation_config: base settings (eos/pad ids...); the jobs set the budget and sampling.
        stop_strings: stop at these; ``None``: at the stop strings of the batch's first request
            (callers batch requests that share their stop strings and sampling settings).
        logits_processors: ``f(requests, prompt_length) -> [LogitsProcessor]`` per batch, where
            ``prompt_length`` is the left-padded input width (the ``scripted:`` backend forces tokens with it).
        suppress_ids: token ids never to sample; default: the vision and turn-opening ids.
    """

    #: This generator feeds the processor's pixel values to the model (vLLM takes the images).
    needs_pixel_values = True

    def __init__(
        self,
        model: Callable[[], Any],
        processor: Any,
        generation_config: Any,
        stop_strings: Sequence[str] | None = None,
        logits_processors: Callable[[Sequence[GenerationRequest], int], list[Any]] | None = None,
        suppress_ids: Sequence[int] | None = None,
    ) -> None:
        self.model = model
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.generation_config = generation_config
        self.stop_strings = None if stop_strings is None else list(stop_strings)
        self.logits_processors = logits_processors
        self.image_token_id = getattr(processor, "image_token_id", None)
        if suppress_ids is None:
            suppress_ids = never_sampled_ids(self.tokenizer)
        self.never_sample = [int(i) for i in suppress_ids]

    def __call__(self, jobs: Sequence[GenerationJob]) -> list[GeneratedTokens]:
        from transformers import LogitsProcessorList, StoppingCriteriaList

        model = self.model()
        device = next(model.parameters()).device
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self.generation_config.pad_token_id
        if pad_id is None:
            pad_id = _as_list(self.generation_config.eos_token_id)[0]
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
        config.do_sample = first.temperature > 0
        if config.do_sample:
            config.temperature, config.top_p = first.temperature, first.top_p
        else:  # greedy: sampling knobs are meaningless (and transformers warns about them)
            config.temperature = config.top_p = config.top_k = None
        # Vision and turn-opening tokens must never be sampled: a stray image token breaks the
        # image-token/feature correspondence of the next round and of the training forward pass.
        suppress = sorted(set(_as_list(config.suppress_tokens)) | set(self.never_sample))
        config.suppress_tokens = suppress or None
        extra = LogitsProcessorList(
            self.logits_processors([j.request for j in jobs], width) if self.logits_processors else []
        )
        stop_strings = self.stop_strings if self.stop_strings is not None else [s for s in first.stop if s]
        stopper = StopOnStrings(self.tokenizer, stop_strings, width) if stop_strings else None
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
