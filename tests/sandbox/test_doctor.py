"""``python -m sandbox doctor`` as users run it: a report on a working interpreter, and on one whose
worker cannot start, a one-line failure that names a worker log which still exists afterwards."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sandbox_helpers import ROOT

from sandbox import Sandbox, SandboxConfig, SandboxUnavailable


def _doctor(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "sandbox", "doctor", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=240)


def _broken_interpreter(tmp_path: Path) -> Path:
    """An interpreter that answers the bwrap path probe like the real one but whose worker dies at boot
    with a message on stderr, as one lacking numpy would."""
    script = tmp_path / "python-without-numpy"
    script.write_text(
        "#!/bin/sh\n"
        'case "$*" in *sandbox.worker*) echo "ModuleNotFoundError: No module named numpy (doctor test)" >&2;'
        " exit 1;; esac\n"
        f'exec {sys.executable} "$@"\n'
    )
    script.chmod(0o755)
    return script


def test_doctor_reports_the_layers_and_keeps_no_logs_when_all_is_well() -> None:
    proc = _doctor("--json")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    info = json.loads(proc.stdout)
    assert info["auto"]["ok"] is True
    if info["worker_logs"] is None:  # nothing fell back: the probe folder is gone
        assert not info["auto"]["report"].get("fallbacks")
    else:  # a weaker layer was used: the logs of the failed attempts are kept
        assert Path(info["worker_logs"]).is_dir()
        shutil.rmtree(info["worker_logs"])


def test_doctor_names_a_worker_log_that_still_exists(tmp_path: Path) -> None:
    proc = _doctor("--python", str(_broken_interpreter(tmp_path)))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out and "sandbox FAILED to start" in out
    logs = re.findall(r"worker log: (\S+\.log)", out)
    assert logs, out
    for log in logs:
        assert Path(log).is_file(), f"{log} named by doctor is gone"
    assert any("No module named numpy (doctor test)" in Path(log).read_text() for log in logs)
    assert "No module named numpy (doctor test)" in out  # the kept logs' last lines are shown too
    kept = re.search(r"worker logs kept in (\S+);", out)
    assert kept and all(log.startswith(kept.group(1)) for log in logs)
    shutil.rmtree(kept.group(1))


def test_start_failure_quotes_the_log_of_a_pool_folder_that_is_removed(tmp_path: Path) -> None:
    """Without ``log_dir`` the worker log lives in the pool's temporary folder, removed at close: the error
    itself carries what the worker wrote."""
    sandbox = Sandbox(SandboxConfig(workers=1, isolation="process", python=str(_broken_interpreter(tmp_path))))
    with pytest.raises(SandboxUnavailable) as caught:
        sandbox.start()
    sandbox.close()
    message = str(caught.value)
    assert "No module named numpy (doctor test)" in message and "removed when the sandbox closes" in message
