"""The reference oracle through the real sandbox, and the vLLM backend's request building (no vLLM here)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from vthinker_plugins.backends import make_backend, parse_options
from vthinker_plugins.backends.reference import ORACLE_TAG
from vthinker_plugins.data.benchmarks import load_benchmark
from vthinker_plugins.loop import GenerationRequest, InteractionLoop
from vthinker_plugins.protocol import DEFAULT_PROMPTS, check_format


def test_reference_replays_code_and_reproduces_ground_truth(vtbench_file) -> None:
    samples = load_benchmark(str(vtbench_file))
    trajs = InteractionLoop(make_backend("reference")).run(samples)
    for traj in trajs:
        sample = traj.sample
        assert traj.error is None, (sample.id, traj.error)
        assert ORACLE_TAG in traj.text and check_format(traj.text).ok
        assert traj.n_tool_calls == len(sample.meta["reference_code"]) and traj.n_tool_errors == 0
        if sample.task == "vtbench_reasoning":
            assert traj.n_tool_calls == 2 and len(traj.tool_images) == 2 and traj.answer == sample.answer
        else:
            # The sandbox output equals the ground-truth drawing pixel for pixel.
            drawn = np.asarray(traj.tool_images[0], dtype=np.int16)
            truth = np.asarray(sample.meta["annotation"].convert("RGB"), dtype=np.int16)
            assert drawn.shape == truth.shape and np.abs(drawn - truth).max() == 0


def test_reference_needs_the_sample() -> None:
    from PIL import Image

    request = GenerationRequest(key="k", system="s", user="<image>q", assistant_prefix="",
                                images=[Image.new("RGB", (8, 8))], max_new_tokens=8)
    with pytest.raises(ValueError, match="needs the sample"):
        make_backend("reference").generate([request])
    with pytest.raises(ValueError, match="takes no options"):
        make_backend("reference", device="cpu")


def test_parse_options() -> None:
    opts = parse_options(["device=cuda", "max-pixels=4194304", "temperature=0.5", "trust=true", "script=a.jsonl"])
    assert opts == {"device": "cuda", "max_pixels": 4194304, "temperature": 0.5, "trust": True, "script": "a.jsonl"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_options(["cuda"])


def test_vllm_request_building(tiny_model_dir) -> None:
    from PIL import Image
    from transformers import AutoProcessor

    from vthinker_plugins.backends.vllm import sampling_kwargs, to_output, vllm_prompt

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    images = [Image.new("RGB", (60, 40)), Image.new("RGB", (30, 30))]
    request = GenerationRequest(
        key="v#0", system=DEFAULT_PROMPTS.system, user=DEFAULT_PROMPTS.user_prompt("q", 1),
        assistant_prefix="<think>a\n<code>\nprint(1)\n</code>\n<sandbox_output><image></sandbox_output>\n",
        images=images, max_new_tokens=77, temperature=1.0, top_p=0.9,
    )
    prompt = vllm_prompt(processor, request)
    assert prompt["prompt"].count("<|vision_start|><|image_pad|><|vision_end|>") == 2
    assert prompt["prompt"].endswith("<sandbox_output><|vision_start|><|image_pad|><|vision_end|></sandbox_output>\n")
    assert prompt["multi_modal_data"]["image"][1].size == (30, 30)
    kwargs = sampling_kwargs(request, logprobs=True)
    assert kwargs["max_tokens"] == 77 and kwargs["stop"] == ["</code>", "</answer>"]
    assert kwargs["include_stop_str_in_output"] is True and kwargs["top_p"] == 0.9 and kwargs["logprobs"] == 0

    stopped = SimpleNamespace(text="<code>x</code>", token_ids=[5, 6], finish_reason="stop", stop_reason="</code>",
                              logprobs=[{5: SimpleNamespace(logprob=-0.5)}, {6: SimpleNamespace(logprob=-1.0)}])
    out = to_output(stopped, eos_token_ids=[9])
    assert (out.text, out.finish_reason, out.token_ids) == ("<code>x</code>", "stop", [5, 6])
    assert out.logprobs == [-0.5, -1.0]
    eos = SimpleNamespace(text="done<|im_end|>", token_ids=[5, 9], finish_reason="stop", stop_reason=None,
                          logprobs=None)
    out = to_output(eos, eos_token_ids=[9])
    assert (out.text, out.finish_reason, out.token_ids) == ("done", "eos", [5])
    length = SimpleNamespace(text="abc", token_ids=[1, 2, 3], finish_reason="length", stop_reason=None, logprobs=None)
    assert to_output(length).finish_reason == "length"


def test_vllm_backend_says_what_is_missing() -> None:
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install vllm"):
            make_backend("vllm:/nonexistent")
    else:  # pragma: no cover - only on GPU machines with vLLM
        pytest.skip("vLLM installed; the engine itself is exercised on GPU machines")
