"""Helpers of the ``vthinker run`` tests: read a results file, kill a run after its first row."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def kill_after_first_row(cmd: list[str], env: dict[str, str], cwd: Path, results: Path) -> list[dict]:
    """Start ``cmd``, SIGKILL it once ``results`` holds a row (or it ended, or 240 s passed); the rows written."""
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and results.read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return read_rows(results) if results.exists() else []
