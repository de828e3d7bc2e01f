"""The seam with LlamaFactory's and transformers' private API.

Written against LlamaFactory 0.9.5 on transformers 5.6.0; ``tests/llamafactory/test_lf_compat.py``
fails with a clear message on any other version. :func:`closing_template_class` overrides
LlamaFactory's private ``Template._encode`` for the ``vthinker_qwen2_vl`` template;
:func:`patch_sft_trainer` makes the SFT trainer restore every weight when a run resumes.
Design notes: docs/seams.md.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

from vthinker_plugins.seam_versions import check_tested_versions
from vthinker_plugins.transformers_compat import CheckpointWeightsMixin, check_transformers_version

logger = logging.getLogger(__name__)

TESTED_LLAMAFACTORY_VERSION = "0.9.5"
TESTED_TRANSFORMERS_VERSION = "5.6.0"
#: The module whose trainer class is patched.
SFT_TRAINER_MODULE = "llamafactory.train.sft.trainer"


def check_versions(llamafactory_version: str | None = None, transformers_version: str | None = None) -> None:
    """Raise with a clear message unless LlamaFactory and transformers are this seam's versions."""
    check_transformers_version(transformers_version)
    tested = {"LlamaFactory": [TESTED_LLAMAFACTORY_VERSION], "transformers": [TESTED_TRANSFORMERS_VERSION]}
    check_tested_versions("llamafactory.compat", tested,
                          {"LlamaFactory": llamafactory_version, "transformers": transformers_version},
                          f"{SFT_TRAINER_MODULE}.CustomSeq2SeqTrainer and the template registry")


def patch_sft_trainer(module: ModuleType) -> bool:
    """Replace ``module.CustomSeq2SeqTrainer`` by a subclass with :class:`CheckpointWeightsMixin`;
    returns False when it already was. ``module`` is ``llamafactory.train.sft.trainer``."""
    original = module.CustomSeq2SeqTrainer
    if issubclass(original, CheckpointWeightsMixin):
        return False
    own = [name for name in ("_load_from_checkpoint", "_load_best_model") if name in vars(original)]
    if own:  # a LlamaFactory that loads checkpoints itself: overriding it blindly could break it
        logger.warning("%s.CustomSeq2SeqTrainer defines %s itself; checkpoint loading left as it is", module.__name__,
                       own)
        return False
    patched = type(original.__name__, (CheckpointWeightsMixin, original), {
        "__module__": original.__module__,
        "__qualname__": original.__qualname__,
        "__doc__": original.__doc__,
    })
    module.CustomSeq2SeqTrainer = patched
    return True


def closing_template_class(base: type, end_of_turn: str) -> type:
    """A subclass of LlamaFactory's ``Template`` (``base``) whose encoding appends ``end_of_turn`` after the
    last assistant segment only: the template renders the segments of one assistant turn bare, so the
    turn is closed once, at its end (overrides the private ``Template._encode``)."""

    class VThinkerTemplate(base):  # type: ignore[misc, valid-type]
        """Closes the assistant turn after its last segment only."""

        def _encode(self, tokenizer: Any, messages: list[dict[str, str]], system: Any, tools: Any) -> list[list[int]]:
            encoded = super()._encode(tokenizer, messages, system, tools)
            if messages and messages[-1]["role"] == "assistant":
                encoded[-1] = encoded[-1] + tokenizer.encode(end_of_turn, add_special_tokens=False)
            return encoded

    return VThinkerTemplate
