"""From the main suite: the vLLM contract tests, run in the vllm-check environment when it was built
(``scripts/setup.sh --vllm-check``; CI builds it), else skipped with the reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV_DIR = Path(os.environ.get("VTHINKER_ENV_DIR", ROOT / ".venvs"))


def test_vllm_contract_in_the_check_environment() -> None:
    env = Path(os.environ.get("VTHINKER_VLLM_ENV", ENV_DIR / "vllm-check"))
    python = env / "bin" / "python"
    if not python.exists():
        marker = ENV_DIR / "vllm-check.skipped"
        why = marker.read_text().strip() if marker.exists() else "it was not built"
        pytest.skip(f"no vLLM check environment at {env}: {why} (bash scripts/setup.sh --vllm-check builds it)")
    if Path(sys.prefix).resolve() == env.resolve():
        pytest.skip("already running in the vLLM check environment")
    run = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         str(ROOT / "tests" / "vllm_contract" / "test_vllm_contract.py")],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=900,
    )
    tail = "\n".join(line for line in (run.stdout + run.stderr).splitlines() if not line.startswith("W1"))[-6000:]
    print(tail)
    assert run.returncode == 0, tail
    assert " passed" in tail and "skipped" not in tail, tail
