"""The LMM checker: an OpenAI-compatible multimodal model shown the figure, the figure after the
drawing step, the question, the solution and the answer (prompt in :mod:`.prompts`).

It solves the problem itself and says whether question, image and answer agree. A problem passes
when the checker finds it consistent *and* the checker's own answer, when it gives one, matches the
problem's (:func:`vthinker_plugins.scoring.answers.answers_match`); an answer that contradicts the
checker is a failure of its own (``answer_contradicts_checker``), handed to the repairer like any other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from vthinker_plugins.flywheel.problem import json_object
from vthinker_plugins.llm_client import ReplyError

FIXES = ("image", "question", "solution", "answer", "none")


@dataclass
class Verdict:
    consistent: bool
    answer: str | None = None
    issues: list[str] = field(default_factory=list)
    fix: str = "none"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_verdict(raw: str | None) -> Verdict:
    """The checker's JSON reply; :class:`ReplyError` when it is not one (the client retries)."""
    obj = json_object(raw)
    consistent = obj.get("consistent")
    if isinstance(consistent, str) and consistent.strip().lower() in ("true", "false"):
        consistent = consistent.strip().lower() == "true"
    if not isinstance(consistent, bool):
        raise ReplyError("field 'consistent' must be true or false")
    answer = obj.get("answer")
    answer = None if answer is None or isinstance(answer, bool) or not str(answer).strip() else str(answer).strip()
    issues = obj.get("issues") or []
    if isinstance(issues, str):
        issues = [issues]
    if not isinstance(issues, list):
        raise ReplyError("field 'issues' must be a list of strings")
    fix = str(obj.get("fix") or "none").strip().lower()
    return Verdict(consistent=consistent, answer=answer, issues=[str(i) for i in issues if str(i).strip()],
                   fix=fix if fix in FIXES else "none")


def assess(verdict: Verdict, answer: str) -> tuple[bool, str, str]:
    """(passed, rejection reason, detail) of a verdict on a problem whose answer is ``answer``."""
    from vthinker_plugins.scoring.answers import answers_match

    if not verdict.consistent:
        issues = "; ".join(verdict.issues) or "no reason given"
        return False, "checker_inconsistent", f"fix the {verdict.fix}: {issues}" if verdict.fix != "none" else issues
    if verdict.answer is not None and not answers_match(verdict.answer, answer):
        return False, "answer_contradicts_checker", (f"the checker's own answer is {verdict.answer!r}, the problem "
                                                     f"says {answer!r}")
    return True, "", ""
