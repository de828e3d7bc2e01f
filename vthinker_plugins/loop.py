"""The interaction loop: generate -> run code in the sandbox -> feed the result back -> ...

The only implementation of V-Thinker's multi-turn protocol: evaluation (``vthinker run``, lmms-eval,
VLMEvalKit) and RL rollouts (the GRPO trainer) all drive it through a :class:`Backend`, so the text a
model sees is the same everywhere. Many samples advance together: one scheduler batches the pending
generation requests into one backend call (in a worker thread), while the trajectories that wait for
the sandbox run their cells concurrently on the pool.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from sandbox import CellResult, Sandbox, get_sandbox
from vthinker_plugins.backend import Backend, GenerationOutput, GenerationRequest
from vthinker_plugins.protocol import (
    DEFAULT_PROMPTS,
    PromptSet,
    extract_answer,
    pending_code,
    render_observation,
)
from vthinker_plugins.sample import Sample

# --------------------------------------------------------------------------- trajectories

@dataclass
class LoopConfig:
    """Limits of one trajectory. Defaults follow V-Thinker's evaluation."""

    max_rounds: int = 5  # code executions per trajectory (VTBench perception/instruction: 1; RL: 4)
    max_new_tokens: int = 16384  # per generation step
    max_tool_images: int = 10  # sandbox images shown to the model per trajectory
    max_completion_tokens: int | None = None  # total generated + observation tokens (RL budget)
    temperature: float = 0.0
    top_p: float = 1.0
    persistent_state: bool = False  # keep Python state across the cells of a trajectory
    concurrency: int = 64  # trajectories in flight at once


@dataclass
class Round:
    """One generation step and, if it ended in a code block, its execution."""

    text: str
    finish_reason: str
    code: str | None = None
    result: CellResult | None = None
    observation: str = ""
    images_shown: int = 0
    gen_token_ids: list[int] | None = None
    gen_logprobs: list[float] | None = None
    obs_token_ids: list[int] | None = None
    gen_s: float = 0.0
    tool_s: float = 0.0


@dataclass
class Trajectory:
    sample: Sample
    system: str
    user: str
    rounds: list[Round] = field(default_factory=list)
    tool_images: list[Image.Image] = field(default_factory=list)
    stop_reason: str = ""
    error: str | None = None

    @property
    def text(self) -> str:
        """The whole assistant turn, observations included."""
        return "".join(r.text + r.observation for r in self.rounds)

    @property
    def answer(self) -> str | None:
        return extract_answer(self.text)

    @property
    def images(self) -> list[Image.Image]:
        """Every image the model saw, in placeholder order."""
        return [*self.sample.images, *self.tool_images]

    @property
    def tool_results(self) -> list[CellResult]:
        return [r.result for r in self.rounds if r.result is not None]

    @property
    def n_tool_calls(self) -> int:
        return len(self.tool_results)

    @property
    def n_tool_errors(self) -> int:
        return sum(1 for res in self.tool_results if not res.ok)

    @property
    def completion_tokens(self) -> int | None:
        """Generated + observation tokens, when the backend reports ids."""
        total = 0
        for r in self.rounds:
            if r.gen_token_ids is None:
                return None
            total += len(r.gen_token_ids) + len(r.obs_token_ids or ())
        return total

    def summary(self) -> dict[str, Any]:
        """JSON-friendly facts about the trajectory (images are written by the caller)."""
        return {
            "id": self.sample.id,
            "answer": self.answer,
            "stop_reason": self.stop_reason,
            "error": self.error,
            "n_rounds": len(self.rounds),
            "n_tool_calls": self.n_tool_calls,
            "n_tool_errors": self.n_tool_errors,
            "n_tool_images": len(self.tool_images),
            "gen_s": round(sum(r.gen_s for r in self.rounds), 4),
            "tool_s": round(sum(r.tool_s for r in self.rounds), 4),
            "text": self.text,
            "rounds": [
                {
                    "text": r.text,
                    "finish_reason": r.finish_reason,
                    "code": r.code,
                    "status": None if r.result is None else getattr(r.result.status, "value", r.result.status),
                    "stdout": None if r.result is None else r.result.stdout,
                    "observation": r.observation,
                    "images_shown": r.images_shown,
                    "gen_s": round(r.gen_s, 4),
                    "tool_s": round(r.tool_s, 4),
                }
                for r in self.rounds
            ],
        }


# --------------------------------------------------------------------------- the loop

class _GenerationScheduler:
    """Batches pending requests from all trajectories into one backend call at a time."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._pending: list[tuple[GenerationRequest, asyncio.Future[GenerationOutput]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._serve())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def generate(self, request: GenerationRequest) -> GenerationOutput:
        future: asyncio.Future[GenerationOutput] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        self._wakeup.set()
        return await future

    async def _serve(self) -> None:
        while True:
            await self._wakeup.wait()
            # Let every trajectory that is ready this tick join the batch.
            await asyncio.sleep(0)
            batch = self._pending[: self.backend.max_batch_size]
            del self._pending[: len(batch)]
            if not self._pending:
                self._wakeup.clear()
            if not batch:
                continue
            try:
                outputs = await asyncio.to_thread(self.backend.generate, [req for req, _ in batch])
                if len(outputs) != len(batch):
                    raise RuntimeError(f"{self.backend.name} returned {len(outputs)} outputs for {len(batch)} requests")
            except Exception as exc:  # noqa: BLE001 - handed to every waiting trajectory
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), out in zip(batch, outputs, strict=True):
                if not future.done():
                    future.set_result(out)


class InteractionLoop:
    """Run samples through a backend and the sandbox.

    >>> loop = InteractionLoop(backend, config=LoopConfig(max_rounds=5))
    >>> trajectories = loop.run(samples, on_result=write_row)
    """

    def __init__(
        self,
        backend: Backend,
        sandbox: Sandbox | None = None,
        config: LoopConfig | None = None,
        prompts: PromptSet = DEFAULT_PROMPTS,
    ) -> None:
        self.backend = backend
        self._sandbox = sandbox
        self.config = config or LoopConfig()
        self.prompts = prompts
        self._keys = itertools.count()

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            self._sandbox = get_sandbox()
        return self._sandbox

    def run(
        self,
        samples: Sequence[Sample],
        on_result: Callable[[Trajectory], None] | None = None,
    ) -> list[Trajectory]:
        """Synchronous entry point; ``on_result`` is called as each trajectory completes."""
        coro = self.arun(samples, on_result)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coro)
        # Called from inside a running event loop (a notebook): run on a private one.
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["value"] = asyncio.run(coro)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                box["error"] = exc

        thread = threading.Thread(target=target)
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["value"]

    async def arun(
        self,
        samples: Sequence[Sample],
        on_result: Callable[[Trajectory], None] | None = None,
    ) -> list[Trajectory]:
        scheduler = _GenerationScheduler(self.backend)
        scheduler.start()
        limit = asyncio.Semaphore(max(1, self.config.concurrency))

        async def one(sample: Sample) -> Trajectory:
            async with limit:
                trajectory = await self._run_one(sample, scheduler)
            if on_result is not None:
                on_result(trajectory)
            return trajectory

        try:
            return list(await asyncio.gather(*(one(s) for s in samples)))
        finally:
            await scheduler.stop()

    def start(self, sample: Sample) -> Trajectory:
        return Trajectory(
            sample=sample,
            system=self.prompts.system,
            user=self.prompts.user_prompt(sample.question, len(sample.images)),
        )

    async def _run_one(self, sample: Sample, scheduler: _GenerationScheduler) -> Trajectory:
        cfg = self.config
        traj = self.start(sample)
        # Unique per trajectory: GRPO runs the same sample several times at once.
        key = f"{sample.id}#{next(self._keys)}"
        max_rounds = sample.max_rounds if sample.max_rounds is not None else cfg.max_rounds
        session = self.sandbox.session() if cfg.persistent_state else None
        used_tokens = 0
        try:
            while True:
                budget = cfg.max_new_tokens
                if cfg.max_completion_tokens is not None:
                    budget = min(budget, cfg.max_completion_tokens - used_tokens)
                    if budget <= 0:
                        traj.stop_reason = "budget"
                        break
                request = GenerationRequest(
                    key=key,
                    system=traj.system,
                    user=traj.user,
                    assistant_prefix=traj.text,
                    images=traj.images,
                    max_new_tokens=budget,
                    temperature=cfg.temperature,
                    top_p=cfg.top_p,
                    sample=sample,
                )
                t0 = time.perf_counter()
                out = await scheduler.generate(request)
                rnd = Round(
                    text=out.text,
                    finish_reason=out.finish_reason,
                    gen_token_ids=out.token_ids,
                    gen_logprobs=out.logprobs,
                    gen_s=time.perf_counter() - t0,
                )
                traj.rounds.append(rnd)
                if out.token_ids is not None:
                    used_tokens += len(out.token_ids)
                block = pending_code(out.text) if out.finish_reason == "stop" else None
                if block is None:
                    traj.stop_reason = {"length": "max_tokens"}.get(out.finish_reason, "answer")
                    break
                if traj.n_tool_calls >= max_rounds:
                    traj.stop_reason = "max_rounds"
                    break
                rnd.code = block.code
                t1 = time.perf_counter()
                if session is not None:
                    rnd.result = await session.arun(block.code, traj.images)
                else:
                    rnd.result = await self.sandbox.arun(block.code, traj.images)
                rnd.tool_s = time.perf_counter() - t1
                images_left = cfg.max_tool_images - len(traj.tool_images)
                observation, shown = render_observation(rnd.result, images_left)
                new_images = [_decode_png(img.png) for img in rnd.result.images[:shown]]
                obs_ids = self.backend.observation_token_ids(observation, new_images)
                if obs_ids is not None and cfg.max_completion_tokens is not None:
                    # Never cut an observation in half: a partial image breaks the
                    # image-token/grid correspondence. Stop before it instead.
                    if used_tokens + len(obs_ids) > cfg.max_completion_tokens:
                        traj.stop_reason = "budget"
                        break
                    used_tokens += len(obs_ids)
                rnd.observation = observation
                rnd.obs_token_ids = obs_ids
                rnd.images_shown = shown
                traj.tool_images.extend(new_images)
        except Exception as exc:  # noqa: BLE001 - one broken sample must not end the run
            traj.stop_reason = "error"
            traj.error = f"{type(exc).__name__}: {exc}"
        finally:
            if session is not None:
                session.close()
            self.backend.release(key)
        return traj


def _decode_png(data: bytes) -> Image.Image:
    import io

    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")
