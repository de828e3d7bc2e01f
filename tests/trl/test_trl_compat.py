"""The TRL seam is pinned: on another TRL or transformers the suite says what to re-check."""

from __future__ import annotations

import pytest

from vthinker_plugins.transformers_compat import CheckpointWeightsMixin
from vthinker_plugins.trl.compat import GRPOTrainerBase, check_versions
from vthinker_plugins.trl.trainer import VThinkerGRPOTrainer


def test_installed_trl_and_transformers_are_the_tested_versions() -> None:
    check_versions()


def test_another_version_fails_clearly() -> None:
    expected = r"written against TRL 1\.16\.0 on transformers 5\.18\.0, found TRL 1\.17\.0"
    with pytest.raises(RuntimeError, match=expected):
        check_versions("1.17.0", "5.18.0")
    with pytest.raises(RuntimeError, match=r"transformers 5\.6\.0 and 5\.18\.0, found 5\.19\.0"):
        check_versions("1.16.0", "5.19.0")


def test_the_grpo_trainer_restores_checkpoints_through_the_seam() -> None:
    assert issubclass(VThinkerGRPOTrainer, GRPOTrainerBase)
    mro = VThinkerGRPOTrainer.__mro__
    assert mro.index(CheckpointWeightsMixin) < next(i for i, c in enumerate(mro) if c.__name__ == "Trainer")


def test_no_private_trl_name_outside_the_seam() -> None:
    """Private TRL names (and the ``self.tools`` switch) live in trl/compat.py only."""
    import re
    from pathlib import Path

    import vthinker_plugins.trl as package

    private = re.compile(
        r"\._(?:generate|generate_and_score_completions|generate_single_turn|tool_call_loop|is_vlm|metrics|dist"
        r"|last_loaded_step|place_features|llm_weights_sleeping|tokenize_prompts)\b|\.tools\s*="
    )
    offenders = []
    for path in sorted(Path(package.__file__).parent.glob("*.py")):
        if path.name == "compat.py":
            continue
        offenders += [f"{path.name}:{n}: {line.strip()}" for n, line in enumerate(path.read_text().splitlines(), 1)
                      if private.search(line)]
    assert offenders == []


def test_the_public_extension_points_the_trainer_relies_on() -> None:
    """TRL 1.16's rollout_func contract: ``rollout_func(prompts, trainer)`` returning prompt_ids,
    completion_ids, logprobs, with ``env_mask`` taken as the loss mask and other keys as reward columns."""
    import inspect

    from trl import GRPOTrainer

    assert "rollout_func" in inspect.signature(GRPOTrainer.__init__).parameters
    source = inspect.getsource(GRPOTrainer._generate)
    assert 'output = self.rollout_func(prompts, self)' in source
    assert 'tool_mask = extra_fields.pop("env_mask", None)' in source
