"""One task through synthesis and the coordinated checker-repairer.

The generator writes a problem; deterministic checks (:mod:`.checks`), then the LMM checker
(:mod:`.checker`) review it, and a failing problem goes back to the generator with the failure as
feedback, up to ``max_repairs`` rounds. Every attempt is kept in :attr:`Outcome.attempts`; the
outcome is ``accepted``, ``rejected`` (with a reason) or ``error`` (an endpoint stayed down).

Design notes: docs/data.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sandbox import Sandbox
from vthinker_plugins.flywheel.checker import assess, parse_verdict
from vthinker_plugins.flywheel.checks import ImageLimits, render_checks, text_checks
from vthinker_plugins.flywheel.knowledge import KnowledgeGraph
from vthinker_plugins.flywheel.problem import Problem
from vthinker_plugins.flywheel.prompts import check_messages, generate_messages, repair_messages
from vthinker_plugins.flywheel.render import Rendered, SandboxClock, render
from vthinker_plugins.flywheel.tasks import Task
from vthinker_plugins.llm_client import ChatClient, ReplyError


@dataclass
class SynthesisConfig:
    max_repairs: int = 2
    cell_timeout: float = 10.0
    limits: ImageLimits = field(default_factory=ImageLimits)
    repair_images: bool = True  # show the repairer what the failed attempt drew (a multimodal generator)
    temperature: float = 0.7
    max_tokens: int | None = 4096
    checker_max_tokens: int | None = 1024


@dataclass
class Outcome:
    status: str  # accepted | rejected | error
    reason: str = ""
    detail: str = ""
    problem: Problem | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    #: per attempt: (figure PNG, edited figure PNG), either None when not drawn
    images: list[tuple[bytes | None, bytes | None]] = field(default_factory=list)
    llm_s: float = 0.0

    @property
    def repaired(self) -> bool:
        return self.status == "accepted" and len(self.attempts) > 1


class CheckerRepairer:
    """Synthesis + checker-repairer for tasks of one knowledge graph."""

    def __init__(self, graph: KnowledgeGraph, generator: ChatClient, checker: ChatClient | None, sandbox: Sandbox,
                 config: SynthesisConfig | None = None, clock: SandboxClock | None = None) -> None:
        self.graph = graph
        self.generator = generator
        self.checker = checker
        self.sandbox = sandbox
        self.config = config or SynthesisConfig()
        self.clock = clock

    async def _generate(self, messages: list[dict[str, Any]], outcome: Outcome) -> Any:
        started = time.perf_counter()
        reply = await self.generator.ask(messages, temperature=self.config.temperature,
                                         max_tokens=self.config.max_tokens)
        outcome.llm_s += time.perf_counter() - started
        return reply

    async def run(self, task: Task) -> Outcome:
        cfg = self.config
        outcome = Outcome(status="error")
        reply = await self._generate(generate_messages(task, self.graph), outcome)
        for k in range(cfg.max_repairs + 1):
            if not reply.ok:
                outcome.status, outcome.reason, outcome.detail = "error", "generator_unavailable", reply.error or ""
                return outcome
            attempt: dict[str, Any] = {"round": k, "stage": "generate" if k == 0 else "repair",
                                       "llm_attempts": reply.attempts}
            raw: str = reply.value or ""
            failure: tuple[str, str] | None = None
            feedback: list[str] = []
            problem: Problem | None = None
            rendered = Rendered()
            try:
                problem = Problem.from_reply(raw)
            except ReplyError as exc:
                failure = ("malformed_json", str(exc))
                attempt["raw"] = raw[:4000]
            if problem is not None:
                attempt["problem"] = problem.to_json()
                checks = text_checks(problem, cfg.limits)
                if all(c.ok for c in checks):
                    rendered = await render(problem, self.sandbox, cfg.cell_timeout, self.clock)
                    checks += render_checks(task.id, problem, rendered, cfg.limits)
                    attempt["cells"] = {"image_code": rendered.image_cell and rendered.image_cell.to_json(),
                                        "tool_code": rendered.tool_cell and rendered.tool_cell.to_json()}
                attempt["checks"] = [c.to_json() for c in checks]
                failed = next((c for c in checks if not c.ok), None)
                if failed is not None:
                    failure = (failed.reason, failed.detail)
                elif self.checker is not None:
                    assert rendered.image is not None and rendered.edited is not None
                    started = time.perf_counter()
                    verdict = await self.checker.ask(
                        check_messages(task, self.graph, problem.to_json(), rendered.image.png, rendered.edited.png),
                        parse_verdict, temperature=0.0, max_tokens=cfg.checker_max_tokens)
                    outcome.llm_s += time.perf_counter() - started
                    if not verdict.ok:
                        outcome.attempts.append(attempt)
                        outcome.images.append(_pngs(rendered))
                        outcome.status, outcome.reason, outcome.detail = ("error", "checker_unavailable",
                                                                          verdict.error or "")
                        return outcome
                    attempt["checker"] = {**verdict.value.to_json(), "llm_attempts": verdict.attempts}
                    passed, reason, detail = assess(verdict.value, problem.answer)
                    if not passed:
                        failure = (reason, detail)
                        feedback = [f"checker: {issue}" for issue in verdict.value.issues]
            attempt["verdict"] = ({"passed": True} if failure is None else
                                  {"passed": False, "reason": failure[0], "detail": failure[1]})
            outcome.attempts.append(attempt)
            outcome.images.append(_pngs(rendered))
            if failure is None:
                outcome.status, outcome.reason, outcome.detail, outcome.problem = "accepted", "", "", problem
                return outcome
            outcome.status, outcome.reason, outcome.detail = "rejected", failure[0], failure[1]
            if k == cfg.max_repairs:
                break
            images = None
            if cfg.repair_images and rendered.image is not None:
                images = [("Figure", rendered.image.png)]
                if rendered.edited is not None:
                    images.append(("Figure after the drawing step", rendered.edited.png))
            messages = repair_messages(task, self.graph, [f"{failure[0]}: {failure[1]}", *feedback],
                                       attempt.get("problem"), None if problem is not None else raw, images)
            reply = await self._generate(messages, outcome)
        return outcome


def _pngs(rendered: Rendered) -> tuple[bytes | None, bytes | None]:
    return (rendered.image.png if rendered.image is not None else None,
            rendered.edited.png if rendered.edited is not None else None)
