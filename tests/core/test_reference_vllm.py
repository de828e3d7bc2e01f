"""The reference oracle through the real sandbox, and the vLLM backend's token requests (no vLLM here)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from vthinker_plugins.backend import GenerationRequest
from vthinker_plugins.backends import make_backend, parse_options
from vthinker_plugins.backends.reference import ORACLE_TAG
from vthinker_plugins.data.benchmarks import load_benchmark
from vthinker_plugins.loop import InteractionLoop
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


class ScriptedEngine:
    """Stands in for ``vllm.LLM`` (not in this environment; tests/vllm_contract checks these requests with
    vLLM's own classes): expands each image placeholder as vLLM does and answers with scripted ids."""

    def __init__(self, processor, answers) -> None:
        self.processor, self.answers, self.requests = processor, list(answers), []

    def generate(self, prompts, sampling_params, use_tqdm=False):
        proc = self.processor.image_processor
        outs = []
        for prompt, params in zip(prompts, sampling_params, strict=True):
            self.requests.append((prompt, params))
            images = prompt.get("multi_modal_data", {}).get("image", [])
            counts = iter(proc.get_number_of_image_patches(im.height, im.width, {}) // proc.merge_size**2
                          for im in (images if isinstance(images, list) else [images]))
            ids = [t for tok in prompt["prompt_token_ids"]
                   for t in ([tok] * next(counts) if tok == self.processor.image_token_id else [tok])]
            token_ids, logprobs = self.answers.pop(0)
            outs.append(SimpleNamespace(prompt_token_ids=ids, outputs=[SimpleNamespace(token_ids=token_ids,
                                                                                        logprobs=logprobs)]))
        return outs


def test_vllm_backend_builds_token_requests(tiny_model_dir) -> None:
    from PIL import Image

    from vthinker_plugins.backends.vllm import VLLMBackend
    from vthinker_plugins.generation.tokens import SegmentEncoder
    from vthinker_plugins.generation.vllm_requests import image_token_runs

    images = [Image.new("RGB", (60, 40)), Image.new("RGB", (30, 30))]
    prefix = "<think>a\n<code>\nprint(1)\n</code>\n<sandbox_output><image></sandbox_output>\n"
    request = GenerationRequest(
        key="v#0", system=DEFAULT_PROMPTS.system, user=DEFAULT_PROMPTS.user_prompt("q", 1),
        assistant_prefix=prefix, images=images, max_new_tokens=77, temperature=1.0, top_p=0.9,
    )
    probe = VLLMBackend(str(tiny_model_dir), llm=ScriptedEngine(None, []), sampling_params_cls=dict)
    tok = probe.tokenizer
    # Generated past the stop string (vLLM keeps the token that completed it, which may run past it).
    first = tok.encode("<code>\nx=1\n</code>\nmore", add_special_tokens=False)
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    answers = [
        (first, [{t: SimpleNamespace(logprob=-0.5)} for t in first]),
        ([*tok.encode("done", add_special_tokens=False), eos], None),
        (tok.encode("abc", add_special_tokens=False), None),
    ]
    engine = ScriptedEngine(probe.processor, answers)
    backend = VLLMBackend(str(tiny_model_dir), llm=engine, logprobs=True, sampling_params_cls=dict)
    out = backend.generate([request])[0]
    (prompt, params), = engine.requests
    # A request without state but with a prefix (a resumed conversation): the prompt, then the prefix, encoded
    # once, with one placeholder token per image; vLLM's expansion is the processor's.
    encoder = SegmentEncoder(backend.processor, cache_prompts=False)
    expected = encoder.prompt(request.system, request.user, images[:1]).ids
    expected += encoder.assistant_text(prefix, images[1:]).ids
    assert prompt["prompt_token_ids"].count(backend.processor.image_token_id) == 2
    assert image_token_runs(expected, backend.processor.image_token_id) == [6, 4]
    assert len(prompt["multi_modal_data"]["image"]) == 2
    assert params["max_tokens"] == 77 and params["stop"] == ["</code>", "</answer>"]
    assert params["include_stop_str_in_output"] is True and params["top_p"] == 0.9 and params["logprobs"] == 0
    assert backend.processor.image_token_id in params["logit_bias"] and "seed" not in params
    # Cut at the stop string, ids and text alike; logprobs of the kept ids.
    assert (out.text, out.finish_reason) == ("<code>\nx=1\n</code>", "stop")
    assert tok.decode(out.token_ids, skip_special_tokens=False) == out.text
    assert out.logprobs == [-0.5] * len(out.token_ids)
    assert backend.tokens.get("v#0").ids == expected + out.token_ids

    greedy = GenerationRequest(key="g#0", system="s", user="q", assistant_prefix="", images=[], max_new_tokens=5,
                               temperature=0.0)
    out = backend.generate([greedy])[0]
    assert (out.text, out.finish_reason) == ("done", "eos")
    assert out.token_ids == tok.encode("done", add_special_tokens=False)
    assert engine.requests[1][1]["top_p"] == 1.0 and "multi_modal_data" not in engine.requests[1][0]
    out = backend.generate([GenerationRequest(key="l#0", system="s", user="q", assistant_prefix="", images=[],
                                              max_new_tokens=2)])[0]
    assert out.finish_reason == "length" and len(out.token_ids) == 2
    bad = GenerationRequest(key="b#0", system="s", user="<image>q", assistant_prefix="", images=[], max_new_tokens=5)
    with pytest.raises(ValueError, match="1 image placeholder"):
        backend.generate([bad])


def test_vllm_backend_says_what_is_missing() -> None:
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install vllm"):
            make_backend("vllm:/nonexistent")
    else:  # pragma: no cover - only on GPU machines with vLLM
        pytest.skip("vLLM installed; the engine itself is exercised on GPU machines")
