"""V-Thinker's RL rewards, as plain functions with TRL's reward signature.

:func:`accuracy_reward`, :func:`format_reward`, :func:`tool_reward` and :func:`consistency_reward`
(async, needs a judge) each return one float per completion. :class:`RewardSuite` builds the trainer's
reward functions from the config: accuracy is computed once and gates the others, as in the paper.
Signature, gating and judge failures: docs/training.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any

from vthinker_plugins.protocol import (
    ANSWER_OPEN,
    OBS_CLOSE,
    OBS_OPEN,
    THINK_CLOSE,
    THINK_OPEN,
    check_format,
    extract_answer,
    strip_observations,
)

RewardFunc = Callable[..., Any]

_OBS_RE = re.compile(re.escape(OBS_OPEN) + r"(.*?)" + re.escape(OBS_CLOSE), re.S)
#: How much of the reasoning's end the consistency judge sees.
REASONING_TAIL_CHARS = 1200


def completion_text(completion: Any) -> str:
    """The assistant text of a completion in any of TRL's forms."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return completion_text(completion.get("content", ""))
    if isinstance(completion, list):
        parts = []
        for item in completion:
            if isinstance(item, dict) and item.get("role", "assistant") != "assistant":
                continue
            if isinstance(item, dict) and item.get("type") == "text":
                parts.append(item.get("text", ""))
            else:
                parts.append(completion_text(item))
        return "".join(parts)
    return "" if completion is None else str(completion)


def tool_statuses_from_text(text: str) -> list[str]:
    """Sandbox outcomes read back from a completion's observations ("ok" or "error")."""
    return ["error" if body.strip().startswith("Error:") else "ok" for body in _OBS_RE.findall(text)]


def _column(values: Any, n: int, name: str) -> list[Any]:
    if values is None:
        return [None] * n
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        return [values] * n
    if len(values) != n:
        raise ValueError(f"column {name!r} has {len(values)} values for {n} completions")
    return list(values)


def _gold(answer: Any, solution: Any, n: int) -> list[str | None]:
    """The reference of each completion: ``answer`` when filled, else ``solution`` (MathVision rows
    carry a worked explanation in ``solution``; rows in TRL's shape have only ``solution``)."""
    answers = _column(answer, n, "answer")
    solutions = _column(solution, n, "solution")
    return [
        None if (a if a not in (None, "") else s) in (None, "") else str(a if a not in (None, "") else s)
        for a, s in zip(answers, solutions, strict=True)
    ]


def rule_correct(prediction: str | None, gold: str | None, options: Sequence[str] | None = None) -> bool:
    """Rule-based equivalence (math-verify, multiple-choice letters and option texts)."""
    if prediction is None or gold is None or not prediction.strip():
        return False
    from vthinker_plugins.scoring import answers_match

    return bool(answers_match(prediction, gold, list(options) if options else None))


def accuracy_reward(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    completion_ids: Sequence[Any] | None = None,
    *,
    answer: Any = None,
    solution: Any = None,
    options: Any = None,
    wrong: float = 0.0,
    **_: Any,
) -> list[float]:
    """1.0 when the completion's final answer matches the reference (``answer`` column, else
    ``solution``), ``wrong`` otherwise (also when there is no ``<answer>``)."""
    n = len(completions)
    golds = _gold(answer, solution, n)
    opts = _column(options, n, "options")
    return [
        1.0 if rule_correct(extract_answer(completion_text(c)), g, o) else float(wrong)
        for c, g, o in zip(completions, golds, opts, strict=True)
    ]


def format_reward(
    prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Sequence[Any] | None = None, **_: Any
) -> list[float]:
    """1.0 for exactly one think block followed by exactly one answer block, else 0.0."""
    return [1.0 if check_format(completion_text(c)).ok else 0.0 for c in completions]


def tool_reward(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    completion_ids: Sequence[Any] | None = None,
    *,
    tool_statuses: Any = None,
    accuracy: Sequence[float] | None = None,
    **_: Any,
) -> list[float]:
    """Share of the rollout's sandbox runs that did not fail; 0.0 without code.

    ``tool_statuses`` (one list of ``"ok"``/``"error"``/``"timeout"``... per completion) is
    what the trainer passes; without it the statuses are read from the observations in the
    text. With ``accuracy``, completions whose accuracy is <= 0 get 0 (the paper's gating).
    """
    n = len(completions)
    statuses = _column(tool_statuses, n, "tool_statuses")
    out = []
    for i, completion in enumerate(completions):
        st = statuses[i] if statuses[i] is not None else tool_statuses_from_text(completion_text(completion))
        value = sum(1 for s in st if s == "ok") / len(st) if st else 0.0
        if accuracy is not None and accuracy[i] <= 0:
            value = 0.0
        out.append(value)
    return out


def reasoning_tail(text: str, limit: int = REASONING_TAIL_CHARS) -> str:
    """The end of the model's own reasoning (observations removed), for the consistency judge."""
    visible = strip_observations(text)
    end = visible.rfind(THINK_CLOSE)
    if end < 0:
        end = visible.rfind(ANSWER_OPEN)
    body = visible[:end] if end >= 0 else visible
    body = body.replace(THINK_OPEN, "").strip()
    return body[-limit:]


async def consistency_reward(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    completion_ids: Sequence[Any] | None = None,
    *,
    judge: Any,
    accuracy: Sequence[float] | None = None,
    **_: Any,
) -> list[float]:
    """1.0 when the judge finds the answer consistent with the end of the reasoning, else 0.0.

    ``judge`` is a :class:`vthinker_plugins.scoring.judge.Judge`; a failed judge call scores 0.
    With ``accuracy``, wrong completions get 0 without asking the judge.
    """
    async def one(i: int, completion: Any) -> float:
        if accuracy is not None and accuracy[i] <= 0:
            return 0.0
        text = completion_text(completion)
        answer = extract_answer(text)
        if answer is None:
            return 0.0
        result = await judge.judge_consistency(reasoning_tail(text), answer)
        return 1.0 if getattr(result, "value", None) == 1 else 0.0

    return list(await asyncio.gather(*(one(i, c) for i, c in enumerate(completions))))


# --------------------------------------------------------------------------- the trainer's suite

class RewardSuite:
    """The reward functions of a V-Thinker GRPO run, sharing one accuracy computation.

    >>> suite = RewardSuite(["accuracy", "format", "tool"], judge=None)
    >>> trainer = VThinkerGRPOTrainer(..., reward_funcs=suite.functions(), ...)
    """

    def __init__(
        self,
        names: Sequence[str] = ("accuracy", "format", "tool"),
        *,
        judge: Any = None,
        judge_fallback: bool = True,
        wrong: float = 0.0,
        gate: bool = True,
    ) -> None:
        if "consistency" in names and judge is None:
            raise ValueError("the consistency reward needs a judge (set judge_url and judge_model)")
        self.names = list(names)
        self.judge = judge
        self.judge_fallback = judge_fallback and judge is not None
        self.wrong = float(wrong)
        self.gate = gate
        self._memo: dict[tuple[Any, ...], asyncio.Future[float]] = {}
        self.judge_calls = 0
        self.judge_failed = 0

    @classmethod
    def from_config(cls, args: Any) -> RewardSuite:
        """From a :class:`~vthinker_plugins.trl.config.VThinkerGRPOConfig`."""
        judge = None
        if args.has_judge:
            import os

            from vthinker_plugins.factory import JudgeSettings, make_judge

            # The config's limits win; prompt files and the cache come from VTHINKER_JUDGE_*, as elsewhere.
            judge = make_judge(JudgeSettings(
                args.judge_model,
                args.judge_url,
                api_key=os.environ.get(args.judge_api_key_env),
                overrides={"concurrency": args.judge_concurrency, "timeout": args.judge_timeout_s,
                           "retries": args.judge_retries},
            ))
        return cls(
            args.reward_names(),
            judge=judge,
            judge_fallback=args.accuracy_judge_fallback,
            wrong=args.wrong_answer_reward,
            gate=args.gate_on_accuracy,
        )

    async def _judge_answer(self, question: str, prediction: str, gold: str) -> bool:
        self.judge_calls += 1
        result = await self.judge.judge_answer(question, prediction, gold)
        if getattr(result, "status", "ok") != "ok" or getattr(result, "value", None) is None:
            self.judge_failed += 1
            return False
        return result.value == 1

    async def _score(self, text: str, gold: str | None, options: Any, question: str) -> float:
        prediction = extract_answer(text)
        if rule_correct(prediction, gold, options):
            return 1.0
        if self.judge_fallback and prediction and gold is not None and await self._judge_answer(
            question, prediction, gold
        ):
            return 1.0
        return self.wrong

    async def accuracies(self, completions: Sequence[Any], **columns: Any) -> list[float]:
        """Accuracy of each completion, computed once however many rewards ask for it."""
        n = len(completions)
        golds = _gold(columns.get("answer"), columns.get("solution"), n)
        opts = _column(columns.get("options"), n, "options")
        questions = _column(columns.get("question"), n, "question")
        if len(self._memo) > 8192:  # a step's worth is enough; older entries are never asked again
            self._memo.clear()
        futures = []
        loop = asyncio.get_running_loop()
        for completion, gold, opt, question in zip(completions, golds, opts, questions, strict=True):
            text = completion_text(completion)
            # A digest, not the text: completions run to 10K tokens and the memo outlives a step.
            key = (hashlib.blake2b(text.encode(), digest_size=16).digest(), gold, tuple(opt or ()), question)
            fut = self._memo.get(key)
            if fut is None or fut.get_loop() is not loop:
                fut = loop.create_task(self._score(text, gold, opt, str(question or "")))
                self._memo[key] = fut
            futures.append(fut)
        return [float(v) for v in await asyncio.gather(*futures)]

    def _log_judge(self, kwargs: dict[str, Any], calls0: int, failed0: int) -> None:
        log = kwargs.get("log_metric")
        if log is not None and self.judge is not None:
            log("judge/calls", float(self.judge_calls - calls0))
            log("judge/failed", float(self.judge_failed - failed0))

    def functions(self) -> list[RewardFunc]:
        """Reward callables for TRL, named after the rewards (TRL logs ``rewards/<name>/mean``)."""
        suite = self

        async def accuracy(prompts, completions, completion_ids=None, **kwargs):
            calls0, failed0 = suite.judge_calls, suite.judge_failed
            values = await suite.accuracies(completions, **kwargs)
            suite._log_judge(kwargs, calls0, failed0)
            return values

        def format(prompts, completions, completion_ids=None, **kwargs):
            return format_reward(prompts, completions, completion_ids)

        async def tool(prompts, completions, completion_ids=None, **kwargs):
            acc = await suite.accuracies(completions, **kwargs) if suite.gate else None
            return tool_reward(
                prompts, completions, completion_ids, tool_statuses=kwargs.get("tool_statuses"), accuracy=acc
            )

        async def consistency(prompts, completions, completion_ids=None, **kwargs):
            acc = await suite.accuracies(completions, **kwargs) if suite.gate else None
            calls0 = suite.judge_calls
            values = await consistency_reward(
                prompts, completions, completion_ids, judge=_CountingJudge(suite), accuracy=acc
            )
            log = kwargs.get("log_metric")
            if log is not None:
                log("judge/consistency_calls", float(suite.judge_calls - calls0))
            return values

        table = {"accuracy": accuracy, "format": format, "tool": tool, "consistency": consistency}
        return [table[name] for name in self.names]


class _CountingJudge:
    """Counts the suite's consistency judge calls and failures."""

    def __init__(self, suite: RewardSuite) -> None:
        self.suite = suite

    async def judge_consistency(self, reasoning: str, answer: str) -> Any:
        self.suite.judge_calls += 1
        result = await self.suite.judge.judge_consistency(reasoning, answer)
        if getattr(result, "status", "ok") != "ok" or getattr(result, "value", None) is None:
            self.suite.judge_failed += 1
        return result
