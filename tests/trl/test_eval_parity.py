"""Evaluation and RL feed the model the same token ids: the transformers eval backend (HFBackend) and
the GRPO rollout backend (PolicyBackend) share the core token machinery. One scripted trajectory with
sandbox images fed back, run through the real loop by both on the same tiny model, must show the model
identical input ids in every round."""

from __future__ import annotations

from grpo_helpers import DRAW, make_image, scripted
from transformers import GenerationConfig

from vthinker_plugins.generation.transformers_generator import TransformersGenerator
from vthinker_plugins.loop import InteractionLoop, LoopConfig
from vthinker_plugins.sample import Sample
from vthinker_plugins.trl.rollout import RL_STOP_STRINGS, PolicyBackend, assemble

ROUNDS = ["<think>I draw a line.\n" + DRAW, "Once more on the new image.\n" + DRAW, "</think><answer>3</answer>"]


def _spy(model, monkeypatch) -> list[list[int]]:
    seen: list[list[int]] = []
    real_generate = model.generate

    def spy(**kwargs):
        for row, mask in zip(kwargs["input_ids"], kwargs["attention_mask"], strict=True):
            seen.append(row[mask.bool()].tolist())
        return real_generate(**kwargs)

    monkeypatch.setattr(model, "generate", spy)
    return seen


def test_eval_backend_and_rl_rollouts_generate_from_the_same_ids(tiny_model_dir, sandbox, monkeypatch) -> None:
    from vthinker_plugins.backends import make_backend

    hf = make_backend(f"scripted:{tiny_model_dir}", device="cpu", script={"rollout0": ROUNDS})
    sample = Sample(id="rollout0", question="How many sides?", images=[make_image(0)], answer="3")
    config = LoopConfig(max_rounds=4, max_new_tokens=200)

    hf_seen = _spy(hf.model, monkeypatch)
    (hf_traj,) = InteractionLoop(hf, sandbox, config).run([sample])
    monkeypatch.undo()

    eos = hf.eos_ids
    generation_config = GenerationConfig(max_new_tokens=200, do_sample=False, pad_token_id=hf.pad_id, eos_token_id=eos)
    generator = TransformersGenerator(lambda: hf.model, hf.processor, generation_config, stop_strings=RL_STOP_STRINGS,
                                      logits_processors=scripted(hf.processor, {0: ROUNDS}))
    rl = PolicyBackend(hf.processor, generator, eos_token_ids=eos)
    rl_seen = _spy(hf.model, monkeypatch)
    (rl_traj,) = InteractionLoop(rl, sandbox, config).run([sample])

    for traj in (hf_traj, rl_traj):
        assert traj.error is None and traj.n_tool_calls == 2 and traj.n_tool_errors == 0, traj.error
        assert len(traj.tool_images) == 2 and len(traj.rounds) == 3
    # Round by round the model saw the same ids: prompt, generated ids, observation ids (with the images).
    assert len(hf_seen) == len(rl_seen) == 3
    assert hf_seen == rl_seen
    assert [r.gen_token_ids for r in hf_traj.rounds[:2]] == [r.gen_token_ids for r in rl_traj.rounds[:2]]
    assert [r.obs_token_ids for r in hf_traj.rounds[:2]] == [r.obs_token_ids for r in rl_traj.rounds[:2]]
    # ...which is what GRPO trains on (prompt + completion), up to the last round's own tokens.
    roll = assemble(rl_traj, rl.encoder)
    full = roll.prompt_ids + roll.completion_ids
    assert full[: len(hf_seen[2])] == hf_seen[2]
    image_pad = hf.processor.image_token_id
    assert hf_seen[2].count(image_pad) > hf_seen[1].count(image_pad) > hf_seen[0].count(image_pad) > 0


class ReplayingVLLM:
    """A stand-in for ``vllm.LLM`` (vLLM is not in this environment; tests/vllm_contract runs vLLM's own
    input processing on these requests): it expands each image's placeholder token into that image's
    tokens as vLLM 0.33 does, records the expanded prompt, and answers each call with the next round's
    ids of a recorded trajectory."""

    def __init__(self, processor, rounds: list[list[int]]) -> None:
        self.processor, self.rounds, self.seen, self.requests = processor, list(rounds), [], []

    def generate(self, prompts, sampling_params, use_tqdm=False):
        from types import SimpleNamespace

        proc = self.processor.image_processor
        outs = []
        for prompt, params in zip(prompts, sampling_params, strict=True):
            images = prompt.get("multi_modal_data", {}).get("image", [])
            images = images if isinstance(images, list) else [images]
            counts = iter(proc.get_number_of_image_patches(im.height, im.width, {}) // proc.merge_size**2
                          for im in images)
            ids = []
            for tok in prompt["prompt_token_ids"]:
                ids += [tok] * next(counts) if tok == self.processor.image_token_id else [tok]
            self.seen.append(ids)
            self.requests.append((prompt, params))
            outs.append(SimpleNamespace(prompt_token_ids=ids,
                                        outputs=[SimpleNamespace(token_ids=self.rounds.pop(0), logprobs=None)]))
        return outs


def test_vllm_eval_backend_sends_the_same_ids(tiny_model_dir, sandbox, monkeypatch) -> None:
    """The vLLM evaluation backend's requests, expanded as vLLM expands them, are round by round the ids the
    HF backend and the GRPO rollouts generate from; its observations are encoded the training way."""
    from vthinker_plugins.backends import make_backend
    from vthinker_plugins.backends.vllm import VLLMBackend

    hf = make_backend(f"scripted:{tiny_model_dir}", device="cpu", script={"rollout0": ROUNDS})
    sample = Sample(id="rollout0", question="How many sides?", images=[make_image(0)], answer="3")
    config = LoopConfig(max_rounds=4, max_new_tokens=200)
    hf_seen = _spy(hf.model, monkeypatch)
    (hf_traj,) = InteractionLoop(hf, sandbox, config).run([sample])
    monkeypatch.undo()

    generated = [r.gen_token_ids for r in hf_traj.rounds]
    generated[-1] = [*generated[-1], hf.eos_ids[0]]  # vLLM reports the end-of-turn token it stopped at
    engine = ReplayingVLLM(hf.processor, generated)
    backend = VLLMBackend(str(tiny_model_dir), llm=engine, sampling_params_cls=dict)
    (traj,) = InteractionLoop(backend, sandbox, config).run([sample])

    assert traj.error is None and traj.n_tool_calls == 2 and len(traj.tool_images) == 2, traj.error
    assert engine.seen == hf_seen and len(hf_seen) == 3
    assert [r.obs_token_ids for r in traj.rounds] == [r.obs_token_ids for r in hf_traj.rounds]
    assert traj.text == hf_traj.text and traj.answer == "3"
    image_pad = hf.processor.image_token_id
    for (prompt, params), images in zip(engine.requests, ([1], [1, 1], [1, 1, 1]), strict=True):
        assert prompt["prompt_token_ids"].count(image_pad) == len(images)  # one placeholder per image
        sent = prompt["multi_modal_data"]["image"]
        assert len(sent if isinstance(sent, list) else [sent]) == len(images)
        assert params["stop"] == ["</code>", "</answer>"] and params["include_stop_str_in_output"]
        assert image_pad in params["logit_bias"] and params["max_tokens"] == 200
