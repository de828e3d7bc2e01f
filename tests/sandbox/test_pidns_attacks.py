"""Attacks that could hurt the host if containment failed, each run inside a PID namespace made by the test.

If no PID namespace can be created here, the tests are skipped (never run unprotected).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys

import pytest

MODES = ["bwrap", "unshare", "process"]
HARNESS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pidns_harness.py")


@functools.lru_cache(maxsize=1)
def _unshare_prefix() -> list[str] | None:
    tool = shutil.which("unshare")
    if tool is None:
        return None
    base = [tool, "--pid", "--fork", "--mount-proc", "--kill-child"]
    for extra in ([], ["--user", "--map-root-user"]):
        cmd = base[:1] + extra + base[1:]
        if subprocess.run([*cmd, "true"], capture_output=True).returncode == 0:
            return cmd
    return None


def _run(mode: str, attack: str) -> dict:
    if mode == "bwrap" and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    prefix = _unshare_prefix()
    if prefix is None:
        pytest.skip("cannot create a PID namespace here (no unshare, or namespaces forbidden): "
                    "refusing to run this attack unprotected")
    p = subprocess.run([*prefix, sys.executable, HARNESS, mode, attack], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    if "unavailable" in out:
        pytest.skip(f"{mode} isolation unavailable here: {out['unavailable']}")
    return out


@pytest.mark.parametrize("mode", MODES)
def test_kill_everything(mode: str) -> None:
    out = _run(mode, "kill_all")
    assert "SENT" not in out["stdout"] and "KILLED" not in out["stdout"], out
    assert out["canary_alive"] and out["serves"] and out["same_worker"], out


@pytest.mark.parametrize("mode", MODES)
def test_fork_bomb(mode: str) -> None:
    out = _run(mode, "fork_bomb")
    assert "FORKED" not in out["stdout"], out
    assert "vfork -1 clone -1" in out["stdout"], out
    assert out["canary_alive"] and out["serves"] and out["same_worker"], out


@pytest.mark.parametrize("mode", MODES)
def test_signal_parent_and_init(mode: str) -> None:
    out = _run(mode, "signal_parent")
    assert "SENT" not in out["stdout"], out
    assert out["canary_alive"] and out["serves"] and out["same_worker"], out


@pytest.mark.parametrize("mode", MODES)
def test_sigio_owner_signals(mode: str) -> None:
    out = _run(mode, "sigio")
    assert "still here" in out["stdout"], out
    assert out["canary_alive"] and out["serves"] and out["same_worker"], out
