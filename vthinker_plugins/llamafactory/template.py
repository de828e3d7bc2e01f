"""The ``vthinker_qwen2_vl`` LlamaFactory template: V-Thinker's in-turn format on Qwen2.5-VL's ChatML.

Stage-2 samples split the one assistant turn into ``assistant, observation, ...`` messages; rendered
bare and closed after the last assistant message only, they give exactly the interaction loop's text,
and LlamaFactory trains on the model's text while masking the sandbox observations.
Design notes: docs/training.md.
"""

from __future__ import annotations

from types import ModuleType

from vthinker_plugins.llamafactory import TEMPLATE_NAME
from vthinker_plugins.llamafactory.compat import closing_template_class
from vthinker_plugins.model_family import CHATML_SYSTEM, CHATML_USER, END_OF_TURN, IM_END, IMAGE_PAD, VIDEO_PAD
from vthinker_plugins.protocol import DEFAULT_SYSTEM_PROMPT

__all__ = ["END_OF_TURN", "register"]


def _slot(chatml: str) -> str:
    """A ChatML piece as a LlamaFactory slot (``{{content}}`` placeholder)."""
    return chatml.replace("{content}", "{{content}}")


def register(template_module: ModuleType | None = None) -> bool:
    """Register the template in LlamaFactory's registry; returns False if it was already there.

    ``template_module`` is ``llamafactory.data.template`` (passed by the import hook, which
    runs while that module is still being imported).
    """
    if template_module is None:
        from llamafactory.data import template as template_module
    if TEMPLATE_NAME in template_module.TEMPLATES:
        return False
    from llamafactory.data.formatter import StringFormatter
    from llamafactory.data.mm_plugin import get_mm_plugin

    template_module.register_template(
        name=TEMPLATE_NAME,
        format_user=StringFormatter(slots=[_slot(CHATML_USER)]),
        format_assistant=StringFormatter(slots=["{{content}}"]),
        format_system=StringFormatter(slots=[_slot(CHATML_SYSTEM)]),
        format_observation=StringFormatter(slots=["{{content}}"]),
        default_system=DEFAULT_SYSTEM_PROMPT,
        stop_words=[IM_END],
        replace_eos=True,
        mm_plugin=get_mm_plugin(name="qwen2_vl", image_token=IMAGE_PAD, video_token=VIDEO_PAD),
        template_class=closing_template_class(template_module.Template, END_OF_TURN),
    )
    return True
