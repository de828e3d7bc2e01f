"""Command line for starting a worker inside bubblewrap (the preferred outer layer when installed).

bwrap builds the view before the worker's first import, so the paths the interpreter needs are probed
up front with a tiny ``python -I`` run (cached per interpreter).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess

from . import fsview

_PROBE = ("import json, sys; print(json.dumps([sys.prefix, sys.base_prefix, sys.exec_prefix,"
          " sys.base_exec_prefix, sys.executable] + sys.path))")


def find() -> str | None:
    return shutil.which("bwrap", path="/usr/bin:/bin:/usr/local/bin")


@functools.lru_cache(maxsize=8)
def interpreter_paths(python: str) -> tuple[str, ...]:
    out = subprocess.run([python, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True,
                         env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    paths = json.loads(out.stdout)
    found = {os.path.dirname(os.path.realpath(paths[4]))}
    found.update(os.path.realpath(p) for p in paths[:4] + paths[5:] if p and os.path.exists(p))
    return tuple(sorted(found))


def command(bwrap: str, python: str, pkg_parent: str, worker_dir: str, writable: list[str],
            extra_ro: list[str]) -> list[str]:
    """bwrap arguments: new user/pid/net/ipc/uts/cgroup namespaces, uid 65534 without capabilities,
    an empty tmpfs root with read-only binds of the system and interpreter folders, a private /tmp.

    No --die-with-parent: its parent-death signal follows the *thread* that spawned bwrap, and workers are
    (re)started from short-lived threads. The worker exits on EOF from the host instead, and the host kills
    bwrap's process group (which holds the namespace's init) to tear the sandbox down.
    """
    hide = os.path.realpath(pkg_parent)
    ro = [p for p in interpreter_paths(python) if p != hide and p != "/"]
    argv = [bwrap, "--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534", "--cap-drop", "ALL",
            "--new-session", "--hostname", "sandbox", "--tmpfs", "/tmp",
            "--dev", "/dev", "--proc", "/proc"]
    for p in fsview.collapse(fsview.SYSTEM_RO + ro + extra_ro):
        if os.path.islink(p):
            argv += ["--symlink", os.readlink(p), p]
        else:
            argv += ["--ro-bind", p, p]
    pkg = os.path.join(pkg_parent, "sandbox")
    argv += ["--ro-bind", pkg, pkg]
    for p in [worker_dir, *writable]:
        argv += ["--bind", p, p]
    argv += ["--remount-ro", "/", "--chdir", "/", "--"]
    return argv
