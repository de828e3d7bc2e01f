"""A synthesised problem: what the generator LLM writes, read from its JSON reply, and its
rendering into the V-Thinker protocol (``CoT_with_code``) and a V-Interaction-400K row.

The reply is one JSON object: the question, image code that draws the figure, solution steps (one
of them an interaction cell that draws on the figure), the answer, and optional labelled points
that become stage-1 perception rows.

Reply format: docs/data.md.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from vthinker_plugins.data.interaction import format_code_block
from vthinker_plugins.llm_client import ReplyError
from vthinker_plugins.protocol import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN

_THINK_RE = re.compile(r"<think>.*?</think>", re.S)
_FENCE_RE = re.compile(r"```(?:json|JSON)?[ \t]*\n(.*?)```", re.S)


def extract_json(text: str | None) -> Any:
    """The JSON value a reply holds: the whole reply, a fenced ```json block, or the outermost
    ``{...}``; a ``<think>`` block before it is ignored. Raises :class:`ReplyError`."""
    if text is None or not text.strip():
        raise ReplyError("empty reply")
    body = _THINK_RE.sub("", text).strip()
    candidates = [body, *_FENCE_RE.findall(body)]
    start, end = body.find("{"), body.rfind("}")
    if 0 <= start < end:
        candidates.append(body[start:end + 1])
    error = "no JSON object in the reply"
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError as exc:
            error = f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    raise ReplyError(error)


def json_object(text: str | None) -> dict[str, Any]:
    value = extract_json(text)
    if not isinstance(value, dict):
        raise ReplyError(f"expected a JSON object, got {type(value).__name__}")
    return value


@dataclass
class Step:
    """One solution step: reasoning text, and for the interaction step the code that draws."""

    text: str
    code: str | None = None


@dataclass
class Problem:
    question: str
    image_code: str
    steps: list[Step]
    answer: str
    points: dict[str, tuple[float, float]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other fields of the reply, kept as written

    @classmethod
    def from_json(cls, obj: Any) -> Problem:
        """Read the generator's object; :class:`ReplyError` names the first field that is wrong."""
        if not isinstance(obj, dict):
            raise ReplyError(f"expected a JSON object, got {type(obj).__name__}")
        for name in ("question", "image_code"):
            if not isinstance(obj.get(name), str) or not obj[name].strip():
                raise ReplyError(f"field {name!r} must be a non-empty string")
        answer = obj.get("answer")
        if isinstance(answer, bool) or not isinstance(answer, (str, int, float)) or not str(answer).strip():
            raise ReplyError("field 'answer' must be a non-empty string or number")
        solution = obj.get("solution")
        if not isinstance(solution, list) or not solution:
            raise ReplyError("field 'solution' must be a non-empty list of steps")
        steps = []
        for i, raw in enumerate(solution):
            if isinstance(raw, str):
                raw = {"text": raw}
            if not isinstance(raw, dict) or not isinstance(raw.get("text", ""), str):
                raise ReplyError(f"solution step {i}: expected {{'text': ..., 'code': ...}}")
            code = raw.get("code")
            if code is not None and not isinstance(code, str):
                raise ReplyError(f"solution step {i}: 'code' must be a string")
            steps.append(Step(text=raw.get("text", "").strip(), code=code if code and code.strip() else None))
        points = obj.get("points")
        if points in (None, {}, []):
            points = None
        else:
            if not isinstance(points, dict):
                raise ReplyError("field 'points' must map point names to [x, y]")
            parsed = {}
            for name, xy in points.items():
                if (not isinstance(xy, (list, tuple)) or len(xy) != 2
                        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                   for v in xy)):
                    raise ReplyError(f"points[{name!r}] must be [x, y] numbers, got {xy!r}")
                parsed[str(name)] = (float(xy[0]), float(xy[1]))
            points = parsed
        known = {"question", "image_code", "solution", "answer", "points"}
        return cls(question=obj["question"].strip(), image_code=obj["image_code"], steps=steps,
                   answer=str(answer).strip(), points=points, extra={k: v for k, v in obj.items() if k not in known})

    @classmethod
    def from_reply(cls, text: str | None) -> Problem:
        return cls.from_json(extract_json(text))

    def to_json(self) -> dict[str, Any]:
        solution = [{"text": s.text, **({"code": s.code} if s.code else {})} for s in self.steps]
        out: dict[str, Any] = {"question": self.question, "image_code": self.image_code, "solution": solution,
                               "answer": self.answer}
        if self.points:
            out["points"] = {k: [v[0], v[1]] for k, v in self.points.items()}
        return out

    @property
    def code_steps(self) -> list[Step]:
        return [s for s in self.steps if s.code]

    @property
    def tool_code(self) -> str:
        """The interaction cell's code (the first code step; checks require exactly one)."""
        steps = self.code_steps
        return steps[0].code or "" if steps else ""

    def cot_with_code(self) -> str:
        """The reasoning in the V-Thinker protocol: ``<think>`` steps with the ``<code>`` block,
        then ``<answer>`` (what V-Interaction-400K stores as ``CoT_with_code``)."""
        parts = []
        for step in self.steps:
            text = step.text.strip()
            if step.code:
                parts.append(f"{text}\n{format_code_block(step.code)}" if text else format_code_block(step.code))
            elif text:
                parts.append(text)
        return f"{THINK_OPEN}{chr(10).join(parts)}{THINK_CLOSE}\n{ANSWER_OPEN}{self.answer}{ANSWER_CLOSE}"


def hub_row(row_id: str, problem: Problem, image_png: bytes, edited_png: bytes) -> dict[str, Any]:
    """The problem as a V-Interaction-400K row (images as the hub's ``{"bytes", "path"}`` structs)."""
    return {
        "id": row_id,
        "question": problem.question,
        "image": {"bytes": image_png, "path": None},
        "original_img_code": problem.image_code,
        "edited_image": {"bytes": edited_png, "path": None},
        "tool_code": problem.tool_code,
        "CoT_with_code": problem.cot_with_code(),
        "answer": problem.answer,
    }
