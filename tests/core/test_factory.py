"""The one factory: settings -> loop config, prompts, backend and judge, the same for every caller."""

from __future__ import annotations

import pytest

from vthinker_plugins.factory import JudgeSettings, RunSettings, make_judge
from vthinker_plugins.protocol import DEFAULT_PROMPTS


def test_run_settings_build_the_loop_prompts_and_backend(tmp_path) -> None:
    settings = RunSettings("reference", {"api_key": "sk-1", "mode": "turns"}, max_new_tokens=64, temperature=0.7)
    config = settings.loop_config()
    assert (config.max_rounds, config.max_new_tokens, config.temperature, config.top_p) == (5, 64, 0.7, 1.0)
    assert settings.prompts() is DEFAULT_PROMPTS
    # Task defaults fill only what is unset (None); credentials never identify a run.
    tuned = settings.with_defaults(max_new_tokens=None, top_p=0.9)
    assert (tuned.loop_config().max_new_tokens, tuned.loop_config().top_p) == (64, 0.9)
    assert settings.generation_options() == {"mode": "turns"}
    system = tmp_path / "system.txt"
    system.write_text("Be brief.")
    own = RunSettings("reference", system_prompt_file=str(system))
    assert own.prompts().system == "Be brief." and own.prompts_hash() != settings.prompts_hash()
    backend = RunSettings("reference").backend()
    try:
        assert type(backend).__name__ == "ReferenceBackend"
    finally:
        backend.close()


def test_judge_options_defaults_then_environment_then_overrides(tmp_path, monkeypatch) -> None:
    for name in ("VTHINKER_JUDGE_URL", "VTHINKER_JUDGE_MODEL", "VTHINKER_JUDGE_CACHE"):
        monkeypatch.delenv(name, raising=False)
    assert JudgeSettings.resolve() is None and JudgeSettings.from_env() is None and make_judge(None) is None
    with pytest.raises(ValueError, match="--judge-url needs --judge-model"):
        JudgeSettings.resolve(url="http://127.0.0.1:9/v1")
    prompt = tmp_path / "answer.txt"
    prompt.write_text("Q {question} P {prediction} G {gold}")
    monkeypatch.setenv("VTHINKER_JUDGE_MODEL", "judge-vl")
    monkeypatch.setenv("VTHINKER_JUDGE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("VTHINKER_JUDGE_TIMEOUT", "7")
    monkeypatch.setenv("VTHINKER_JUDGE_RETRIES", "4")
    monkeypatch.setenv("VTHINKER_JUDGE_PROMPT_ANSWER", str(prompt))
    settings = JudgeSettings.resolve(cache_path=tmp_path / "cache.jsonl", timeout=99, concurrency=3)
    settings.overrides = {"retries": 0}
    judge = make_judge(settings)
    assert (judge.model, judge.base_url) == ("judge-vl", "http://127.0.0.1:9/v1")
    assert judge.timeout == 7 and judge.retries == 0 and judge.concurrency == 3  # env > defaults, overrides > env
    assert judge.prompts["answer"] == prompt.read_text() and judge.cache.path == tmp_path / "cache.jsonl"
    assert set(settings.prompt_hashes()) == {"answer"}
