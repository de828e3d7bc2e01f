"""Fixtures of the flywheel tests: the fake LLM server of fake_llm.py, one per module, reset per test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_llm import FaultyServer


@pytest.fixture(scope="module")
def llm_server():
    server = FaultyServer()
    yield server
    server.close()


@pytest.fixture()
def llm(llm_server: FaultyServer) -> FaultyServer:
    """The module's server, with no faults and an empty log."""
    llm_server.reset()
    return llm_server
