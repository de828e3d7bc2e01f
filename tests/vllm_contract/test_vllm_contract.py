"""Our vLLM requests checked by the real vllm 0.33.0 on a CPU (the eval backend and GRPO's colocated rollouts).

vLLM's own code runs on every request (see ``cpu_engine.py``): ``SamplingParams``, token prompts with
``multi_modal_data``, the renderer and Qwen2.5-VL multimodal processor that expand the image
placeholders, ``InputProcessor.process_inputs``, the engine core's stop rule and the output processor
(stop strings, logprobs). The model's tokens are replayed from a real transformers trajectory of the
tiny model. Skipped where vLLM is not installed (the main environment).
"""

from __future__ import annotations

import pytest

vllm = pytest.importorskip("vllm", reason="vLLM is not installed here: these run in the vllm-check environment "
                                           "(scripts/setup.sh --vllm-check; tests/vllm_contract/test_in_check_env.py)")

from cpu_engine import CPUFrontEnd  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from vthinker_plugins.loop import InteractionLoop, LoopConfig  # noqa: E402
from vthinker_plugins.sample import Sample  # noqa: E402

DRAW = (
    "<code>\n```python\nfrom PIL import Image, ImageDraw\nimg = Image.open(image_path)\n"
    "ImageDraw.Draw(img).line((0, 0, 60, 60), fill='red', width=3)\nimg.save(processed_path)\n"
    "print(processed_path)\n```\n</code>"
)
ROUNDS = ["<think>I draw a line.\n" + DRAW, "Once more on the new image.\n" + DRAW, "</think><answer>3</answer>"]
CONFIG = LoopConfig(max_rounds=4, max_new_tokens=200)


def test_vllm_is_the_pinned_version() -> None:
    assert vllm.__version__ == "0.33.0"


def make_image(size: int = 112) -> Image.Image:
    image = Image.new("RGB", (size, size), "white")
    ImageDraw.Draw(image).polygon([(10, 90), (60, 10), (100, 90)], outline="black", width=2)
    return image


def image_counts(processor, images) -> list[int]:
    """Image tokens per image as the trainer's processor computes them (image_grid_thw)."""
    grid = processor.image_processor(images=list(images), return_tensors="pt")["image_grid_thw"]
    return [int(g.prod()) // processor.image_processor.merge_size ** 2 for g in grid]


@pytest.fixture(scope="module")
def hf_run(tiny_model_dir, sandbox):
    """The scripted trajectory through the HF backend on the real tiny model: the ids the model saw per round."""
    from vthinker_plugins.backends import make_backend

    hf = make_backend(f"scripted:{tiny_model_dir}", device="cpu", script={"s0": ROUNDS})
    seen: list[list[int]] = []
    generate = hf.model.generate

    def spy(**kwargs):
        for row, mask in zip(kwargs["input_ids"], kwargs["attention_mask"], strict=True):
            seen.append(row[mask.bool()].tolist())
        return generate(**kwargs)

    hf.model.generate = spy
    sample = Sample(id="s0", question="How many sides?", images=[make_image()], answer="3")
    (traj,) = InteractionLoop(hf, sandbox, CONFIG).run([sample])
    assert traj.error is None and traj.n_tool_calls == 2, traj.error
    return hf, sample, traj, seen


def replay(hf, traj, tail: str = "\nand then some more text"):
    """The model's part: round k's tokens, then more (vLLM must stop at the stop string or end of turn)."""
    rounds = [list(r.gen_token_ids) for r in traj.rounds]
    rounds[-1].append(hf.eos_ids[0])
    extra = hf.tokenizer.encode(tail, add_special_tokens=False)
    calls = iter(rounds)
    return lambda request: next(calls) + extra


def check_placeholders(engine, processor, seen) -> None:
    """vLLM's expansion is the processor's ids, one placeholder range per image with the trainer's count."""
    from vthinker_plugins.generation.vllm_requests import image_token_runs

    assert [list(r.prompt_token_ids) for r in engine.requests] == seen
    for request, ids in zip(engine.requests, seen, strict=True):
        lengths = [f.mm_position.length for f in request.mm_features]
        assert lengths == image_token_runs(ids, processor.image_token_id)
        offsets = [f.mm_position.offset for f in request.mm_features]
        assert all(ids[o] == processor.image_token_id and ids[o - 1] != processor.image_token_id for o in offsets)


def test_eval_backend_requests_through_vllm(tiny_model_dir, sandbox, hf_run) -> None:
    from vthinker_plugins.backends.vllm import VLLMBackend

    hf, sample, hf_traj, seen = hf_run
    engine = CPUFrontEnd(str(tiny_model_dir), replay(hf, hf_traj))
    backend = VLLMBackend(str(tiny_model_dir), llm=engine, logprobs=True)
    (traj,) = InteractionLoop(backend, sandbox, CONFIG).run([sample])
    assert traj.error is None and traj.n_tool_calls == 2 and len(traj.tool_images) == 2, traj.error
    check_placeholders(engine, backend.processor, seen)
    # vLLM stopped at the stop strings and the end of turn; the turn is the HF backend's, token for token.
    assert traj.text == hf_traj.text and traj.answer == "3"
    assert [r.gen_token_ids for r in traj.rounds] == [r.gen_token_ids for r in hf_traj.rounds]
    assert [r.finish_reason for r in traj.rounds] == ["stop", "stop", "stop"]
    assert all(r.gen_logprobs == [-0.25] * len(r.gen_token_ids) for r in traj.rounds)
    counts = [image_counts(backend.processor, traj.images[:n]) for n in (1, 2, 3)]
    assert [[f.mm_position.length for f in r.mm_features] for r in engine.requests] == counts
    params = engine.requests[0].sampling_params
    assert params.stop == ["</code>", "</answer>"] and params.include_stop_str_in_output
    assert params.logit_bias and backend.processor.image_token_id in params.logit_bias and params.logprobs == 0


def test_rl_colocate_requests_through_vllm(tiny_model_dir, sandbox, hf_run) -> None:
    from vthinker_plugins.trl.rollout import RL_STOP_STRINGS, PolicyBackend, VLLMColocateGenerator, assemble

    hf, sample, hf_traj, seen = hf_run
    engine = CPUFrontEnd(str(tiny_model_dir), replay(hf, hf_traj))
    # The sampling keywords the GRPO trainer passes (TRL's repetition_penalty, top_k, min_p; generation_kwargs).
    generator = VLLMColocateGenerator(engine, hf.processor, {"repetition_penalty": 1.0, "top_k": 0, "min_p": 0.0})
    rl = PolicyBackend(hf.processor, generator, eos_token_ids=hf.eos_ids)
    (traj,) = InteractionLoop(rl, sandbox, CONFIG).run([sample])
    assert traj.error is None and traj.n_tool_calls == 2, traj.error
    check_placeholders(engine, hf.processor, seen)
    params = engine.requests[0].sampling_params
    assert params.stop == list(RL_STOP_STRINGS) and params.logprobs == 0 and params.top_p == 1.0
    roll = assemble(traj, rl.encoder)
    assert (roll.prompt_ids + roll.completion_ids)[: len(seen[2])] == seen[2]
    assert roll.logprobs is not None and all(lp == -0.25 for lp, m in zip(roll.logprobs, roll.tool_mask,
                                                                          strict=True) if m)


def test_trainer_pixel_bounds_reach_vllms_processor(tiny_model_dir) -> None:
    """The trainer's max_pixels is below the checkpoint's: vLLM's processor, with the checkpoint's bounds,
    gets images it expands to the trainer's counts (engine_images)."""
    from transformers import AutoProcessor
    from vllm import SamplingParams

    from vthinker_plugins.generation.tokens import SegmentEncoder
    from vthinker_plugins.generation.vllm_requests import token_prompt
    from vthinker_plugins.protocol import DEFAULT_PROMPTS

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    processor.image_processor.size = {"shortest_edge": 28 * 28, "longest_edge": 56 * 56}
    image = make_image(112)  # 16 tokens at the checkpoint's bounds, 4 at the trainer's
    user = DEFAULT_PROMPTS.user_prompt("How many sides?", 1)
    ids = SegmentEncoder(processor).prompt(DEFAULT_PROMPTS.system, user, [image]).ids
    engine = CPUFrontEnd(str(tiny_model_dir), lambda request: [processor.tokenizer.eos_token_id])
    (out,) = engine.generate([token_prompt(processor, ids, [image])], [SamplingParams(max_tokens=4)])
    assert list(out.prompt_token_ids) == ids
    assert [f.mm_position.length for f in engine.requests[0].mm_features] == image_counts(processor, [image]) == [4]


def test_pre_expanded_prompts_are_expanded_again_and_refused(tiny_model_dir, hf_run) -> None:
    """TRL issue #6294 in vLLM 0.33.0: a prompt with its image tokens already expanded (what TRL's own
    colocated generation sends) gets each image's tokens added again; the guard refuses it."""
    from vllm import SamplingParams

    from vthinker_plugins.generation.vllm_requests import PromptMismatchError, check_vllm_prompt

    hf, sample, _, seen = hf_run
    engine = CPUFrontEnd(str(tiny_model_dir), lambda request: [hf.eos_ids[0]])
    (out,) = engine.generate([{"prompt_token_ids": seen[0], "multi_modal_data": {"image": sample.images[0]}}],
                             [SamplingParams(max_tokens=4)])
    image_pad = hf.processor.image_token_id
    assert list(out.prompt_token_ids).count(image_pad) == 2 * seen[0].count(image_pad) - 1
    with pytest.raises(PromptMismatchError, match="6294"):
        check_vllm_prompt(seen[0], list(out.prompt_token_ids), "s0")


def test_eval_engine_arguments_are_vllms(tiny_model_dir) -> None:
    """The eval backend's engine arguments build vLLM's model config, and its pixel bounds give vLLM's
    processor the token counts of ours."""
    from vllm import SamplingParams
    from vllm.engine.arg_utils import EngineArgs

    from vthinker_plugins.backends.vllm import VLLMBackend
    from vthinker_plugins.generation.vllm_requests import token_prompt

    bounds = {"min_pixels": 28 * 28, "max_pixels": 56 * 56}
    backend = VLLMBackend(str(tiny_model_dir), llm=object(), max_images=3, max_model_len=4096, **bounds)
    model_config = EngineArgs(**backend.engine_kwargs).create_model_config()
    mm_config = model_config.get_multimodal_config()
    assert mm_config.mm_processor_kwargs == bounds and mm_config.get_limit_per_prompt("image") == 3
    engine = CPUFrontEnd(str(tiny_model_dir), lambda request: [backend.eos_ids[0]], limit_images=3,
                         mm_processor_kwargs=bounds)
    image = make_image(112)
    ids = backend.encoder.prompt("s", "<image>q", [image]).ids
    (out,) = engine.generate([token_prompt(backend.processor, ids, [image])], [SamplingParams(max_tokens=4)])
    assert list(out.prompt_token_ids) == ids
    assert [f.mm_position.length for f in engine.requests[0].mm_features] == [4]
