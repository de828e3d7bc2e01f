"""The vLLM contract tests run in the vllm-check environment (``scripts/setup.sh --vllm-check``);
``test_in_check_env.py`` runs them there from the main suite."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # cpu_engine


@pytest.fixture(scope="session")
def sandbox():
    from sandbox import Sandbox, SandboxConfig

    box = Sandbox(SandboxConfig(wall_time_s=5.0, workers=2))
    yield box
    box.close()
