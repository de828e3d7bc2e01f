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
