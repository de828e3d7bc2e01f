"""Evaluation and RL feed the model the same token ids: the transformers eval backend (HFBackend) and
the GRPO rollout backend (PolicyBackend) share the core token machinery. One scripted trajectory with
sandbox images fed back, run through the real loop by both on the same tiny model, must show the model
identical input ids in every round."""

from __future__ import annotations

from grpo_helpers import DRAW, make_image, scripted
from transformers import GenerationConfig

from vthinker_plugins.loop import InteractionLoop, LoopConfig
from vthinker_plugins.sample import Sample
from vthinker_plugins.trl.rollout import RL_STOP_STRINGS, PolicyBackend, TransformersGenerator, assemble

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

    hf = make_backend(str(tiny_model_dir), device="cpu", script={"rollout0": ROUNDS})
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
