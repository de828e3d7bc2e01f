"""The flywheel engine: tasks through the checker-repairer, concurrently, resumably.

``concurrency`` workers share one task queue; a finished task is written at once (:mod:`.store`),
and an accepted one below ``max_level`` queues its harder variants (:mod:`.difficulty`). A re-run
skips tasks that have a record and does again those whose record is an ``error``.

Design notes: docs/data.md.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from typing import Any

from vthinker_plugins.flywheel.checker_repairer import CheckerRepairer, Outcome
from vthinker_plugins.flywheel.checks import point_check
from vthinker_plugins.flywheel.difficulty import EXPANSIONS, expand
from vthinker_plugins.flywheel.knowledge import KnowledgeGraph
from vthinker_plugins.flywheel.store import RunStore
from vthinker_plugins.flywheel.tasks import Task

FINAL = ("accepted", "rejected")


@dataclass
class EngineConfig:
    seed: int = 0
    expand: tuple[str, ...] = EXPANSIONS
    max_level: int = 2
    concurrency: int = 16
    progress: bool = True


class FlywheelEngine:
    def __init__(self, graph: KnowledgeGraph, repairer: CheckerRepairer, store: RunStore,
                 config: EngineConfig | None = None) -> None:
        self.graph = graph
        self.repairer = repairer
        self.store = store
        self.config = config or EngineConfig()
        self.counts: Counter[str] = Counter()

    def record(self, task: Task, outcome: Outcome) -> dict[str, Any]:
        """The JSON record of a finished task (its images are added by the store)."""
        task_json = {k: v for k, v in task.to_json().items() if k != "base_problem"}
        record: dict[str, Any] = {
            "id": task.id, "status": outcome.status, "reason": outcome.reason, "detail": outcome.detail,
            "level": task.level, "strategy": task.strategy, "parent": task.parent,
            "points": task.points, "point_paths": [" > ".join(self.graph.path_names(p)) for p in task.points],
            "repaired": outcome.repaired, "n_attempts": len(outcome.attempts),
            "problem": outcome.problem.to_json() if outcome.problem is not None else None,
            "perception": None,
            "llm_s": round(outcome.llm_s, 3),
            "sandbox_s": round(sum((c or {}).get("wall_s", 0.0) for a in outcome.attempts
                                   for c in (a.get("cells") or {}).values()), 3),
            "time": round(time.time(), 3),
            "task": task_json,
            "attempts": outcome.attempts,
        }
        if outcome.problem is not None and outcome.images and outcome.images[-1][0] is not None:
            ok, detail = point_check(outcome.problem, outcome.images[-1][0])
            record["perception"] = {"ok": ok, "detail": detail}
        return record

    def variants(self, task: Task, record: dict[str, Any]) -> list[Task]:
        if record.get("status") != "accepted" or not record.get("problem"):
            return []
        return expand(task, record["problem"], self.graph, self.config.seed, self.config.expand,
                      self.config.max_level)

    async def run(self, tasks: list[Task], done: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Run ``tasks`` (and their variants); ``done``: records of an earlier run, by id."""
        from tqdm.auto import tqdm

        cfg = self.config
        started = time.perf_counter()
        queue: asyncio.Queue[Task] = asyncio.Queue()
        for task in tasks:
            queue.put_nowait(task)
        bar = tqdm(total=len(tasks), unit="task", desc="flywheel", dynamic_ncols=True, disable=not cfg.progress)
        counts = self.counts
        generated = 0

        def finished(record: dict[str, Any]) -> None:
            status = record["status"]
            key = "repaired" if status == "accepted" and record.get("repaired") else status
            counts[key] += 1
            if status == "accepted":
                counts["accepted_total"] += 1
            bar.set_postfix({"accepted": counts["accepted_total"], "repaired": counts["repaired"],
                             "rejected": counts["rejected"], "errors": counts["error"]}, refresh=False)
            bar.update(1)

        async def worker() -> None:
            nonlocal generated
            while True:
                task = await queue.get()
                try:
                    record = done.get(task.id)
                    if record is not None and record.get("status") in FINAL:
                        finished(record)
                    else:
                        try:
                            outcome = await self.repairer.run(task)
                        except Exception as exc:  # noqa: BLE001 - one task's surprise must not end the run
                            # Recorded as an error (done again on a re-run), with where it came from.
                            where = traceback.format_exc(limit=-3).strip().splitlines()
                            outcome = Outcome(status="error", reason="internal_error",
                                              detail=f"{type(exc).__name__}: {exc} | " + " / ".join(where[-6:]))
                        record = self.store.write(self.record(task, outcome), outcome.images)
                        generated += 1
                        finished(record)
                    children = self.variants(task, record)
                    if children:
                        bar.total += len(children)
                        bar.refresh()
                        for child in children:
                            queue.put_nowait(child)
                finally:
                    queue.task_done()

        workers = [asyncio.create_task(worker()) for _ in range(max(1, cfg.concurrency))]
        try:
            joined = asyncio.create_task(queue.join())
            # A worker that raises (a bug, a full disk) ends the run instead of leaving join() waiting forever.
            await asyncio.wait([joined, *workers], return_when=asyncio.FIRST_COMPLETED)
            for w in workers:
                if w.done() and w.exception() is not None:
                    raise w.exception()
            await joined
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            bar.close()
        wall = time.perf_counter() - started
        clock = self.repairer.clock
        return {
            "generated": generated,
            "wall_s": round(wall, 3),
            "sandbox_busy_s": round(clock.busy_s, 3) if clock else None,
            "sandbox_cell_s": round(clock.cell_s, 3) if clock else None,
            "sandbox_cells": clock.cells if clock else None,
            "sandbox_share": round(clock.busy_s / wall, 4) if clock and wall > 0 else None,
        }
