"""The Judge against a real HTTP server on 127.0.0.1 (see conftest.py)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from PIL import Image, ImageDraw

from vthinker_plugins.scoring.judge import Judge, parse_judgement


def make_judge(server, **kwargs) -> Judge:
    options = {"retries": 2, "backoff": 0.01, "timeout": 5, "concurrency": 4}
    options.update(kwargs)
    return Judge(server.url, "judge-model", **options)


def run(coro):
    return asyncio.run(coro)


# --------------------------------------------------------------------------- reply parsing

@pytest.mark.parametrize(
    ("reply", "value"),
    [
        ("1", 1), ("0", 0), (" 1.\n", 1), ("**1**", 1), ("[[0]]", 0), ("`1`", 1),
        ("Score: 1", 1), ("The marks are off.\nScore: 0", 0), ("score = 1", 1), ("Judgement: **0**", 0),
        ('{"score": 1}', 1), ('```json\n{"judgement": "0"}\n```', 0), ('{"correct": true}', 1),
        ("<think>maybe 0</think>1", 1), ("Result: 0\nScore: 1", 1),
    ],
)
def test_parse_judgement_accepts_verdicts(reply, value):
    assert parse_judgement(reply) == value


@pytest.mark.parametrize("reply", [None, "", "yes it is right", "2", "0 or 1", "Score: 7", '{"score": 5}', "10"])
def test_parse_judgement_rejects_malformed(reply):
    assert parse_judgement(reply) is None


# --------------------------------------------------------------------------- calls

def test_answer_judge_ok_and_zero(fresh_server):
    judge = make_judge(fresh_server)
    one = run(judge.judge_answer("what is 2+2?", "4", "4"))
    zero = run(judge.judge_answer("what is 2+2?", "5", "4"))
    assert (one.value, one.status, zero.value, zero.status) == (1, "ok", 0, "ok")  # the judge read the values
    assert fresh_server.calls("") == 2
    sent = fresh_server.requests[0]
    assert sent["model"] == "judge-model" and sent["temperature"] == 0.0
    assert "Reference answer:\n4" in sent.text and "Model's answer:\n4" in sent.text


@pytest.mark.parametrize("mode", ["score", "json", "think"])
def test_reply_formats(fresh_server, mode):
    result = run(make_judge(fresh_server).judge_answer(f"MODE:{mode}", "a", "b"))
    assert result.status == "ok"
    assert result.value == (0 if mode == "json" else 1)


def test_http_500_is_retried_then_succeeds(fresh_server):
    judge = make_judge(fresh_server, retries=3)
    result = run(judge.judge_answer("MODE:flaky q", "1", "1"))
    assert (result.value, result.status, result.attempts) == (1, "ok", 3)
    assert fresh_server.calls("flaky") == 3
    assert judge.stats["http_error"] == 2 and judge.stats["retried"] == 2


def test_persistent_500_fails_and_is_counted(fresh_server):
    judge = make_judge(fresh_server, retries=2)
    result = run(judge.judge_answer("MODE:down q", "1", "1"))
    assert result.value is None and result.status == "failed"
    assert "InternalServerError" in result.error
    assert fresh_server.calls("down") == 3  # first attempt + 2 retries
    assert judge.stats["failed"] == 1


def test_client_errors_fail_without_retries(fresh_server):
    judge = make_judge(fresh_server, retries=3)
    result = run(judge.judge_answer("MODE:unknown_model q", "1", "1"))
    assert result.status == "failed" and result.attempts == 1 and "NotFound" in result.error
    assert fresh_server.calls("unknown_model") == 1


def test_timeout_is_retried_then_fails(fresh_server):
    fresh_server.slow_seconds = 1.5
    judge = make_judge(fresh_server, retries=1, timeout=0.3)
    start = time.perf_counter()
    result = run(judge.judge_answer("MODE:slow q", "1", "1"))
    assert result.status == "failed" and result.value is None
    assert "timeout" in result.error.lower() or "Timeout" in result.error
    assert judge.stats["timeout"] == 2
    assert time.perf_counter() - start < 6


def test_malformed_reply_is_retried_then_failed(fresh_server):
    judge = make_judge(fresh_server, retries=2)
    result = run(judge.judge_answer("MODE:garbage q", "1", "1"))
    assert result.status == "failed" and "malformed" in result.error
    assert result.raw == "I think the drawing looks reasonable overall."
    assert judge.stats["malformed"] == 3
    recovered = run(judge.judge_answer("MODE:garbage_once q", "1", "1"))
    assert (recovered.value, recovered.status, recovered.attempts) == (0, "ok", 2)


def test_cache_survives_runs_and_skips_failures(fresh_server, tmp_path):
    cache = tmp_path / "judge-cache.jsonl"
    first = make_judge(fresh_server, cache_path=cache)
    assert run(first.judge_answer("MODE:one q", "4", "4")).value == 1
    assert run(first.judge_answer("MODE:down q", "4", "4")).status == "failed"
    assert fresh_server.calls("one") == 1
    # A new judge (another run) reads the file: no new request for the cached verdict.
    second = make_judge(fresh_server, cache_path=cache)
    again = run(second.judge_answer("MODE:one q", "4", "4"))
    assert again.cached and again.value == 1 and fresh_server.calls("one") == 1
    # A different prediction is a different key.
    run(second.judge_answer("MODE:one q", "5", "4"))
    assert fresh_server.calls("one") == 2
    # Failures are not cached: the down prompt is asked again.
    run(second.judge_answer("MODE:down q", "4", "4"))
    assert fresh_server.calls("down") == 6
    lines = [json.loads(line) for line in cache.read_text().splitlines()]
    assert len(lines) == 2 and {line["value"] for line in lines} == {1}


def test_cache_written_concurrently_from_threads(fresh_server, tmp_path):
    cache = tmp_path / "shared.jsonl"

    def worker(offset: int) -> list[int]:
        judge = make_judge(fresh_server, cache_path=cache)
        return [run(judge.judge_answer("MODE:one q", str(offset * 10 + i), "x")).value for i in range(5)]

    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(worker, range(4)))
    assert all(v == 1 for values in results for v in values)
    lines = cache.read_text().splitlines()
    assert len(lines) == 20 and all(json.loads(line)["value"] == 1 for line in lines)


@pytest.mark.parametrize("concurrency", [2, 8])
def test_concurrency_bounds_requests_in_flight(fresh_server, concurrency):
    fresh_server.slow_seconds = 0.5
    judge = make_judge(fresh_server, concurrency=concurrency, timeout=5, retries=0)

    async def many():
        return await asyncio.gather(*(judge.judge_answer("MODE:slow q", str(i), "1") for i in range(12)))

    results = run(many())
    assert [r.value for r in results] == [int(i == 1) for i in range(12)]  # each verdict is its own request's
    # requests overlap up to the limit and never beyond it
    assert 2 <= fresh_server.max_in_flight <= concurrency
    if concurrency > 2:
        assert fresh_server.max_in_flight > 2


def _images():
    original = Image.new("RGB", (120, 90), "white")
    ImageDraw.Draw(original).line([(0, 0), (119, 89)], fill="black", width=2)
    truth = original.copy()
    ImageDraw.Draw(truth).ellipse([50, 30, 60, 40], fill="red")
    return original, truth


def test_image_judge_sends_three_labelled_images(fresh_server):
    original, truth = _images()
    judge = make_judge(fresh_server)
    right = run(judge.judge_images("vtbench_perception", "mark P", original, truth.copy(), truth))
    wrong = run(judge.judge_images("perception", "mark P", original, original, truth))  # nothing marked
    assert (right.value, wrong.value) == (1, 0)
    sent = fresh_server.requests[0]
    assert sent.image_sizes == [(120, 90)] * 3
    assert sent.image_labels == ["[Original]", "[Generated]", "[Ground Truth]"]
    assert "mark P" in sent.text
    with pytest.raises(ValueError, match="perception"):
        run(judge.judge_images("reasoning", "q", original, original, truth))


def test_official_prompt_file(fresh_server, tmp_path):
    official = tmp_path / "vtbench_instruction_prompt.txt"
    official.write_text("Official VTBench instruction prompt. Reply 0 or 1. {braces} stay as written.")
    judge = make_judge(fresh_server, prompt_files={"instruction": official})
    original, truth = _images()
    result = run(judge.judge_images("instruction", "Draw the altitude", original, truth, truth,
                                    instruction="draw the altitude from A"))
    assert result.value == 1
    text = fresh_server.requests[-1].text
    assert "Official VTBench instruction prompt. Reply 0 or 1. {braces} stay as written." in text
    assert "draw the altitude from A" in text  # the task text is appended when the file has no fields
    wrong = run(judge.judge_images("instruction", "Draw the altitude", original, original, truth,
                                   instruction="draw the altitude from A"))
    assert wrong.value == 0  # the same prompt, nothing drawn: the verdict follows the images
    with pytest.raises(ValueError, match="unknown task"):
        make_judge(fresh_server, prompt_files={"nonsense": official})


def test_consistency_judge(fresh_server):
    result = run(make_judge(fresh_server).judge_consistency("... so the area is 12.", "15"))
    assert (result.value, result.status) == (0, "ok")
    assert "Final answer:\n15" in fresh_server.requests[-1].text
    agrees = run(make_judge(fresh_server).judge_consistency("... so the area is 12.", "12"))
    assert (agrees.value, agrees.status) == (1, "ok")


def test_from_env(monkeypatch, judge_server, tmp_path):
    monkeypatch.delenv("VTHINKER_JUDGE_URL", raising=False)
    monkeypatch.delenv("VTHINKER_JUDGE_MODEL", raising=False)
    assert Judge.from_env() is None
    monkeypatch.setenv("VTHINKER_JUDGE_URL", judge_server.url)
    monkeypatch.setenv("VTHINKER_JUDGE_MODEL", "qwen3-vl")
    monkeypatch.setenv("VTHINKER_JUDGE_CONCURRENCY", "3")
    monkeypatch.setenv("VTHINKER_JUDGE_CACHE", str(tmp_path / "c.jsonl"))
    judge = Judge.from_env()
    assert judge.model == "qwen3-vl" and judge.concurrency == 3 and judge.cache is not None
    monkeypatch.setenv("VTHINKER_JUDGE_RETRIES", "many")
    with pytest.raises(ValueError, match="VTHINKER_JUDGE_RETRIES"):
        Judge.from_env()
