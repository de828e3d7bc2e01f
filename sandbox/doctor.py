"""Which isolation layers work on this machine, and why the others don't.

The workers' stderr logs of the probes go to a folder of their own that is kept when a probe failed
or fell back to a weaker layer (the report names it), and removed otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import _syscalls as sc
from . import landlock, seccomp


def _probe(isolation: str, python: str | None, log_dir: Path) -> dict[str, Any]:
    from .api import Sandbox
    from .config import SandboxConfig
    from .pool import SandboxUnavailable

    config = SandboxConfig(workers=1, isolation=isolation, python=python, log_dir=str(log_dir / isolation))
    try:
        t0 = time.perf_counter()
        with Sandbox(config) as sb:
            report = sb.report
            started = time.perf_counter() - t0
            res = sb.run("print(1 + 1)")
            t1 = time.perf_counter()
            res = sb.run("print(1 + 1)")
            warm = time.perf_counter() - t1
        return {"ok": res.ok and res.stdout.strip() == "2", "report": report, "start_s": round(started, 3),
                "cell_ms": round(warm * 1000, 2)}
    except SandboxUnavailable as e:
        return {"ok": False, "error": str(e)}


def doctor(python: str | None = None) -> dict[str, Any]:
    """Probe the host and start a one-worker sandbox in each mode (workers run ``python``, default this
    interpreter); return a JSON-able report. ``worker_logs``: the folder of the probes' worker logs, kept
    when a probe failed or fell back (``None`` when removed)."""
    info: dict[str, Any] = {
        "python": python or sys.executable, "machine": sc.MACHINE, "kernel": os.uname().release, "euid": os.geteuid(),
        "bwrap": shutil.which("bwrap") or "absent (optional; the namespaces come from unshare(2))",
        "landlock_abi": landlock.abi_version(), "seccomp_filter": seccomp.supported(),
    }
    log_dir = Path(tempfile.mkdtemp(prefix="vtsbx-doctor-"))
    info["auto"] = _probe("auto", python, log_dir)
    ns_active = info["auto"].get("report", {}).get("namespaces", {}).get("active")
    if not ns_active:
        info["namespaces"] = _probe("namespaces", python, log_dir)
    probes = [info["auto"], *([info["namespaces"]] if "namespaces" in info else [])]
    keep = any(not p.get("ok") or p.get("report", {}).get("fallbacks") for p in probes)
    if keep:
        info["worker_logs"] = str(log_dir)
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
        info["worker_logs"] = None
    return info


def _log_tails(folder: str, lines: int = 8) -> list[str]:
    """The last lines of each non-empty worker log under ``folder``, indented, one block per file."""
    out = []
    for log in sorted(Path(folder).rglob("*.log")):
        text = log.read_text(encoding="utf-8", errors="replace").strip()
        if text:
            out.append(f"  {log}:")
            out += [f"    {line}" for line in text.splitlines()[-lines:]]
    return out


def format_report(info: dict[str, Any]) -> str:
    lines = [f"python {info['python']} on {info['machine']}, kernel {info['kernel']}, euid {info['euid']}",
             f"bubblewrap: {info['bwrap']}"]
    auto = info["auto"]
    if not auto.get("ok"):
        lines.append(f"sandbox FAILED to start: {auto.get('error')}")
        if info.get("worker_logs"):
            lines.append(f"worker logs kept in {info['worker_logs']}; their last lines:")
            lines += _log_tails(info["worker_logs"])
        return "\n".join(lines)
    rep = auto["report"]
    lines.append(f"mode: {rep.get('isolation')}  (pool start {auto['start_s']} s, "
                 f"warm cell {auto['cell_ms']} ms)")
    for layer in ("namespaces", "uid", "landlock", "seccomp", "rlimits"):
        d = rep.get(layer, {})
        state = "ACTIVE  " if d.get("active") else "inactive"
        detail = {k: v for k, v in d.items() if k != "active"}
        lines.append(f"  {layer:<11} {state} {detail}")
    lines.append("  host-side   ACTIVE   wall-clock kill, stdout/stderr caps, output count/byte caps, image "
                 "header checks, folder wipe, worker replacement")
    for fb in rep.get("fallbacks", []):
        lines.append(f"  fallback: {fb}")
    if "namespaces" in info:
        ns = info["namespaces"]
        lines.append(f"namespaces probe: {'ok' if ns.get('ok') else ns.get('error')}")
    if info.get("worker_logs"):
        lines.append(f"worker logs of the failed attempts kept in {info['worker_logs']}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m sandbox doctor`` (also ``vthinker doctor``)."""
    parser.add_argument("--json", action="store_true", help="the report as JSON")
    parser.add_argument("--python", default=None, help="interpreter the workers run (default: this one)")


def main(args: argparse.Namespace) -> int:
    """Print the report; exit status 1 when no sandbox could start."""
    info = doctor(args.python)
    print(json.dumps(info, indent=2) if args.json else format_report(info))
    return 0 if info["auto"].get("ok") else 1
