"""V-Thinker for lmms-eval 0.7.3: the ``vthinker`` model, the task helpers and the ``lmms_eval`` command.

- :mod:`.model` — the ``vthinker`` chat model: runs the project's interaction loop
  (code -> sandbox -> image fed back) inside ``generate_until``; HF, vLLM and
  OpenAI-compatible backends.
- :mod:`.tasks` — ``doc_to_*``/``process_results``/aggregation functions referenced
  from the task YAMLs in ``eval_tasks/lmms_eval`` (``vtbench``, ``vthinker_mathvision_*``).
- :mod:`.records` — where each sample's trajectory and generated images are kept.
- :mod:`.cli` — the ``lmms_eval`` command: ``lmms-eval`` with our task folder included.

The model is registered through the ``lmms_eval.models`` entry point, whose payload
is :func:`manifest`.
"""

from __future__ import annotations

MODEL_ID = "vthinker"
MODEL_CLASS_PATH = "vthinker_plugins.lmms_eval.model.VThinker"


def manifest():
    """The ``lmms_eval.models`` entry-point payload registering the ``vthinker`` chat model."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, chat_class_path=MODEL_CLASS_PATH, aliases=("v_thinker",))
