"""What the flywheel is asked to write: one :class:`Task` per problem, planned deterministically.

Task ``i`` depends only on the seed, ``i`` and the knowledge graph, so a run is resumable and
shardable by task index (a task's harder variants stay in its shard). Sampling is ``random`` (a
domain uniformly, then its points) or ``each`` (the points in order).

Design notes: docs/data.md.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from vthinker_plugins.flywheel.knowledge import KnowledgeGraph

SAMPLING = ("random", "each")


@dataclass
class Task:
    """One problem to write. Expansions (``parallel``/``sequential``) carry their base problem."""

    id: str
    points: list[str]
    level: int = 1
    strategy: str = "base"
    parent: str | None = None
    index: int = 0  # the base task's index in the run (a variant has its base's)
    new_points: list[str] = field(default_factory=list)  # parallel: the points added to the base's
    base_problem: dict[str, Any] | None = None  # the accepted problem a variant builds on

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Task:
        return cls(**{k: obj[k] for k in cls.__dataclass_fields__ if k in obj})


def task_id(seed: int, index: int) -> str:
    return f"fw{seed}-{index:06d}"


def plan_task(graph: KnowledgeGraph, seed: int, index: int, sampling: str = "random",
              points_per_problem: tuple[int, int] = (1, 2)) -> Task:
    """Base task ``index`` of the run with ``seed``."""
    if sampling not in SAMPLING:
        raise ValueError(f"sampling must be one of {SAMPLING}, got {sampling!r}")
    pools = graph.synthesis_points()
    if not pools:
        raise ValueError("the knowledge graph has no points of layer >= 3 to write problems about")
    rng = random.Random(f"{seed}:{index}")  # string seeds hash the same in every process
    lo, hi = points_per_problem
    want = rng.randint(lo, hi)
    if sampling == "each":
        everything = [pid for domain in sorted(pools) for pid in pools[domain]]
        first = everything[index % len(everything)]
        pool = [p for p in pools[graph.points[first].domain] if p != first]
        points = [first, *rng.sample(pool, min(want - 1, len(pool)))]
    else:
        domain = rng.choice(sorted(pools))
        points = rng.sample(pools[domain], min(want, len(pools[domain])))
    return Task(id=task_id(seed, index), points=points, index=index)


def shard_indices(num: int, num_shards: int = 1, shard_index: int = 0) -> list[int]:
    """The base task indices of one shard."""
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f"--shard-index must be in [0, {num_shards}), got {shard_index}")
    return [i for i in range(num) if i % num_shards == shard_index]
