"""V-Thinker for VLMEvalKit (ms-vlmeval 0.0.20): datasets, model and launcher.

Importing this package registers everything (VLMEvalKit has no plugin mechanism):
the datasets ``VTBench``, ``VTBench_Perception``, ``VTBench_Instruction``,
``VTBench_Reasoning``, ``VThinker_MathVision``, ``VThinker_MathVision_MINI``,
``VThinker_WeMath``, ``VThinker_VisuLogic`` (:mod:`.datasets`) and the models ``V-Thinker-7B`` /
``VThinkerChat`` (:mod:`.model`).
Run with ``vthinker vlmeval --data VTBench --model V-Thinker-7B`` (:mod:`.launcher`).
"""

from __future__ import annotations

from vthinker_plugins.vlmeval.datasets import register_datasets
from vthinker_plugins.vlmeval.model import register_model, register_models


def register() -> tuple[list[str], list[str]]:
    """Register the datasets and models with VLMEvalKit (idempotent); returns their names."""
    return register_datasets(), register_models()


DATASETS, MODELS = register()

__all__ = ["DATASETS", "MODELS", "register", "register_model"]
