"""V-Thinker GRPO on TRL 1.16: multi-turn rollouts with the sandbox as an image tool.

Entry points: ``accelerate launch -m vthinker_plugins.trl.grpo --config recipes/<name>.yaml``
or ``vthinker grpo --config ...``; in Python, :class:`VThinkerGRPOTrainer` with a
:class:`VThinkerGRPOConfig` and a dataset from :func:`load_rl_dataset`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RewardSuite", "VThinkerGRPOConfig", "VThinkerGRPOTrainer", "load_rl_dataset"]

_WHERE = {
    "VThinkerGRPOConfig": "vthinker_plugins.trl.config",
    "VThinkerGRPOTrainer": "vthinker_plugins.trl.trainer",
    "RewardSuite": "vthinker_plugins.trl.rewards",
    "load_rl_dataset": "vthinker_plugins.trl.data",
}


def __getattr__(name: str) -> Any:  # lazy: importing TRL costs seconds
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(name)
