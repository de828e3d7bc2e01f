"""Checkpoint weights come back under the model's own names (transformers saves Qwen2.5-VL in its
original ``visual.*`` / ``model.layers.*`` names; the Trainer's resume loaded them verbatim)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from vthinker_plugins.transformers_compat import (
    CheckpointWeightsError,
    check_transformers_version,
    load_checkpoint_weights,
    saved_to_model_names,
)


def tiny(tiny_model_dir, **config_changes):
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    if not config_changes:
        return Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir)
    config = AutoConfig.from_pretrained(tiny_model_dir)
    for key, value in config_changes.items():
        setattr(config, key, value)
        setattr(config.text_config, key, value)
    torch.manual_seed(1)
    return Qwen2_5_VLForConditionalGeneration(config)


def test_the_installed_transformers_is_a_tested_version() -> None:
    check_transformers_version()
    with pytest.raises(RuntimeError, match=r"written against transformers 5\.6\.0 and 5\.18\.0, found 5\.99\.0"):
        check_transformers_version("5.99.0")


def test_saved_names_map_to_the_model_names(tiny_model_dir) -> None:
    model = tiny(tiny_model_dir)
    names = saved_to_model_names(model)
    saved = set(load_file(str(tiny_model_dir / "model.safetensors")))
    assert set(names) == saved  # every name save_pretrained wrote...
    assert set(names.values()) == set(model.state_dict())  # ...maps onto every weight of the model
    assert names["visual.patch_embed.proj.weight"] == "model.visual.patch_embed.proj.weight"
    assert names["model.layers.0.mlp.up_proj.weight"] == "model.language_model.layers.0.mlp.up_proj.weight"
    assert names["lm_head.weight"] == "lm_head.weight"


@pytest.mark.parametrize("max_shard_size", [None, "40KB"])
def test_a_saved_checkpoint_comes_back_exactly(tiny_model_dir, tmp_path, max_shard_size) -> None:
    trained = tiny(tiny_model_dir)
    with torch.no_grad():
        for i, param in enumerate(trained.parameters()):
            param.add_(0.01 * (i + 1))
    kwargs = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
    trained.save_pretrained(tmp_path, **kwargs)
    assert (tmp_path / "model.safetensors.index.json").exists() == (max_shard_size is not None)

    fresh = tiny(tiny_model_dir)
    loaded = load_checkpoint_weights(fresh, tmp_path)
    assert set(loaded) == set(fresh.state_dict())
    expected = trained.state_dict()
    for name, tensor in fresh.state_dict().items():
        assert torch.equal(tensor, expected[name]), name


def test_tied_weights_saved_once_are_restored(tiny_model_dir, tmp_path) -> None:
    trained = tiny(tiny_model_dir, tie_word_embeddings=True)
    trained.save_pretrained(tmp_path)
    assert "lm_head.weight" not in load_file(str(tmp_path / "model.safetensors"))
    fresh = tiny(tiny_model_dir, tie_word_embeddings=True)
    with torch.no_grad():
        fresh.lm_head.weight.zero_()
    load_checkpoint_weights(fresh, tmp_path)
    assert torch.equal(fresh.lm_head.weight, trained.lm_head.weight)


def test_a_checkpoint_that_does_not_fit_the_model_is_an_error(tiny_model_dir, tmp_path) -> None:
    model = tiny(tiny_model_dir)
    model.save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    weights = load_file(str(path))
    del weights["visual.merger.mlp.0.weight"]
    weights["visual.no_such.weight"] = torch.zeros(2)
    save_file(weights, str(path), metadata={"format": "pt"})
    with pytest.raises(CheckpointWeightsError) as error:
        load_checkpoint_weights(tiny(tiny_model_dir), tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message and "model.visual.merger.mlp.0.weight" in message
    assert "visual.no_such.weight" in message and "starting weights" in message
    with pytest.raises(CheckpointWeightsError, match=r"no model\.safetensors"):
        load_checkpoint_weights(model, tmp_path / "empty")


def test_load_best_model_at_end_restores_the_best_checkpoint(tiny_model_dir, tmp_path) -> None:
    """The real transformers Trainer with the mixin: the best checkpoint (step 1, not the last one)
    is what the model holds at the end, every weight of it."""
    from transformers import Trainer, TrainingArguments

    from vthinker_plugins.transformers_compat import CheckpointWeightsMixin, saved_to_model_names

    class BestTrainer(CheckpointWeightsMixin, Trainer):
        pass

    rows = [{"input_ids": [5 + i, 6, 7, 8], "attention_mask": [1] * 4, "labels": [5 + i, 6, 7, 8]} for i in range(4)]
    args = TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, max_steps=2, per_device_train_batch_size=2, learning_rate=1e-2,
        eval_strategy="steps", eval_steps=1, save_steps=1, load_best_model_at_end=True, report_to="none",
        metric_for_best_model="first", greater_is_better=True, prediction_loss_only=False,
    )
    trainer = BestTrainer(model=tiny(tiny_model_dir), args=args, train_dataset=rows, eval_dataset=rows[:2])
    trainer.compute_metrics = lambda _: {"first": -float(trainer.state.global_step)}
    trainer.train()
    assert trainer.state.best_model_checkpoint == str(tmp_path / "checkpoint-1")
    best = load_file(str(tmp_path / "checkpoint-1" / "model.safetensors"))
    last = load_file(str(tmp_path / "checkpoint-2" / "model.safetensors"))
    names = saved_to_model_names(trainer.model)
    state = trainer.model.state_dict()
    assert not torch.equal(best["model.norm.weight"], last["model.norm.weight"])
    for saved, tensor in best.items():
        assert torch.equal(state[names[saved]], tensor), saved
