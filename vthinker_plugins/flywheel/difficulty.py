"""Progressive difficulty expansion: harder variants of an accepted problem, one level up.

``parallel`` adds a knowledge point (or a constraint) so the problem needs one more reasoning step;
``sequential`` builds a follow-up on the accepted problem's answer. A variant is a
:class:`~vthinker_plugins.flywheel.tasks.Task` of its own, through the same checker-repairer, and is
planned from the seed and its id only, so resumed and sharded runs plan the same ones.

Design notes: docs/data.md.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from vthinker_plugins.flywheel.knowledge import KnowledgeGraph
from vthinker_plugins.flywheel.tasks import Task

EXPANSIONS = ("parallel", "sequential")
_SUFFIX = {"parallel": "p", "sequential": "s"}


def check_strategies(strategies: Sequence[str]) -> tuple[str, ...]:
    unknown = [s for s in strategies if s not in EXPANSIONS]
    if unknown:
        raise ValueError(f"unknown expansion strategy {unknown}; choose from {', '.join(EXPANSIONS)}")
    return tuple(dict.fromkeys(strategies))


def expand(task: Task, problem: dict[str, Any], graph: KnowledgeGraph, seed: int, strategies: Sequence[str],
           max_level: int) -> list[Task]:
    """The variants of an accepted ``task`` (whose accepted problem is ``problem``), in strategy order."""
    if task.level >= max_level:
        return []
    variants = []
    for strategy in check_strategies(strategies):
        vid = f"{task.id}.{_SUFFIX[strategy]}"
        points, new = list(task.points), []
        if strategy == "parallel":
            domain = graph.points[task.points[0]].domain
            pool = [p for p in graph.synthesis_points().get(domain, []) if p not in points]
            if pool:
                new = [random.Random(f"{seed}:{vid}").choice(pool)]
                points += new
        variants.append(Task(id=vid, points=points, level=task.level + 1, strategy=strategy, parent=task.id,
                             index=task.index, new_points=new, base_problem=problem))
    return variants
