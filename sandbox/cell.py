"""The cell child: forked from a warm worker, hardened, then runs model-written code.

Everything here runs in the hostile process. It reports back only JSON frames on a pipe; stdout and stderr
are raw pipes that the worker reads and caps.
"""

from __future__ import annotations

import fcntl
import io
import linecache
import os
import resource
import signal
import sys
import traceback
from typing import Any

from . import _syscalls as sc
from . import landlock, protocol, rewrite, seccomp

CELL_FILE = "<cell>"
CMD_FD, RES_FD = 3, 4
MAX_TB_FRAMES = 40
MAX_LINE = 4000  # per traceback line: the whole report must stay far below the worker's result cap


def harden(*, worker_pid: int, ruleset_fd: int | None, fds: dict[str, int], limits: dict[str, int],
           seccomp_template: bytes | None) -> None:
    """Apply the per-cell layer. Order matters: Landlock needs the ruleset fd we close afterwards."""
    os.setsid()  # own process group: the worker kills the whole group
    sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != worker_pid:
        os._exit(70)
    sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
    sc.prctl(sc.PR_SET_DUMPABLE, 0)  # no /proc/<pid>/mem or environ for same-uid peers
    if ruleset_fd is not None:
        landlock.restrict_self(ruleset_fd)
    # Standard fds: 0=/dev/null, 1/2=capture pipes, 3=commands in, 4=results out; close the rest
    # (in particular the worker's channel to the host).
    high = {k: fcntl.fcntl(v, fcntl.F_DUPFD, 10) for k, v in fds.items()}  # clear of 0..4 before dup2
    devnull = os.open("/dev/null", os.O_RDONLY)
    moves = ((devnull, 0), (high["out"], 1), (high["err"], 2), (high["cmd"], CMD_FD), (high["res"], RES_FD))
    for src, dst in moves:
        os.dup2(src, dst, inheritable=True)
    os.closerange(RES_FD + 1, 1 << 20)
    for lim, value in ((resource.RLIMIT_AS, limits["as"]), (resource.RLIMIT_FSIZE, limits["fsize"]),
                       (resource.RLIMIT_NOFILE, limits["nofile"]), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(lim, (value, value))
    if limits.get("nproc"):
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["nproc"], limits["nproc"]))
    if seccomp_template is not None:
        seccomp.install(seccomp.for_pid(seccomp_template, os.getpid()))


def _format_error(exc: BaseException) -> dict[str, Any]:
    """Keep only the frames of the user's cell; line numbers are the cell's own."""
    lines: list[str] = []
    if isinstance(exc, SyntaxError) and exc.filename == CELL_FILE:
        lines.append(f'  File "{CELL_FILE}", line {exc.lineno}')
        if exc.text:
            lines.append("    " + exc.text.rstrip("\n").strip()[:MAX_LINE])
        message = exc.msg
    else:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == CELL_FILE]
        if len(frames) > MAX_TB_FRAMES:
            frames = frames[: MAX_TB_FRAMES // 2] + frames[-MAX_TB_FRAMES // 2:]
        for f in frames:
            lines.append(f'  File "{CELL_FILE}", line {f.lineno}, in {f.name[:MAX_LINE]}')
            if f.line:
                lines.append("    " + f.line.strip()[:MAX_LINE])
        message = str(exc)
    return {"type": type(exc).__name__, "message": message[:4000], "traceback": lines,
            "errno": getattr(exc, "errno", None) if isinstance(exc, OSError) else None}


class CellState:
    """Namespace and per-cell bookkeeping of one child (several cells when it serves a session)."""

    def __init__(self, preload: dict[str, Any], dirs: dict[str, str]) -> None:
        self.preload = preload
        self.dirs = dirs
        self.ns: dict[str, Any] | None = None
        self.index = 0

    def bind(self, inputs: list[str], fresh: bool) -> dict[str, Any]:
        if self.ns is None or fresh:
            self.ns = {"__name__": "__main__", "__builtins__": __builtins__}
            self.ns.update(self.preload)
        ns = self.ns
        self.index += 1
        paths = [os.path.join(self.dirs["in"], name) for name in inputs]
        if paths:
            ns["image_path"] = paths[0]
            for i, p in enumerate(paths, 1):
                ns[f"image_path_{i}"] = p
            ns["image_paths"] = list(paths)
        ns["output_dir"] = self.dirs["out"]
        ns["processed_path"] = os.path.join(self.dirs["out"], f"processed_{self.index}.png")
        _SHOW_STATE["dir"] = self.dirs["out"]
        _SHOW_STATE["prefix"] = f"plot_{self.index}"
        return ns


_SHOW_STATE: dict[str, Any] = {"dir": ".", "prefix": "plot", "n": 0}


def install_matplotlib_hooks(plt: Any, figure_cls: Any) -> None:
    """plt.show() saves every open figure not saved yet (instead of blocking or doing nothing)."""
    orig_savefig = figure_cls.savefig

    def savefig(self, *args, **kwargs):
        self._vt_saved = True
        return orig_savefig(self, *args, **kwargs)

    def show(*args, **kwargs):
        for num in plt.get_fignums():
            fig = plt.figure(num)
            if not getattr(fig, "_vt_saved", False):
                _SHOW_STATE["n"] += 1
                path = os.path.join(_SHOW_STATE["dir"], f"{_SHOW_STATE['prefix']}_{_SHOW_STATE['n']}.png")
                fig.savefig(path)
                print(path)

    figure_cls.savefig = savefig
    plt.show = show


def serve(state: CellState, once: bool) -> None:
    """Read cell commands from CMD_FD, run them, answer on RES_FD."""
    sys.stdin = io.TextIOWrapper(io.BytesIO(b""))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="replace",
                                  line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="replace",
                                  line_buffering=True)
    while True:
        try:
            cmd = protocol.read_frame(CMD_FD)
        except (EOFError, OSError, protocol.ProtocolError):
            os._exit(0)
        timeout = float(cmd.get("timeout", 10.0))
        soft = int(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) + timeout) + 1
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
        if hard == resource.RLIM_INFINITY or hard > soft + 1:
            resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 1 if once else hard))
        ns = state.bind(list(cmd.get("inputs", [])), fresh=bool(cmd.get("fresh", once)))
        error = None
        code = str(cmd.get("code", ""))
        try:
            compiled = rewrite.compile_cell(code, ns.get("image_path"), CELL_FILE)
            linecache.cache[CELL_FILE] = (len(code), None, code.splitlines(True), CELL_FILE)
            exec(compiled, ns)
        except SystemExit as e:
            if e.code not in (None, 0):
                error = _format_error(e)
        except BaseException as e:  # noqa: BLE001 - everything the cell raises is reported, not fatal
            error = _format_error(e)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - the cell may have closed or replaced its streams
                pass
        try:
            protocol.write_frame(RES_FD, {"error": error})
        except Exception:  # noqa: BLE001
            os._exit(71)
        if once:
            os._exit(0)
