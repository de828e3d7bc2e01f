"""Reward functions on hand-made completions, and the judge path against a real local HTTP server."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

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


class JudgeServer:
    """An OpenAI-compatible chat-completions endpoint whose behaviour the prompt selects:
    MODE_500 always fails, MODE_FLAKY fails once then answers 1, MODE_SLOW never answers in
    time, MODE_GARBAGE answers nonsense; otherwise 1 when the text contains 'three', else 0."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = json.dumps(body["messages"])
                mode = next((m for m in ("MODE_500", "MODE_FLAKY", "MODE_SLOW", "MODE_GARBAGE") if m in prompt), "")
                with server.lock:
                    server.hits[mode] += 1
                    n = server.hits[mode]
                if mode == "MODE_500" or (mode == "MODE_FLAKY" and n == 1):
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b'{"error": "boom"}')
                    return
                if mode == "MODE_SLOW":
                    time.sleep(2.0)
                reply = "Well, it depends." if mode == "MODE_GARBAGE" else ("1" if "three" in prompt else "0")
                if mode == "MODE_FLAKY":
                    reply = "1"
                payload = json.dumps({
                    "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": reply}}],
                }).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def judge_server():
    server = JudgeServer()
    yield server
    server.close()


def test_judge_fallback_retries_and_counts_failures(judge_server):
    from vthinker_plugins.scoring.judge import Judge

    judge = Judge(judge_server.url, "judge", api_key="x", timeout=0.5, retries=2, backoff=0.01)
    suite = RewardSuite(["accuracy", "format", "tool", "consistency"], judge=judge)
    accuracy, fmt, tool, consistency = suite.functions()
    assert [f.__name__ for f in suite.functions()] == ["accuracy", "format", "tool", "consistency"]
    texts = [
        GOOD,  # rule check: correct, no judge call
        "<think>t</think><answer>three</answer>",  # rule says wrong, judge says equivalent
        "<think>s</think><answer>seven</answer>",  # judge says 0
        "<think>a</think><answer>MODE_500</answer>",  # HTTP 500 on every attempt
        "<think>b</think><answer>MODE_SLOW</answer>",  # times out on every attempt
        "<think>c</think><answer>MODE_GARBAGE</answer>",  # unparsable on every attempt
        "<think>d</think><answer>MODE_FLAKY</answer>",  # 500 once, then 1
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
        hits = dict(judge_server.hits)
        tools = await tool(prompts, completions, None, tool_statuses=[["ok"]] * len(texts), **columns)
        cons = await consistency(prompts, completions, None, log_metric=log_metric, **columns)
        return acc, hits, tools, cons

    start = time.perf_counter()
    acc, hits, tools, cons = asyncio.run(run_all())
    assert time.perf_counter() - start < 20
    assert acc == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    # Each failing item was tried 1 + 2 retries times, then scored as wrong and counted.
    assert hits["MODE_500"] == 3 and hits["MODE_GARBAGE"] == 3
    assert hits["MODE_SLOW"] == 3 and hits["MODE_FLAKY"] == 2 and hits[""] == 2
    assert logged["judge/failed"] == [3.0] and logged["judge/calls"] == [6.0]
    assert judge.stats["failed"] == 3 and judge.stats["timeout"] >= 3 and judge.stats["malformed"] == 3
    # The tool reward is gated by the accuracies (all calls ok, so it equals them).
    assert tools == acc
    # Consistency is asked only for the 3 correct answers ("three" in the text reads as consistent).
    assert cons == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    assert judge_server.hits[""] == 2 + 2 and judge_server.hits["MODE_FLAKY"] == 3
    assert logged["judge/consistency_calls"] == [3.0]
    assert fmt(prompts, completions) == [1.0] * len(texts)


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
