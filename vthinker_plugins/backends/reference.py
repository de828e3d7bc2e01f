"""The ``reference`` policy: an ORACLE that replays a sample's reference tool code and answer.

It is not a model. It exists to check data, sandbox and scoring end to end
without a model: each generation step emits the next code string of
``sample.meta["reference_code"]`` (a list of code strings), and after the last
one the reference answer. Every emitted text says ``[oracle]`` so a report can
never be mistaken for a model's output.
"""

from __future__ import annotations

from collections.abc import Sequence

from vthinker_plugins.backend import Backend, GenerationOutput, GenerationRequest
from vthinker_plugins.protocol import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    CODE_CLOSE,
    CODE_OPEN,
    OBS_CLOSE,
    THINK_CLOSE,
    THINK_OPEN,
)

ORACLE_TAG = "[oracle]"


def _code_block(code: str) -> str:
    return f"{CODE_OPEN}\n```python\n{code.strip()}\n```\n{CODE_CLOSE}"


class ReferenceBackend(Backend):
    """Replays ``sample.meta["reference_code"]`` step by step, then answers ``sample.answer``."""

    name = "reference"
    max_batch_size = 256

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationOutput]:
        return [self._step(req) for req in requests]

    def _step(self, request: GenerationRequest) -> GenerationOutput:
        sample = request.sample
        if sample is None:
            raise ValueError(f"request {request.key}: the reference oracle needs the sample (GenerationRequest.sample)")
        codes = sample.meta.get("reference_code") or []
        if isinstance(codes, str):
            codes = [codes]
        step = request.assistant_prefix.count(OBS_CLOSE)
        opening = f"{THINK_OPEN}{ORACLE_TAG} Replaying the reference solution.\n" if step == 0 else "\n"
        if step < len(codes):
            text = f"{opening}{ORACLE_TAG} Reference step {step + 1}:\n{_code_block(codes[step])}"
            return GenerationOutput(text=text)
        # Drawing tasks (VTBench perception) have no text answer: the drawing is the answer.
        answer = "The requested drawing is shown above." if sample.answer is None else str(sample.answer)
        text = f"{opening}{ORACLE_TAG} Reference answer follows.{THINK_CLOSE}\n{ANSWER_OPEN}{answer}{ANSWER_CLOSE}"
        return GenerationOutput(text=text)
