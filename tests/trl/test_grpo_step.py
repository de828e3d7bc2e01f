"""A real GRPO step on the tiny Qwen2.5-VL: real TRL trainer, real processor, real sandbox.

Generation is scripted (the real ``model.generate`` runs; a logits processor forces the
tokens) so that the four rollouts of the prompt draw on the image, fail, hang, and draw twice.
"""

from __future__ import annotations

import math

import pytest
import torch
from grpo_helpers import DRAW, FAIL, HANG, scripted

from vthinker_plugins.protocol import OBS_CLOSE, OBS_OPEN, strip_observations

SCRIPT = {
    0: ["<think>Let me mark it.\n" + DRAW, "The mark shows it.</think><answer>3</answer>"],
    1: ["<think>Try.\n" + FAIL, "It failed.</think><answer>7</answer>"],
    2: ["<think>Wait.\n" + HANG, "Too slow.</think><answer>3</answer>"],
    3: ["<think>One.\n" + DRAW, "Two.\n" + DRAW, "Done.</think><answer>5</answer>"],
}


def make_trainer(tiny_model_dir, rl_parquet, sandbox, tmp_path, **overrides):
    from transformers import AutoProcessor

    from vthinker_plugins.trl import VThinkerGRPOConfig, VThinkerGRPOTrainer, load_rl_dataset

    class CapturingTrainer(VThinkerGRPOTrainer):
        """Keeps what the overridden extension points hand to TRL, for the assertions."""

        captured: dict = {}  # noqa: RUF012 - reset per instance below

        def rollout(self, prompts):
            self.captured["trajectories"] = super().rollout(prompts)
            return self.captured["trajectories"]

        def _generate(self, prompts):
            self.captured["generate"] = super()._generate(prompts)
            return self.captured["generate"]

        def _generate_and_score_completions(self, inputs):
            self.captured["scored"] = super()._generate_and_score_completions(inputs)
            return self.captured["scored"]

    settings = dict(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        bf16=False,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=512,
        max_steps=1,
        learning_rate=1e-3,
        weight_decay=0.0,
        beta=0.01,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        shuffle_dataset=False,
        max_rounds=4,
    )
    settings.update(overrides)
    args = VThinkerGRPOConfig(**settings)
    processor = AutoProcessor.from_pretrained(tiny_model_dir, padding_side="left")
    trainer = CapturingTrainer(
        str(tiny_model_dir),
        args=args,
        train_dataset=load_rl_dataset(rl_parquet, limit=1),
        processing_class=processor,
        sandbox=sandbox,
        rollout_logits_processors=scripted(processor, SCRIPT),
    )
    trainer.captured = {}
    return trainer


@pytest.fixture(scope="module")
def trained(tiny_model_dir, rl_parquet, sandbox, tmp_path_factory):
    trainer = make_trainer(tiny_model_dir, rl_parquet, sandbox, tmp_path_factory.mktemp("grpo"))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    result = trainer.train()
    return trainer, before, result


def test_step_trains_on_multi_turn_rollouts(trained):
    trainer, before, result = trained
    assert math.isfinite(result.training_loss)
    changed = [n for n, p in trainer.model.named_parameters() if n in before and not torch.equal(p, before[n])]
    assert any("lm_head" in n for n in changed) and any("layers" in n for n in changed)
    # The ViT is frozen, the projector (merger) trains, as in the paper's RL stage.
    assert any("visual.merger" in n for n in changed)
    assert not any("visual.blocks" in n or "patch_embed" in n for n in before)
    logs = trainer.state.log_history[0]
    assert logs["tools/calls_per_rollout"] == pytest.approx(5 / 4)
    assert logs["tools/error_rate"] == pytest.approx(2 / 5)
    assert logs["tools/images_per_rollout"] == pytest.approx(3 / 4)
    assert logs["rewards/accuracy/mean"] == pytest.approx(0.5)
    assert logs["rewards/format/mean"] == pytest.approx(1.0)
    # Tool reward: rollout 0 (correct, 1/1 ok) = 1; rollout 2 (correct, timed out) = 0; wrong ones gated to 0.
    assert logs["rewards/tool/mean"] == pytest.approx(0.25)


def test_sandbox_failures_become_observations(trained):
    trainer, _, _ = trained
    trajectories = trainer.captured["trajectories"]
    statuses = trainer.captured["generate"][5]["tool_statuses"]
    assert statuses == [["ok"], ["error"], ["timeout"], ["ok", "ok"]]
    assert "boom from the test" in trajectories[1].text and "Error:" in trajectories[1].text
    assert "Error: TimeoutError" in trajectories[2].text and "wall-clock limit" in trajectories[2].text
    # The model saw the failure and went on to answer in the same turn.
    assert trajectories[1].answer == "7" and trajectories[2].answer == "3"
    assert [t.stop_reason for t in trajectories] == ["answer"] * 4


def test_tool_mask_is_zero_exactly_on_observation_tokens(trained):
    trainer, _, _ = trained
    tok = trainer.processing_class.tokenizer
    image_token = trainer.processing_class.image_token_id
    trajectories = trainer.captured["trajectories"]
    _, completion_ids, tool_mask, completions, *_ = trainer.captured["generate"]
    for traj, ids, mask, completion in zip(trajectories, completion_ids, tool_mask, completions, strict=True):
        assert len(ids) == len(mask)
        observed = [tok_id for tok_id, m in zip(ids, mask, strict=True) if m == 0]
        generated = [tok_id for tok_id, m in zip(ids, mask, strict=True) if m == 1]
        # Masked tokens are the observations, tags included, verbatim and nothing else.
        expected_obs = [t for r in traj.rounds for t in (r.obs_token_ids or [])]
        assert observed == expected_obs
        obs_text = tok.decode(observed, skip_special_tokens=False)
        assert obs_text.count(OBS_OPEN) == obs_text.count(OBS_CLOSE) == sum(1 for r in traj.rounds if r.observation)
        # Every image token of the completion is inside an observation; the model's own tokens have none.
        assert image_token not in generated
        assert sum(1 for t in observed if t == image_token) == 16 * len(traj.tool_images)
        # The trained tokens are exactly what the model wrote (its text, then the end of turn).
        assert tok.decode(generated, skip_special_tokens=True) == "".join(r.text for r in traj.rounds)
        assert generated[-1] == tok.convert_tokens_to_ids("<|im_end|>")
        assert strip_observations(completion[0]["content"]).count("<answer>") == 1


def test_tool_images_enter_the_forward_pass(trained):
    trainer, _, _ = trained
    scored = trainer.captured["scored"]
    trajectories = trainer.captured["trajectories"]
    n_images = sum(len(t.images) for t in trajectories)
    assert n_images == 4 + 3
    assert scored["num_images"] == [len(t.images) for t in trajectories]
    grid = scored["image_grid_thw"]
    assert grid.shape[0] == n_images
    assert scored["pixel_values"].shape[0] == int(grid.prod(dim=1).sum())
    # The image-token mask TRL hands to Qwen2.5-VL covers prompt and completion image tokens alike.
    ids = torch.cat([scored["prompt_ids"], scored["completion_ids"]], dim=1)
    image_tokens = ids == trainer.processing_class.image_token_id
    assert torch.equal(scored["mm_token_type_ids"].bool(), image_tokens)
    assert int(image_tokens.sum()) == int(grid.prod(dim=1).sum()) // 4
    # Loss mask: completion tokens minus observation tokens.
    assert torch.equal(scored["tool_mask"] * scored["completion_mask"] == 0,
                       (scored["completion_mask"] == 0) | (scored["tool_mask"] == 0))
    assert int(((scored["tool_mask"] == 0) & (scored["completion_mask"] == 1)).sum()) == sum(
        len(r.obs_token_ids or []) for t in trajectories for r in t.rounds
    )


def test_budget_never_splits_an_observation(trained):
    """Re-run the drawing rollout with completion budgets around its observation."""
    from trl.data_utils import prepare_multimodal_messages

    trainer, _, _ = trained
    full = trainer.captured["trajectories"][0]
    first, obs = len(full.rounds[0].gen_token_ids), len(full.rounds[0].obs_token_ids)
    row = trainer.train_dataset[0]
    prompts = [prepare_multimodal_messages(row["prompt"], images=row["images"])]
    cfg = trainer.loop_config
    original = cfg.max_completion_tokens
    try:
        # The observation does not fit: the rollout stops before it, with no image token at all.
        cfg.max_completion_tokens = first + obs - 1
        _, completion_ids, tool_mask, _, _, extra, images, tool_images = trainer._generate(prompts)
        traj = trainer.captured["trajectories"][0]
        assert traj.stop_reason == "budget" and extra["rollout_stop"] == ["budget"]
        assert completion_ids[0] == full.rounds[0].gen_token_ids and set(tool_mask[0]) == {1}
        assert trainer.processing_class.image_token_id not in completion_ids[0]
        assert tool_images == [[]] and len(images[0]) == 1
        # The observation fits; the next round is cut to the budget, in the model's own tokens.
        cfg.max_completion_tokens = first + obs + 3
        _, completion_ids, tool_mask, _, _, extra, images, tool_images = trainer._generate(prompts)
        traj = trainer.captured["trajectories"][0]
        assert len(completion_ids[0]) == first + obs + 3
        assert tool_mask[0] == [1] * first + [0] * obs + [1] * 3
        assert traj.rounds[-1].finish_reason == "length" and len(tool_images[0]) == 1
    finally:
        cfg.max_completion_tokens = original


def test_max_pixels_reaches_the_processor(tiny_model_dir, rl_parquet, sandbox, tmp_path):
    """``max_pixels`` in the config bounds every image of the rollouts and of the training forward
    pass, also when the processor was loaded without it (TRL loads one when none is given)."""
    from trl.data_utils import prepare_multimodal_messages

    from vthinker_plugins.generation.vllm_requests import image_token_runs

    trainer = make_trainer(tiny_model_dir, rl_parquet, sandbox, tmp_path, max_pixels=56 * 56, min_pixels=28 * 28)
    row = trainer.train_dataset[0]
    assert row["images"][0].size == (112, 112)  # 16 image tokens at the checkpoint's bounds
    prompts = [prepare_multimodal_messages(row["prompt"], images=row["images"])]
    prompt_ids, completion_ids, *_, images, tool_images = trainer._generate(prompts)
    assert len(images[0]) == 2 and len(tool_images[0]) == 1  # rollout 0 draws once
    # 56 x 56 pixels = 2 x 2 merged patches: 4 tokens per image, prompt and tool image alike.
    assert image_token_runs(prompt_ids[0] + completion_ids[0], trainer.processing_class.image_token_id) == [4, 4]
    grid = trainer.processing_class.image_processor(images=images[0], return_tensors="pt")["image_grid_thw"]
    assert grid.tolist() == [[1, 4, 4], [1, 4, 4]]


def test_grpo_loss_has_no_gradient_at_observation_positions(trained):
    """TRL's real compute_loss on the step's scored batch: the gradient reaching the LM head's input is
    exactly zero where the next token is an observation token (or padding), and non-zero wherever
    the model wrote the next token. A hidden state feeds only its own position's LM head, so this is
    the loss mask seen through autograd."""
    trainer, _, _ = trained
    scored = trainer.captured["scored"]
    captured = {}

    def keep(module, args, output):
        output.retain_grad()
        captured["hidden"] = output

    norm = trainer.model.model.language_model.norm  # the LM head's input is this layer's output
    handle = norm.register_forward_hook(keep)
    try:
        trainer.model.zero_grad()
        loss = trainer.compute_loss(trainer.model, scored)
        loss.backward()
    finally:
        handle.remove()
        trainer.model.zero_grad()
    prompt_width, completion_width = scored["prompt_ids"].shape[1], scored["completion_ids"].shape[1]
    # Hidden state p predicts token p + 1: completion token j is predicted at prompt_width + j - 1.
    grad = captured["hidden"].grad[:, prompt_width - 1: prompt_width - 1 + completion_width].abs().sum(dim=-1)
    written = (scored["tool_mask"] * scored["completion_mask"]).bool()
    observed = (scored["tool_mask"] == 0) & (scored["completion_mask"] == 1)
    assert int(observed.sum()) > 0 and int(written.sum()) > 0
    assert torch.all(grad[~written] == 0), "gradient at observation or padding positions"
    assert torch.all(grad[written] > 0), "a model-written token without gradient"
    # The observations hold the tool images' tokens: those positions, too, get no gradient.
    image_tokens = scored["completion_ids"] == trainer.processing_class.image_token_id
    assert int(image_tokens.sum()) > 0 and torch.all(grad[image_tokens] == 0)
