"""Protocol parsing and rendering: property tests (never crash, round trips) and the documented cases."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox import CellError, CellResult, CellStatus, OutputImage
from vthinker_plugins.protocol import (
    DEFAULT_PROMPTS,
    IMAGE_PLACEHOLDER,
    OBS_CLOSE,
    OBS_OPEN,
    PromptSet,
    check_format,
    extract_answer,
    parse_code_blocks,
    pending_code,
    render_observation,
    strip_observations,
)

TAGS = ["<code>", "</code>", "<answer>", "</answer>", "<think>", "</think>", OBS_OPEN, OBS_CLOSE,
        "```python\n", "```", "'''python\n", "'''", "\\boxed{", "}", "{", "<image>", "\n"]
# Text made of protocol fragments and arbitrary characters: the parser's hard cases.
protocol_text = st.lists(st.one_of(st.sampled_from(TAGS), st.text(max_size=12)), max_size=30).map("".join)
code_text = st.text(alphabet=string.ascii_letters + string.digits + " =+-*/()[],.:_#\n\t", max_size=200).filter(
    lambda s: s.strip() != "")


@settings(max_examples=300, deadline=None)
@given(protocol_text)
def test_parser_never_crashes(text: str) -> None:
    blocks = parse_code_blocks(text)
    for block in blocks:
        assert 0 <= block.start < block.end <= len(text)
        assert block.style in ("backtick", "quote", "bare")
    assert all(b.closed for b in blocks[:-1])  # only the last block may be unclosed
    pending = pending_code(text)
    assert pending is None or (pending.closed and pending.code.strip())
    answer = extract_answer(text)
    assert answer is None or isinstance(answer, str)
    assert OBS_OPEN not in strip_observations(text)
    assert isinstance(check_format(text).ok, bool)


@settings(max_examples=200, deadline=None)
@given(code_text, st.sampled_from(["backtick", "quote", "bare"]), st.text(max_size=40).filter(
    lambda s: "<code>" not in s and "<sandbox_output>" not in s))
def test_code_block_round_trip(code: str, style: str, before: str) -> None:
    fence = {"backtick": "```python\n{}\n```", "quote": "'''python\n{}\n'''", "bare": "{}"}[style]
    text = f"{before}<code>\n{fence.format(code)}\n</code>\n"
    block = pending_code(text)
    assert block is not None
    assert block.code == code.strip("\n") if style != "bare" else block.code == code.strip()
    assert block.style == style


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=4), st.integers(min_value=0, max_value=4),
       st.text(alphabet=string.ascii_letters + string.digits + " .", min_size=1, max_size=20).filter(str.strip))
def test_render_then_parse_round_trip(n_images: int, images_left: int, answer: str) -> None:
    png = OutputImage(name="out.png", png=b"", width=1, height=1)
    result = CellResult(status=CellStatus.OK, stdout="/out/processed.png", images=[png] * n_images)
    observation, shown = render_observation(result, images_left)
    assert shown == min(n_images, images_left)
    assert observation.count(IMAGE_PLACEHOLDER) == shown
    assert observation.startswith("\n" + OBS_OPEN) and observation.endswith(OBS_CLOSE + "\n")
    # A trajectory built around the observation parses back to what the model wrote.
    turn = f"<think>look\n<code>\nprint(1)\n</code>{observation}done</think><answer>{answer}</answer>"
    assert extract_answer(turn) == answer.strip()
    assert check_format(turn).ok
    expected = f"<think>look\n<code>\nprint(1)\n</code>\n\ndone</think><answer>{answer}</answer>"
    assert strip_observations(turn) == expected


def test_render_error_and_text_output() -> None:
    err = CellResult(status=CellStatus.ERROR, error=CellError("NameError", "name 'x' is not defined",
                                                             ["  File \"<cell>\", line 1"]))
    text, shown = render_observation(err, 5)
    assert shown == 0 and "NameError: name 'x' is not defined" in text and IMAGE_PLACEHOLDER not in text
    timeout = CellResult(status=CellStatus.TIMEOUT)
    assert "time limit" in render_observation(timeout, 5)[0]
    printed = CellResult(status=CellStatus.OK, stdout="area = 12\n")
    assert render_observation(printed, 5)[0] == f"\n{OBS_OPEN}area = 12{OBS_CLOSE}\n"
    capped = CellResult(status=CellStatus.OK, images=[OutputImage("a.png", b"", 1, 1)] * 3)
    text, shown = render_observation(capped, 1)
    assert shown == 1 and "2 image(s) not shown" in text


def test_answer_inside_observation_is_not_the_models() -> None:
    text = f"<think>x</think>{OBS_OPEN}<answer>7</answer>{OBS_CLOSE}"
    assert extract_answer(text) is None
    assert extract_answer("so \\boxed{\\frac{1}{2}} and \\boxed{3}") == "3"
    assert extract_answer("<answer>\\boxed{12}</answer>") == "12"


def test_prompts_from_file(tmp_path) -> None:
    system = tmp_path / "prompt.txt"
    system.write_text("Official prompt.\n", encoding="utf-8")
    prompts = PromptSet.from_files(system)
    assert prompts.system == "Official prompt."
    user = prompts.user_prompt("How many?\n<image1>", n_images=2)
    assert user.startswith(IMAGE_PLACEHOLDER * 2 + "\n") and "<image1>" not in user
    assert DEFAULT_PROMPTS.user_prompt("q", 1).count(IMAGE_PLACEHOLDER) == 1
