"""Reward functions on hand-made completions, and the judge path against a real local HTTP server."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from fake_openai import FakeOpenAI

from vthinker_plugins.trl.rewards import (
    RewardSuite,
    accuracy_reward,
    format_reward,
    reasoning_tail,
    tool_reward,
    tool_statuses_from_text,
)

GOOD = "<think>Count the sides: three.</think><answer>3</answer>"
WRONG = "<think>Looks like a square.</think><answer>4</answer>"
NO_ANSWER = "<think>I am not sure"
TWO_ANSWERS = "<think>a</think><answer>3</answer><answer>4</answer>"
TOOLS = (
    "<think>Draw.\n<code>\nprint(1)\n</code>\n<sandbox_output><image></sandbox_output>\n"
    "Again.\n<code>\nx\n</code>\n<sandbox_output>Error: NameError: name 'x' is not defined</sandbox_output>\n"
    "So three.</think><answer>3</answer>"
)


def conv(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def test_accuracy_format_tool_on_hand_made_completions():
    completions = [conv(GOOD), conv(WRONG), conv(NO_ANSWER), conv(TWO_ANSWERS), TOOLS]
    prompts = [None] * len(completions)
    acc = accuracy_reward(prompts, completions, answer=["3"] * 5)
    assert acc == [1.0, 0.0, 0.0, 0.0, 1.0]  # two <answer> blocks: the last one (4) counts
    assert accuracy_reward(prompts, completions, answer=["3"] * 5, wrong=-1.0)[1] == -1.0
    # ``answer`` wins over ``solution`` when both are filled; ``solution`` alone (TRL's shape) counts.
    assert accuracy_reward([None], [GOOD], answer=["3"], solution=["9"]) == [1.0]
    assert accuracy_reward([None], [GOOD], answer=[""], solution=["3"]) == [1.0]
    # Multiple choice: a letter matches the option text.
    assert accuracy_reward([None], ["<think>x</think><answer>B</answer>"], answer=["6"],
                           options=[["5", "6", "7"]]) == [1.0]
    assert format_reward(prompts, completions) == [1.0, 1.0, 0.0, 0.0, 1.0]
    assert tool_statuses_from_text(TOOLS) == ["ok", "error"]
    assert tool_reward(prompts, completions) == [0.0, 0.0, 0.0, 0.0, 0.5]
    statuses = [[], ["ok", "timeout"], [], [], ["ok", "ok"]]
    assert tool_reward(prompts, completions, tool_statuses=statuses) == [0.0, 0.5, 0.0, 0.0, 1.0]
    # Gating: no tool reward for a wrong answer.
    assert tool_reward(prompts, completions, tool_statuses=statuses, accuracy=acc) == [0.0, 0.0, 0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="answer"):
        accuracy_reward(prompts, completions, answer=["3"])
    assert reasoning_tail(TOOLS).endswith("So three.") and "sandbox_output" not in reasoning_tail(TOOLS)


@pytest.fixture
def judge_server():
    """The suite's fake judge (tests/fake_openai.py): it compares the answers it is shown; ``MODE:down`` always
    fails (HTTP 500), ``MODE:flaky_once`` fails once then answers 1, ``MODE:slow`` never answers in time,
    ``MODE:garbage`` answers prose."""
    with FakeOpenAI() as server:
        yield server


def test_judge_fallback_retries_and_counts_failures(judge_server):
    from vthinker_plugins.scoring.judge import Judge

    judge = Judge(judge_server.url, "judge", api_key="x", timeout=0.5, retries=2, backoff=0.01)
    suite = RewardSuite(["accuracy", "format", "tool", "consistency"], judge=judge)
    accuracy, fmt, tool, consistency = suite.functions()
    assert [f.__name__ for f in suite.functions()] == ["accuracy", "format", "tool", "consistency"]
    texts = [
        GOOD,  # rule check: correct, no judge call
        "<think>Three sides.</think><answer>three</answer>",  # rule says wrong, judge says equivalent
        "<think>s</think><answer>seven</answer>",  # judge says 0
        "<think>a</think><answer>MODE:down</answer>",  # HTTP 500 on every attempt
        "<think>b</think><answer>MODE:slow</answer>",  # times out on every attempt
        "<think>c</think><answer>MODE:garbage</answer>",  # unparsable on every attempt
        "<think>d</think><answer>MODE:flaky_once</answer>",  # 500 once, then 1
    ]
    completions = [conv(t) for t in texts]
    prompts = [None] * len(texts)
    columns = {"answer": ["3"] * len(texts), "question": ["How many sides?"] * len(texts)}
    logged: dict[str, list[float]] = {}

    def log_metric(name, value):
        logged.setdefault(name, []).append(value)

    async def run_all():
        # One event loop, as in TRL: the gated rewards reuse the accuracies computed first.
        acc = await accuracy(prompts, completions, None, log_metric=log_metric, **columns)
        hits = {mode: judge_server.calls(mode) for mode in ("", "down", "slow", "garbage", "flaky_once")}
        tools = await tool(prompts, completions, None, tool_statuses=[["ok"]] * len(texts), **columns)
        cons = await consistency(prompts, completions, None, log_metric=log_metric, **columns)
        return acc, hits, tools, cons

    start = time.perf_counter()
    acc, hits, tools, cons = asyncio.run(run_all())
    assert time.perf_counter() - start < 20
    assert acc == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    # Each failing item was tried 1 + 2 retries times, then scored as wrong and counted.
    assert hits["down"] == 3 and hits["garbage"] == 3
    assert hits["slow"] == 3 and hits["flaky_once"] == 2 and hits[""] == 2
    assert logged["judge/failed"] == [3.0] and logged["judge/calls"] == [6.0]
    assert judge.stats["failed"] == 3 and judge.stats["timeout"] >= 3 and judge.stats["malformed"] == 3
    # The tool reward is gated by the accuracies (all calls ok, so it equals them).
    assert tools == acc
    # Consistency is asked only for the 3 correct answers (the reasoning of the first two ends on three).
    assert cons == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    assert judge_server.calls("") == 2 + 2 and judge_server.calls("flaky_once") == 3
    assert logged["judge/consistency_calls"] == [3.0]
    assert fmt(prompts, completions) == [1.0] * len(texts)

    # The consistency verdict is the judge's reading: a right answer the reasoning does not reach scores 0.
    pair = [conv("<think>So it has four sides.</think><answer>3</answer>"), conv(GOOD)]
    pair_columns = {"answer": ["3", "3"], "question": ["How many sides?"] * 2}

    async def run_pair():
        pair_acc = await accuracy([None, None], pair, None, **pair_columns)
        return pair_acc, await consistency([None, None], pair, None, **pair_columns)

    assert asyncio.run(run_pair()) == ([1.0, 1.0], [0.0, 1.0])


def test_consistency_needs_a_judge():
    with pytest.raises(ValueError, match="judge"):
        RewardSuite(["accuracy", "consistency"], judge=None)


def test_mathvision_worked_solutions_are_not_the_reference(mathvision_dir):
    """MathVision rows carry the final answer in ``answer`` and, for some, a worked explanation in
    ``solution``: the reward must score against the answer, through the adapter and TRL's columns."""
    from vthinker_plugins.trl.data import load_rl_dataset

    raw = [json.loads(line) for line in (mathvision_dir / "testmini.jsonl").read_text().splitlines()]
    index = next(i for i, r in enumerate(raw) if r.get("solution"))
    gold = raw[index]["answer"]
    assert len(raw[index]["solution"]) > 50  # an explanation, not an answer
    row = load_rl_dataset(mathvision_dir / "testmini.jsonl", limit=index + 1)[index]
    assert row["answer"] == gold
    # TRL hands every dataset column but the prompt to the reward functions, one value per completion.
    columns = {k: [v] * 2 for k, v in row.items() if k != "prompt"}
    completions = [conv(f"<think>x</think><answer>{gold}</answer>"), conv("<think>x</think><answer>Z</answer>")]
    (accuracy,) = RewardSuite(["accuracy"]).functions()
    assert asyncio.run(accuracy([row["prompt"]] * 2, completions, **columns)) == [1.0, 0.0]
    direct = accuracy_reward([None] * 2, completions, answer=columns["answer"], solution=columns["solution"])
    assert direct == [1.0, 0.0]
