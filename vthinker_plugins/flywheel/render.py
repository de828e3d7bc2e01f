"""Running a problem's code in the project's sandbox: the figure, then the interaction cell on it.

The image code runs with no input (it draws from scratch into ``processed_path``); the interaction
cell runs with the rendered figure as ``image_path``, exactly as the interaction loop runs a model's
cell at inference. Real images come back: the first image each cell produced.
:class:`SandboxClock` measures how much of the wall time any cell was running (the flywheel's
throughput should be bound by the LLM, not the sandbox).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from sandbox import CellResult, OutputImage, Sandbox
from vthinker_plugins.flywheel.problem import Problem
from vthinker_plugins.protocol import describe_error


class SandboxClock:
    """Busy time (some cell running) and total cell time of the cells run through it (one event loop)."""

    def __init__(self) -> None:
        self.active = 0
        self.busy_s = 0.0
        self.cell_s = 0.0
        self.cells = 0
        self._since = 0.0

    def enter(self) -> float:
        now = time.perf_counter()
        if self.active == 0:
            self._since = now
        self.active += 1
        return now

    def leave(self, started: float) -> None:
        now = time.perf_counter()
        self.active -= 1
        self.cells += 1
        self.cell_s += now - started
        if self.active == 0:
            self.busy_s += now - self._since


@dataclass
class CellRun:
    """What a record keeps of one sandbox run."""

    status: str
    error: str | None
    stdout: str
    wall_s: float
    n_images: int

    @classmethod
    def of(cls, result: CellResult) -> CellRun:
        status = getattr(result.status, "value", result.status)
        return cls(status=status, error=None if status == "ok" else describe_error(result),
                   stdout=result.stdout[-1000:], wall_s=round(result.wall_s, 4), n_images=len(result.images))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Rendered:
    image: OutputImage | None = None
    edited: OutputImage | None = None
    image_cell: CellRun | None = None
    tool_cell: CellRun | None = None


async def run_cell(sandbox: Sandbox, code: str, inputs: list[bytes], timeout: float,
                   clock: SandboxClock | None) -> CellResult:
    started = clock.enter() if clock is not None else 0.0
    try:
        return await sandbox.arun(code, inputs, timeout=timeout)
    finally:
        if clock is not None:
            clock.leave(started)


async def render(problem: Problem, sandbox: Sandbox, timeout: float, clock: SandboxClock | None = None) -> Rendered:
    """Render the figure, then (when there is one) run the interaction cell on it."""
    out = Rendered()
    result = await run_cell(sandbox, problem.image_code, [], timeout, clock)
    out.image_cell = CellRun.of(result)
    if not result.ok or not result.images:
        return out
    out.image = result.images[0]
    if problem.tool_code:
        tool = await run_cell(sandbox, problem.tool_code, [out.image.png], timeout, clock)
        out.tool_cell = CellRun.of(tool)
        if tool.ok and tool.images:
            out.edited = tool.images[0]
    return out
