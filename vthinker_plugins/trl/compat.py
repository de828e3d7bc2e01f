"""The seam with TRL's and transformers' private API for V-Thinker GRPO.

Written against TRL 1.16.0 on transformers 5.18.0; ``tests/trl/test_trl_compat.py`` fails with a clear
message on any other version. :class:`GRPOTrainerBase` is TRL's ``GRPOTrainer`` with
:class:`~vthinker_plugins.transformers_compat.CheckpointWeightsMixin`: resuming from a checkpoint
(and ``load_best_model_at_end``) restores every weight, where transformers 5 alone reloads
Qwen2.5-VL's original-format keys (``visual.*``, ``model.layers.*``) under nothing and keeps the
starting weights.

The GRPO trainer (:mod:`vthinker_plugins.trl.trainer`) also overrides TRL's private
``_generate(prompts)`` and ``_generate_and_score_completions(inputs)`` and sets ``self.tools``
for the scoring pass; those are pinned to the same TRL version.
"""

from __future__ import annotations

from trl import GRPOTrainer

from vthinker_plugins.transformers_compat import CheckpointWeightsMixin, check_transformers_version

TESTED_TRL_VERSION = "1.16.0"
TESTED_TRANSFORMERS_VERSION = "5.18.0"


def check_versions(trl_version: str | None = None, transformers_version: str | None = None) -> None:
    """Raise with a clear message unless TRL and transformers are the versions this seam was written for."""
    if trl_version is None:
        import trl

        trl_version = trl.__version__
    if transformers_version is None:
        import transformers

        transformers_version = transformers.__version__
    check_transformers_version(transformers_version)
    found = (trl_version, transformers_version)
    if found != (TESTED_TRL_VERSION, TESTED_TRANSFORMERS_VERSION):
        raise RuntimeError(
            f"vthinker_plugins.trl was written against TRL {TESTED_TRL_VERSION} on transformers "
            f"{TESTED_TRANSFORMERS_VERSION}, found TRL {trl_version} on transformers {transformers_version}: "
            "re-check GRPOTrainer._generate, _generate_and_score_completions and the tools path, then update "
            "vthinker_plugins/trl/compat.py"
        )


class GRPOTrainerBase(CheckpointWeightsMixin, GRPOTrainer):
    """TRL's ``GRPOTrainer`` whose resume and best-model loading restore every weight."""
