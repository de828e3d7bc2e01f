"""The GRPO rewards build their judge through the one factory: the ``VTHINKER_JUDGE_*`` options (prompt
files, cache) apply as in every other caller, the config's limits win."""

from __future__ import annotations

import asyncio
import json

from fake_openai import FakeOpenAI

from vthinker_plugins.trl.config import VThinkerGRPOConfig
from vthinker_plugins.trl.rewards import RewardSuite


def test_reward_judge_uses_the_env_prompt_file_and_cache(tmp_path, monkeypatch) -> None:
    prompt = tmp_path / "answer_prompt.txt"
    prompt.write_text("CUSTOM ANSWER PROMPT.\nQuestion: {question}\n\nPrediction:\n{prediction}\n\nGold:\n{gold}")
    cache = tmp_path / "judge_cache.jsonl"
    monkeypatch.setenv("VTHINKER_JUDGE_PROMPT_ANSWER", str(prompt))
    monkeypatch.setenv("VTHINKER_JUDGE_CACHE", str(cache))
    monkeypatch.setenv("VTHINKER_JUDGE_CONCURRENCY", "2")
    completion = [{"role": "assistant", "content": "<think>t</think><answer>three</answer>"}]  # rules say wrong

    def accuracy(url: str) -> list[float]:
        args = VThinkerGRPOConfig(output_dir=str(tmp_path / "out"), use_cpu=True, bf16=False, report_to="none",
                                  judge_url=url, judge_model="judge-vl", judge_concurrency=5, judge_retries=0)
        suite = RewardSuite.from_config(args)
        assert suite.judge.concurrency == 5  # the config's limit wins over VTHINKER_JUDGE_CONCURRENCY
        reward = suite.functions()[0]
        return asyncio.run(reward([None], [completion], None, answer=["3"], question=["How many sides?"]))

    with FakeOpenAI() as server:  # its judge reads Prediction/Gold from the custom prompt: "three" is 3
        url, calls = server.url, server.requests
        assert accuracy(url) == [1.0]
        assert len(calls) == 1
        sent = json.dumps(calls[0]["messages"])
        assert "CUSTOM ANSWER PROMPT" in sent and "three" in sent
        assert cache.exists() and len(cache.read_text().splitlines()) == 1
        assert accuracy(url) == [1.0] and len(calls) == 1  # the second suite reads the verdict from the cache
