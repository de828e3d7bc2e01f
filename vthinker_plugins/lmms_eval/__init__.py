"""V-Thinker for lmms-eval 0.7.3: the ``vthinker`` model, the task helpers and the ``lmms_eval`` command.

:mod:`.model` (the chat model running the interaction loop), :mod:`.tasks` (functions the task YAMLs in
``eval_tasks/lmms_eval`` reference), :mod:`.records` (where trajectories and images are kept) and
:mod:`.cli` (the command). The model is registered through the ``lmms_eval.models`` entry point, whose
payload is :func:`manifest`. Design notes: docs/harnesses.md.
"""

from __future__ import annotations

MODEL_ID = "vthinker"
MODEL_CLASS_PATH = "vthinker_plugins.lmms_eval.model.VThinker"


def manifest():
    """The ``lmms_eval.models`` entry-point payload registering the ``vthinker`` chat model."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, chat_class_path=MODEL_CLASS_PATH, aliases=("v_thinker",))
