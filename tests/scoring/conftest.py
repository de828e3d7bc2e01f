"""The fake judge of the scoring tests: the suite's one fake OpenAI server (tests/fake_openai.py), whose default
judge decides from the prompt and images it is shown; ``MODE:<name>`` in a question forces a behaviour (HTTP
errors, timeouts, malformed or fixed verdicts: see :func:`fake_openai.judge`)."""

from __future__ import annotations

import pytest
from fake_openai import FakeOpenAI


@pytest.fixture(scope="session")
def judge_server():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture()
def fresh_server(judge_server):
    judge_server.reset()
    return judge_server
