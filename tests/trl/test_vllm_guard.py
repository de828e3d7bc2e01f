"""The vLLM generation paths' request building and their guard against TRL issue #6294.

vLLM is not in the main environment, so the engine and the server are stood in for by small fakes
that expand image tokens the way vLLM 0.33.0 does (each image's placeholder token becomes that image's
tokens; tests/vllm_contract shows it with vLLM's own processor); the processor, token ids and images
are real.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from grpo_helpers import make_image

from vthinker_plugins.backend import GenerationRequest
from vthinker_plugins.generation.tokens import GenerationJob, SegmentEncoder
from vthinker_plugins.generation.vllm_requests import (
    PromptMismatchError,
    check_vllm_prompt,
    engine_prompt_ids,
    image_token_runs,
)
from vthinker_plugins.protocol import DEFAULT_PROMPTS
from vthinker_plugins.trl.rollout import VLLMColocateGenerator, VLLMServerGenerator


@pytest.fixture(scope="module")
def job(tiny_model_dir):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    image = make_image(0)
    user = DEFAULT_PROMPTS.user_prompt("How many sides?", 1)
    seg = SegmentEncoder(processor).prompt(DEFAULT_PROMPTS.system, user, [image])
    request = GenerationRequest(key="r0#0", system=DEFAULT_PROMPTS.system, user=user, assistant_prefix="",
                                images=[image], max_new_tokens=7, temperature=1.0, top_p=0.9)
    return processor, GenerationJob(request, seg.ids, [image], seg.pixel_values, seg.image_grid_thw, 7)


class FakeLLM:
    """Reports prompts the way vLLM 0.33 does: the k-th image token becomes the k-th image's tokens
    (``tokens_per_image``, default: the processor's 16), every other token stays."""

    def __init__(self, image_token_id: int, tokens_per_image: int = 16) -> None:
        self.image_token_id, self.tokens_per_image, self.seen = image_token_id, tokens_per_image, []

    def generate(self, prompts, sampling_params, use_tqdm=False):
        self.seen.append((prompts, sampling_params))
        outs = []
        for prompt in prompts:
            images = prompt.get("multi_modal_data", {}).get("image", [])
            left = len(images) if isinstance(images, list) else 1
            ids = []
            for tok in prompt["prompt_token_ids"]:
                if tok == self.image_token_id and left:
                    ids += [tok] * self.tokens_per_image
                    left -= 1
                else:
                    ids.append(tok)
            lp = [{5: SimpleNamespace(logprob=-0.5)}, {6: SimpleNamespace(logprob=-1.5)}]
            outs.append(SimpleNamespace(prompt_token_ids=ids,
                                        outputs=[SimpleNamespace(token_ids=[5, 6], logprobs=lp)]))
        return outs


def test_colocate_builds_token_prompts_with_images_and_stops(job):
    processor, gen_job = job
    llm = FakeLLM(processor.image_token_id)
    generator = VLLMColocateGenerator(llm, processor, {"top_k": 0}, sampling_params_cls=dict)
    (out,) = generator([gen_job])
    assert out.ids == [5, 6] and out.logprobs == [-0.5, -1.5]
    (prompt,), (params,) = llm.seen[0]
    # One placeholder token per image, which vLLM expands back to exactly the processor's ids.
    assert prompt["prompt_token_ids"] == engine_prompt_ids(gen_job.ids, processor.image_token_id)
    assert prompt["prompt_token_ids"].count(processor.image_token_id) == 1
    assert prompt["multi_modal_data"]["image"] is gen_job.images[0]
    assert params["max_tokens"] == 7 and params["stop"] == ["</code>"] and params["include_stop_str_in_output"]
    assert params["temperature"] == 1.0 and params["top_p"] == 0.9 and params["logprobs"] == 0
    assert processor.image_token_id in params["logit_bias"]  # vision tokens are never sampled


def test_colocate_refuses_re_expanded_image_tokens(job):
    processor, gen_job = job
    generator = VLLMColocateGenerator(FakeLLM(processor.image_token_id, tokens_per_image=32), processor, {},
                                      sampling_params_cls=dict)
    with pytest.raises(PromptMismatchError, match="6294"):
        generator([gen_job])
    with pytest.raises(PromptMismatchError, match="first difference at position 2"):
        check_vllm_prompt([1, 2, 3], [1, 2, 4, 5], "k")


class FakeServer:
    def __init__(self, lengths):
        self.lengths, self.calls = lengths, []

    def image_features(self, images):
        return [{"mm_placeholders": {"image": [{"offset": 0, "length": n} for n in self.lengths]}} for _ in images]

    def generate(self, **kwargs):
        self.calls.append(kwargs)
        return {"prompt_ids": kwargs["prompts"], "completion_ids": [[7, 8]] * len(kwargs["prompts"]),
                "logprobs": [[[-0.1], [-0.2]]] * len(kwargs["prompts"])}


def test_server_checks_image_token_counts(job):
    processor, gen_job = job
    runs = image_token_runs(gen_job.ids, processor.image_token_id)
    placed = []
    server = FakeServer(runs)
    generator = VLLMServerGenerator(server, processor, {}, lambda f, ids: placed.append(ids) or f)
    (out,) = generator([gen_job])
    assert out.ids == [7, 8] and out.logprobs == [-0.1, -0.2] and placed == [gen_job.ids]
    assert server.calls[0]["max_tokens"] == 7 and server.calls[0]["generation_kwargs"]["stop"] == ["</code>"]
    bad = VLLMServerGenerator(FakeServer([runs[0] * 4]), processor, {}, lambda f, ids: f)
    with pytest.raises(PromptMismatchError, match="server expands the images"):
        bad([gen_job])


def test_policy_backend_over_vllm_keeps_no_pixel_values(job):
    from vthinker_plugins.trl.rollout import PolicyBackend

    processor, gen_job = job
    llm = FakeLLM(processor.image_token_id)
    backend = PolicyBackend(processor, VLLMColocateGenerator(llm, processor, {}, sampling_params_cls=dict),
                            eos_token_ids=[processor.tokenizer.convert_tokens_to_ids("<|im_end|>")])
    (out,) = backend.generate([gen_job.request])
    assert out.token_ids == [5, 6] and out.logprobs == [-0.5, -1.5] and out.finish_reason == "stop"
    state = backend.tokens.get(gen_job.request.key)
    assert state.ids == [*gen_job.ids, 5, 6] and state.pixel_values == [] and len(state.grids) == 1
    assert llm.seen[0][0][0]["prompt_token_ids"] == engine_prompt_ids(gen_job.ids, processor.image_token_id)


class EngineProcessingLLM(FakeLLM):
    """Like vLLM: the engine computes each image's token count with its own processor (the
    checkpoint's pixel bounds) from the image it is handed, and re-expands runs that disagree."""

    def __init__(self, engine_processor) -> None:
        super().__init__(engine_processor.image_token_id)
        self.engine_processor = engine_processor

    def generate(self, prompts, sampling_params, use_tqdm=False):
        proc = self.engine_processor.image_processor
        outs = []
        for prompt in prompts:
            images = prompt.get("multi_modal_data", {}).get("image", [])
            images = images if isinstance(images, list) else [images]
            counts = [proc.get_number_of_image_patches(im.height, im.width, {}) // proc.merge_size**2 for im in images]
            ids, runs = [], iter(counts)
            for tok in prompt["prompt_token_ids"]:
                if tok != self.image_token_id:
                    ids.append(tok)
                elif not ids or ids[-1] != tok:  # the start of a run: the engine's count of tokens
                    ids += [tok] * next(runs)
            outs.append(SimpleNamespace(prompt_token_ids=ids, outputs=[SimpleNamespace(token_ids=[5], logprobs=None)]))
        self.seen.append((prompts, sampling_params))
        return outs


def test_colocate_images_follow_the_trainers_pixel_bounds(tiny_model_dir):
    """The trainer's processor has max_pixels below the checkpoint's: vLLM, which processes the
    images itself with the checkpoint's bounds, must be handed images it expands to the same tokens."""
    from transformers import AutoProcessor

    engine_processor = AutoProcessor.from_pretrained(tiny_model_dir)
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    processor.image_processor.size = {"shortest_edge": 28 * 28, "longest_edge": 56 * 56}
    image = make_image(1)  # 112 x 112: 16 tokens at the checkpoint's bounds, 4 at the trainer's
    user = DEFAULT_PROMPTS.user_prompt("How many sides?", 1)
    seg = SegmentEncoder(processor).prompt(DEFAULT_PROMPTS.system, user, [image])
    assert image_token_runs(seg.ids, processor.image_token_id) == [4]
    request = GenerationRequest(key="r1#0", system=DEFAULT_PROMPTS.system, user=user, assistant_prefix="",
                                images=[image], max_new_tokens=3, temperature=1.0)
    gen_job = GenerationJob(request, seg.ids, [image], None, seg.image_grid_thw, 3)
    llm = EngineProcessingLLM(engine_processor)
    (out,) = VLLMColocateGenerator(llm, processor, {}, sampling_params_cls=dict)([gen_job])
    assert out.ids == [5]
    (prompt,), _ = llm.seen[0]
    assert prompt["multi_modal_data"]["image"].size == (56, 56)
    assert gen_job.images[0] is image and image.size == (112, 112)  # the rollout's own images are untouched

    # The server path: the images it processes are the resized ones too.
    counted = []

    class EngineServer(FakeServer):
        def image_features(self, images):
            proc = engine_processor.image_processor
            counted.extend(im.size for ims in images for im in ims)
            return [{"mm_placeholders": {"image": [
                {"offset": 0, "length": proc.get_number_of_image_patches(im.height, im.width, {}) // 4} for im in ims
            ]}} for ims in images]

    (out,) = VLLMServerGenerator(EngineServer([]), processor, {}, lambda f, ids: f)([gen_job])
    assert out.ids == [7, 8] and counted == [(56, 56)]
