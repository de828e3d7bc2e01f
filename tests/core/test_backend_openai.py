"""The OpenAI-compatible backend against a real HTTP server on 127.0.0.1, through the real loop and sandbox."""

from __future__ import annotations

import json

import pytest
from fake_openai import ChatRequest, FakeOpenAI, Reply, decode_image
from PIL import Image

from vthinker_plugins.backends import make_backend
from vthinker_plugins.loop import InteractionLoop, LoopConfig
from vthinker_plugins.sample import Sample

ROUNDS = [
    "<think>Crop the left half.\n<code>\n```python\nimg = Image.open(image_path)\n"
    "img.crop((0, 0, 40, 60)).save(processed_path)\nprint(processed_path)\n```\n</code>",
    "The crop is 40 wide.</think>\n<answer>40</answer>",
]


class FakeChatServer(FakeOpenAI):
    """The suite's fake OpenAI server answering ROUNDS[number of sandbox outputs in the request].

    ``strip_stop=True`` behaves like OpenAI (the stop string is not returned);
    otherwise like vLLM with ``include_stop_str_in_output``.
    """

    def __init__(self, strip_stop: bool, rounds: list[str] = ROUNDS) -> None:
        def respond(request: ChatRequest) -> Reply:
            step = json.dumps(request["messages"][1:]).count("</sandbox_output>")  # the system prompt names it too
            text = rounds[step]
            stop = next((s for s in request["stop"] if text.endswith(s)), None)
            if stop is None:  # the end of turn: vLLM keeps its text with include_stop_str_in_output
                text += "" if request.get("skip_special_tokens", True) else "<|im_end|>"
            elif strip_stop:
                text = text[: -len(stop)]
            return Reply(text, stop_reason=None if strip_stop else stop)

        super().__init__(respond)


def _decode(url: str) -> Image.Image:
    assert url.startswith("data:image/png;base64,")
    return decode_image(url)


@pytest.mark.parametrize("mode", ["prefill", "turns"])
def test_two_rounds_through_an_http_endpoint(mode: str) -> None:
    server = FakeChatServer(strip_stop=(mode == "turns"))
    try:
        backend = make_backend("openai:judge-free-model", base_url=server.url, api_key="k", mode=mode)
        sample = Sample(id="o1", question="How wide is the left half?", images=[Image.new("RGB", (80, 60), "white")],
                        answer="40")
        (traj,) = InteractionLoop(backend, config=LoopConfig(max_new_tokens=300)).run([sample])
    finally:
        server.close()
    assert traj.error is None, traj.error
    assert traj.answer == "40" and traj.n_tool_calls == 1 and traj.tool_images[0].size == (40, 60)
    assert traj.rounds[0].text == ROUNDS[0]  # the stripped "</code>" was restored in turns mode
    first, second = server.requests
    assert first["model"] == "judge-free-model" and first["max_tokens"] == 300
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert _decode(first["messages"][1]["content"][0]["image_url"]["url"]).size == (80, 60)
    if mode == "prefill":
        assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant"]
        assert second["continue_final_message"] is True and second["add_generation_prompt"] is False
        assert second["include_stop_str_in_output"] is True
        parts = second["messages"][2]["content"]
        assert parts[0]["text"].endswith("</code>\n<sandbox_output>")
        assert _decode(parts[1]["image_url"]["url"]).size == (40, 60)
        assert parts[2]["text"] == "</sandbox_output>\n"
    else:
        assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
        assert "continue_final_message" not in second
        assert second["messages"][2]["content"] == ROUNDS[0]
        obs = second["messages"][3]["content"]
        assert obs[0]["text"] == "<sandbox_output>" and obs[2]["text"] == "</sandbox_output>"
        assert _decode(obs[1]["image_url"]["url"]).size == (40, 60)


def test_stop_restoration_rules() -> None:
    from vthinker_plugins.backends.openai_api import restore_stop

    stops = ("</code>", "</answer>")
    assert restore_stop("<code>\nx=1\n", "stop", stops) == ("<code>\nx=1\n</code>", "stop")
    assert restore_stop("<think>a</think><answer>3", "stop", stops) == ("<think>a</think><answer>3</answer>", "stop")
    assert restore_stop("done", "stop", stops) == ("done", "eos")
    assert restore_stop("<answer>3", "length", stops) == ("<answer>3", "length")
    assert restore_stop("<code>x", "stop", stops, matched="</code>") == ("<code>x</code>", "stop")


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        make_backend("openai:m", base_url="http://127.0.0.1:9/v1", mode="chat")
    with pytest.raises(ValueError, match="empty model name"):
        make_backend("openai:")


def test_prefill_reply_ending_at_end_of_turn() -> None:
    """vLLM with include_stop_str_in_output and skip_special_tokens=False returns the end-of-turn
    text; it is not part of the model's answer."""
    server = FakeChatServer(strip_stop=False, rounds=["<think>Wide.</think>\n<answer>40"])
    try:
        backend = make_backend("openai:m", base_url=server.url, api_key="k", mode="prefill")
        sample = Sample(id="o2", question="How wide?", images=[Image.new("RGB", (80, 60), "white")], answer="40")
        (traj,) = InteractionLoop(backend, config=LoopConfig(max_new_tokens=300)).run([sample])
    finally:
        server.close()
    assert server.requests[0]["skip_special_tokens"] is False
    assert traj.error is None and traj.rounds[0].finish_reason == "eos"
    assert traj.text == "<think>Wide.</think>\n<answer>40" and traj.answer == "40"
