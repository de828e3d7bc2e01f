"""Which isolation layers work on this machine, and why the others don't."""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import Any

from . import _syscalls as sc
from . import landlock, seccomp


def _probe(isolation: str) -> dict[str, Any]:
    from .api import Sandbox
    from .config import SandboxConfig
    from .pool import SandboxUnavailable

    try:
        t0 = time.perf_counter()
        with Sandbox(SandboxConfig(workers=1, isolation=isolation)) as sb:
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


def doctor() -> dict[str, Any]:
    """Probe the host and start a one-worker sandbox in each mode; return a JSON-able report."""
    info: dict[str, Any] = {
        "python": sys.executable, "machine": sc.MACHINE, "kernel": os.uname().release, "euid": os.geteuid(),
        "bwrap": shutil.which("bwrap") or "absent (optional; the namespaces come from unshare(2))",
        "landlock_abi": landlock.abi_version(), "seccomp_filter": seccomp.supported(),
    }
    info["auto"] = _probe("auto")
    ns_active = info["auto"].get("report", {}).get("namespaces", {}).get("active")
    if not ns_active:
        info["namespaces"] = _probe("namespaces")
    return info


def format_report(info: dict[str, Any]) -> str:
    lines = [f"python {info['python']} on {info['machine']}, kernel {info['kernel']}, euid {info['euid']}",
             f"bubblewrap: {info['bwrap']}"]
    auto = info["auto"]
    if not auto.get("ok"):
        lines.append(f"sandbox FAILED to start: {auto.get('error')}")
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
    return "\n".join(lines)
