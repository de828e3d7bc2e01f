"""Fixtures for the sandbox tests: shared pools (one per isolation setup)."""

from __future__ import annotations

import pytest
from sandbox_helpers import MODES, mode_config

from sandbox import Sandbox, SandboxConfig, SandboxUnavailable


@pytest.fixture(scope="session")
def sb():
    with Sandbox(SandboxConfig(workers=2, wall_time_s=5.0)) as s:
        yield s


@pytest.fixture(scope="session", params=list(MODES))
def any_sb(request):
    """One pool per isolation setup: attacks must be contained by each."""
    with Sandbox(mode_config(request.param, workers=2, wall_time_s=5.0, memory_bytes=768 << 20)) as s:
        try:
            s.start()
        except SandboxUnavailable as e:  # e.g. a container that forbids namespaces: test what exists
            pytest.skip(f"{request.param} isolation unavailable here: {e}")
        want = {"bwrap": "bwrap", "unshare": "unshare(2)"}.get(request.param, "none")
        assert s.report["namespaces"].get("tool", "none") == want
        yield s
