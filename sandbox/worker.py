"""The warm worker: imports the image libraries once, enters its isolation, forks one hardened child per cell.

Started by the host with ``python -I -c`` (never forked from the host). It talks to the host over its
stdin/stdout with JSON frames, keeps one pre-hardened spare child waiting so a cell starts without paying
for fork + hardening, and enforces the wall clock on every child.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from . import _syscalls as sc
from . import cell, fsview, landlock, protocol, seccomp

NOBODY = 65534
RESULT_CAP = 1 << 20
QUOTA_CHECK_S = 0.2


@dataclass
class Child:
    pid: int
    pidfd: int
    out_r: int
    err_r: int
    res_r: int
    cmd_w: int
    cells: int = 0
    res_buf: bytearray = field(default_factory=bytearray)

    def fds(self) -> list[int]:
        return [self.pidfd, self.out_r, self.err_r, self.res_r, self.cmd_w]


def _preload() -> dict[str, Any]:
    """Import and warm up everything a cell may use, so a forked child starts hot."""
    import io
    import math

    import cv2
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.figure
    import matplotlib.pyplot as plt
    from PIL import Image, ImageDraw, ImageFont

    Image.init()
    img = Image.new("RGB", (64, 64), "white")
    d = ImageDraw.Draw(img)
    d.line([(0, 0), (63, 63)], fill="red", width=2)
    d.text((4, 4), "warm", fill="black", font=ImageFont.load_default())
    img.save(io.BytesIO(), format="PNG")
    Image.open(io.BytesIO(_png_bytes(img))).convert("L").load()
    cv2.cvtColor(np.zeros((8, 8, 3), np.uint8), cv2.COLOR_RGB2GRAY)
    fig, ax = plt.subplots(figsize=(1, 1), dpi=32)
    ax.plot([0, 1], [0, 1])
    ax.text(0.5, 0.5, "warm")
    ax.imshow(np.zeros((4, 4, 3), np.uint8))
    fig.savefig(io.BytesIO(), format="png")
    plt.close("all")
    cell.install_matplotlib_hooks(plt, matplotlib.figure.Figure)
    for alias in ("cv", "cv3", "cv4"):
        sys.modules.setdefault(alias, cv2)
    ns = {"Image": Image, "ImageDraw": ImageDraw, "ImageFont": ImageFont, "np": np, "numpy": np,
          "cv2": cv2, "math": math, "matplotlib": matplotlib, "plt": plt, "os": os}
    ns.update({alias: cv2 for alias in ("cv", "cv3", "cv4")})
    return ns


def _png_bytes(img: Any) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _uid_mapped(uid: int) -> bool:
    """Whether `uid` exists in our user namespace (a root-in-userns container may map only 0)."""
    try:
        with open("/proc/self/uid_map") as f:
            for line in f:
                inside, _, count = (int(x) for x in line.split())
                if inside <= uid < inside + count:
                    return True
    except (OSError, ValueError):
        return True
    return False


def _flat_error(err: dict[str, Any]) -> dict[str, Any]:
    """The child's error report with only flat, typed fields (anything nested is the cell's to forge)."""
    def text(v: Any, default: str = "") -> str:
        return v[:4000] if isinstance(v, str) else default

    tb = err.get("traceback")
    errno_ = err.get("errno")
    return {"type": text(err.get("type"), "Error")[:200], "message": text(err.get("message")),
            "traceback": [text(x) for x in tb[:100]] if isinstance(tb, list) else [],
            "errno": errno_ if type(errno_) is int else None}


def _vm_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 1 << 30


class Worker:
    def __init__(self, args: dict[str, Any], host_in: int, host_out: int) -> None:
        self.args = args
        self.host_in = host_in
        self.host_out = host_out
        self.limits = args["limits"]
        self.root_dir = args["root_dir"]
        self.cell_dirs = args["cell_dirs"]
        self.report: dict[str, Any] = {}
        self.spare: Child | None = None
        self.sessions: dict[str, tuple[Child | None, dict[str, str], int]] = {}
        self.ruleset_fd: int | None = None
        self.ro_fds: list[tuple[int, bool]] = []
        self.nproc = 0
        self.dying: list[Child] = []

    # ---- boot ---------------------------------------------------------------------------------------
    def boot(self) -> None:
        t0 = time.monotonic()
        self.nobody_mapped = _uid_mapped(NOBODY)  # read now: /proc may be gone after the pivot
        self.preload = _preload()
        import gc

        gc.collect()
        gc.freeze()  # keep the preloaded heap out of the collector: fewer copy-on-write faults per child
        self.report["preload_s"] = round(time.monotonic() - t0, 3)
        self.baseline_vm = _vm_bytes()
        ro = fsview.SYSTEM_RO + fsview.interpreter_paths(hide=self.args["hide"]) + self.args["extra_ro"]
        wdir = self.args["worker_dir"]
        mode = self.args["isolation"]
        ns_error = None
        if mode in ("auto", "namespaces") and self.args.get("ns_tool") == "unshare":
            try:
                self._enter_namespaces(ro, wdir)
                kinds = ["user"] if getattr(self, "userns", False) else []
                self.report["namespaces"] = {"active": True, "tool": "unshare(2)",
                                             "kinds": [*kinds, "mnt", "net", "pid", "ipc", "uts", "cgroup"]}
            except OSError as e:
                ns_error = str(e)
                if mode == "namespaces":
                    raise
        elif self.args.get("ns_tool") == "bwrap":
            self.report["namespaces"] = {"active": True, "tool": "bwrap",
                                         "kinds": ["user", "mnt", "net", "pid", "ipc", "uts", "cgroup"]}
        if "namespaces" not in self.report:
            self.report["namespaces"] = {"active": False, "reason": ns_error or "not requested"}
        # Landlock targets are opened now, while the worker can still traverse every path.
        self.landlock_abi = landlock.abi_version()
        if self.landlock_abi >= 1:
            self.ro_fds = landlock.open_paths(fsview.collapse(ro) + fsview.DEVICES_RO)
            self.dev_rw_fds = landlock.open_paths(fsview.DEVICES_RW)
            self.ruleset_fd = self._ruleset(self.cell_dirs)
            self.report["landlock"] = {"active": True, **landlock.describe(self.landlock_abi)}
        else:
            self.report["landlock"] = {"active": False, "reason": "kernel without Landlock (or disabled)"}
        self._drop_privileges(ro)
        self.seccomp_template = seccomp.template() if seccomp.supported() else None
        self.report["seccomp"] = ({"active": True, "filter": "builtin BPF (x86_64)"} if seccomp.supported()
                                  else {"active": False, "reason": f"no filter for {sc.MACHINE}"})
        lim = self.limits
        self.report["rlimits"] = {
            "active": True, "as": f"baseline + {lim['memory'] >> 20} MiB", "cpu": "timeout + 1 s",
            "fsize": f"{lim['fsize'] >> 20} MiB", "nofile": lim["nofile"], "core": 0,
            "nproc": self.nproc or "n/a (uid maps to host root or shared; seccomp stops new processes)"}
        self.limits["as"] = self.baseline_vm + self.limits["memory"] + (256 << 20)
        self.report["baseline_vm_mb"] = self.baseline_vm >> 20
        self.report["cell_uid"] = os.getuid()
        self.report["boot_s"] = round(time.monotonic() - t0, 3)
        self.worker_pid = os.getpid()

    def _enter_namespaces(self, ro: list[str], wdir: str) -> None:
        uid, gid = os.getuid(), os.getgid()
        flags = (sc.CLONE_NEWNS | sc.CLONE_NEWNET | sc.CLONE_NEWIPC | sc.CLONE_NEWUTS | sc.CLONE_NEWPID
                 | sc.CLONE_NEWCGROUP)
        if uid != 0:
            flags |= sc.CLONE_NEWUSER
        sc.unshare(flags)
        if uid != 0:
            for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
            self.userns = True
            self.host_uid = uid
        # The new PID namespace applies to children: fork, and let the parent only wait as a supervisor.
        r, w = os.pipe()
        pid = os.fork()
        if pid:
            os.close(w)
            for fd in (self.host_in, self.host_out):
                os.close(fd)
            ok = os.read(r, 1)
            os.waitpid(pid, 0)
            os._exit(0 if ok else 1)
        os.close(r)
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
        sc.sethostname("sandbox")
        fsview.build_root(self.root_dir, ro, [wdir])
        os.write(w, b"1")
        os.close(w)

    def _drop_privileges(self, ro: list[str]) -> None:
        in_ns = self.report["namespaces"].get("active")
        blocked = [] if in_ns else [p for p in fsview.interpreter_paths(self.args["hide"])
                                    if not fsview.reachable_by_others(p)]
        if self.args.get("ns_tool") == "bwrap":
            self.report["uid"] = {"active": True, "uid": os.getuid(),
                                  "via": "bwrap user namespace, no capabilities"}
        elif os.getuid() == 0 and not getattr(self, "userns", False) and not blocked and self.nobody_mapped:
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            self.nproc = self.limits["nproc"]
            self.report["uid"] = {"active": True, "uid": NOBODY}
        elif os.getuid() == 0 and not getattr(self, "userns", False):
            # The interpreter lives where uid 65534 cannot reach (e.g. under /root): stay uid 0 but
            # without any capability, so DAC is enforced and Landlock does the confining.
            sc.drop_capabilities(bounding=True)
            why = (f"interpreter path not reachable by uid {NOBODY}: {blocked[0]}" if blocked
                   else f"uid {NOBODY} is not mapped in this user namespace")
            self.report["uid"] = {"active": False, "uid": 0, "capabilities": "none", "reason": why}
        elif getattr(self, "userns", False):
            sc.drop_capabilities()
            self.report["uid"] = {"active": True, "uid": 0, "host_uid": self.host_uid,
                                  "via": "own user namespace, no capabilities"}
        else:
            self.report["uid"] = {"active": False, "reason": f"not root: cells run as host uid {os.getuid()}"}
        sc.prctl(sc.PR_SET_DUMPABLE, 0)
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)

    def _ruleset(self, dirs: dict[str, str]) -> int | None:
        if self.landlock_abi < 1:
            return None
        ro = self.ro_fds + landlock.open_paths([dirs["in"]])
        rw = self.dev_rw_fds + landlock.open_paths([dirs["out"], dirs["tmp"]])
        try:
            return landlock.build_ruleset(ro, rw, self.landlock_abi)
        finally:
            for fd, _ in ro[len(self.ro_fds):] + rw[len(self.dev_rw_fds):]:
                os.close(fd)

    # ---- children -----------------------------------------------------------------------------------
    def _fork(self, dirs: dict[str, str], ruleset_fd: int | None, once: bool) -> Child:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        res_r, res_w = os.pipe()
        cmd_r, cmd_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                cell.harden(worker_pid=self.worker_pid, ruleset_fd=ruleset_fd,
                            fds={"out": out_w, "err": err_w, "cmd": cmd_r, "res": res_w},
                            limits={"as": self.limits["as"], "fsize": self.limits["fsize"],
                                    "nofile": self.limits["nofile"], "nproc": self.nproc},
                            seccomp_template=self.seccomp_template)
                os.chdir(dirs["out"])
                os.environ.clear()
                os.environ.update({"HOME": dirs["tmp"], "TMPDIR": dirs["tmp"], "MPLCONFIGDIR": dirs["tmp"],
                                   "LANG": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
                import tempfile

                tempfile.tempdir = dirs["tmp"]
                cell.serve(cell.CellState(self.preload, dirs), once=once)
            except BaseException:  # noqa: BLE001 - never return into the worker's loop
                pass
            os._exit(70)
        for fd in (out_w, err_w, res_w, cmd_r):
            os.close(fd)
        for fd in (out_r, err_r, res_r, cmd_w):
            os.set_blocking(fd, False)
        return Child(pid, os.pidfd_open(pid), out_r, err_r, res_r, cmd_w)

    def _reap(self, child: Child) -> tuple[int, Any]:
        for fd in child.fds():
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.kill(child.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            _, status, usage = os.wait4(child.pid, 0)
        except ChildProcessError:
            return 0, None
        self._sweep()
        return status, usage

    def _reap_dying(self, block: bool = False) -> None:
        """Reap one-shot children killed after their result (non-blocking unless asked)."""
        keep = []
        for child in self.dying:
            if block or not self._alive(child):
                self._reap(child)
            else:
                keep.append(child)
        self.dying = keep

    def _sweep(self) -> None:
        """Reap anything else that ended up as our child (PID 1 in the namespace inherits orphans)."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    def _alive(self, child: Child | None) -> bool:
        if child is None:
            return False
        p = select.poll()
        p.register(child.pidfd, select.POLLIN)
        return not p.poll(0)

    # ---- one cell -----------------------------------------------------------------------------------
    def _over_quota(self, dirs: dict[str, str]) -> bool:
        """Bytes and entries under the cell's writable folders (RLIMIT_FSIZE caps files, not their sum).

        A folder that cannot be listed (made without read permission, or deeper than PATH_MAX) would hide
        what is under it: that counts as over quota too.
        """
        total, entries, todo = 0, 0, [dirs["out"], dirs["tmp"]]
        while todo:
            try:
                it = os.scandir(todo.pop())
            except FileNotFoundError:
                continue
            except OSError:
                return True
            with it:
                for e in it:
                    entries += 1
                    try:
                        st = e.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    except OSError:
                        return True
                    total += st.st_blocks * 512
                    if e.is_dir(follow_symlinks=False):
                        todo.append(e.path)
                    if total > self.limits["disk"] or entries > self.limits["entries"]:
                        return True
        return False

    def _collect(self, child: Child, timeout: float, once: bool, dirs: dict[str, str]) -> dict[str, Any]:
        cap = self.limits["stdout"]
        bufs = {child.out_r: bytearray(), child.err_r: bytearray()}
        truncated = False
        result: dict[str, Any] | None = None
        exited = timed_out = False
        deadline = time.monotonic() + timeout
        poller = select.poll()
        for fd in (child.out_r, child.err_r, child.res_r, child.pidfd):
            poller.register(fd, select.POLLIN)
        open_fds = {child.out_r, child.err_r, child.res_r}

        def drain(fd: int) -> None:
            nonlocal truncated, result
            while True:
                try:
                    data = os.read(fd, 1 << 16)
                except BlockingIOError:
                    return
                except OSError:
                    data = b""
                if not data:
                    poller.unregister(fd)
                    open_fds.discard(fd)
                    return
                if fd == child.res_r:
                    child.res_buf += data
                    if len(child.res_buf) > RESULT_CAP:
                        child.res_buf.clear()
                        if result is None:  # the cell's own report never gets this big
                            result = {"error": {"type": "SandboxError", "message": "result frame too large"}}
                    if result is None and len(child.res_buf) >= 4:
                        size = int.from_bytes(child.res_buf[:4], "big")
                        if len(child.res_buf) >= 4 + size:
                            try:
                                result = json.loads(bytes(child.res_buf[4:4 + size]))
                            except (ValueError, RecursionError):  # deep nesting: RecursionError
                                result = None
                            if not isinstance(result, dict) or not isinstance(result.get("error"),
                                                                              (dict, type(None))):
                                result = {"error": {"type": "SandboxError", "message": "bad result frame"}}
                            elif result["error"] is not None:
                                result = {"error": _flat_error(result["error"])}
                            del child.res_buf[:4 + size]
                else:
                    buf = bufs[fd]
                    room = cap - len(buf)
                    if room > 0:
                        buf += data[:room]
                    if len(data) > max(room, 0):
                        truncated = True

        over_quota = False
        next_check = time.monotonic() + QUOTA_CHECK_S
        while True:
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                timed_out = True
                break
            if now >= next_check:
                next_check = now + QUOTA_CHECK_S
                if self._over_quota(dirs):
                    over_quota = True
                    break
            for fd, _ in poller.poll(min(left, QUOTA_CHECK_S) * 1000):
                if fd == child.pidfd:
                    exited = True
                else:
                    drain(fd)
            if exited:
                for fd in list(open_fds):
                    drain(fd)
                break
            if result is not None:
                # The child flushed its streams before writing the result, so they are complete now.
                for fd in (child.out_r, child.err_r):
                    if fd in open_fds:
                        drain(fd)
                break
        status = usage = None
        if over_quota or (result is not None and self._over_quota(dirs)):
            over_quota = True
            exited = True  # reaped below; the verdict is the quota, whatever the cell reported
        if exited or timed_out:
            status, usage = self._reap(child)
        elif once:
            # Done with a one-shot child: SIGKILL now (no syscall of it can start after this) and reap it
            # later, so its address-space teardown overlaps with the host reading the outputs.
            try:
                os.kill(child.pid, signal.SIGKILL)
            except OSError:
                pass
            self.dying.append(child)
        return {"stdout": bytes(bufs[child.out_r]).decode("utf-8", "replace"),
                "stderr": bytes(bufs[child.err_r]).decode("utf-8", "replace"),
                "truncated": truncated, "result": result, "timed_out": timed_out, "over_quota": over_quota,
                "exit": status, "dead": exited or timed_out or once,
                "cpu_s": None if usage is None else usage.ru_utime + usage.ru_stime}

    def _classify(self, c: dict[str, Any], timeout: float) -> tuple[str, dict[str, Any] | None]:
        err = (c["result"] or {}).get("error") if isinstance(c["result"], dict) else None
        if c.get("over_quota"):
            quota = f"{self.limits['disk'] >> 20} MiB or {self.limits['entries']} entries"
            return "limit_exceeded", {"type": "LimitExceeded",
                                      "message": f"the cell's folders exceeded {quota}"}
        if c["timed_out"]:
            return "timeout", {"type": "TimeoutError",
                               "message": f"cell exceeded the {timeout:g} s wall-clock limit"}
        status = c["exit"]
        if c["result"] is not None:
            if not err:
                return "ok", None
            if err.get("type") == "MemoryError" or err.get("errno") == errno.EFBIG:
                return "limit_exceeded", err
            if err.get("type") == "error" and "(-4:Insufficient memory)" in str(err.get("message")):
                return "limit_exceeded", err  # cv2.error for a failed allocation (StsNoMem)
            return "error", err
        if status is None or not c["dead"]:
            return "killed", {"type": "SandboxError", "message": "cell ended without a result"}
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
            cpu = c.get("cpu_s") or 0.0
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= timeout):
                return "timeout", {"type": "TimeoutError",
                                   "message": f"cell exceeded its CPU-time limit ({name})"}
            if sig == signal.SIGXFSZ:
                return "limit_exceeded", {"type": "LimitExceeded",
                                          "message": "file size limit exceeded (SIGXFSZ)"}
            return "killed", {"type": "Killed", "message": f"cell process was killed by {name}"}
        code = os.WEXITSTATUS(status)
        if code == 0:
            return "ok", None
        return "error", {"type": "SystemExit", "message": f"cell process exited with status {code}"}

    def run(self, req: dict[str, Any]) -> dict[str, Any]:
        timeout = float(req.get("timeout") or self.limits["wall"])
        sid = req.get("session")
        note = ""
        if sid is None:
            child = self.spare if self._alive(self.spare) else None
            if child is None and self.spare is not None:
                self._reap(self.spare)
            self.spare = None
            if child is None:
                child = self._fork(self.cell_dirs, self.ruleset_fd, once=True)
            dirs = self.cell_dirs
            once = True
        else:
            if sid not in self.sessions:
                return {"status": "error", "error": {"type": "SandboxError", "message": "unknown session"}}
            child, dirs, rs = self.sessions[sid]
            if not self._alive(child):
                if child is not None:
                    self._reap(child)
                note = "[sandbox] the session's process had ended; its state was reset\n"
                child = self._fork(dirs, rs, once=False)
                self.sessions[sid] = (child, dirs, rs)
            once = False
            try:
                os.kill(child.pid, signal.SIGCONT)  # frozen since its last cell
            except OSError:
                pass
        t0 = time.monotonic()
        cmd = {"code": req.get("code", ""), "inputs": req.get("inputs", []), "timeout": timeout,
               "fresh": once}
        try:
            protocol.write_frame_until(child.cmd_w, cmd, t0 + timeout)
        except (OSError, protocol.ProtocolError):
            pass  # the child died or does not listen; _collect sees it or times out
        child.cells += 1
        c = self._collect(child, timeout, once, dirs)
        status, err = self._classify(c, timeout)
        if sid is not None and c["dead"]:
            self.sessions[sid] = (None, self.sessions[sid][1], self.sessions[sid][2])
        elif sid is not None:
            # Threads the cell left running must not work between cells (files past the quota checks, CPU).
            try:
                os.kill(child.pid, signal.SIGSTOP)
            except OSError:
                pass
        return {"status": status, "error": err, "stdout": c["stdout"], "stderr": note + c["stderr"],
                "truncated": c["truncated"], "over_quota": c["over_quota"], "run_s": time.monotonic() - t0}

    # ---- sessions -----------------------------------------------------------------------------------
    def session_open(self, req: dict[str, Any]) -> dict[str, Any]:
        dirs = req["dirs"]
        rs = self._ruleset(dirs)
        child = self._fork(dirs, rs, once=False)
        self.sessions[req["session"]] = (child, dirs, rs)
        return {"ok": True}

    def session_close(self, req: dict[str, Any]) -> dict[str, Any]:
        entry = self.sessions.pop(req["session"], None)
        if entry:
            child, _, rs = entry
            if child is not None:
                self._reap(child)
            if rs is not None:
                os.close(rs)
        return {"ok": True}

    def _idle_until_request(self) -> None:
        """Wait for the host, reaping killed one-shot children as they finish exiting."""
        while self.dying:
            p = select.poll()
            p.register(self.host_in, select.POLLIN | select.POLLHUP)
            for c in self.dying:
                p.register(c.pidfd, select.POLLIN)
            events = p.poll()
            self._reap_dying()
            if any(fd == self.host_in for fd, _ in events):
                return

    def serve(self) -> None:
        while True:
            self._idle_until_request()
            try:
                req = protocol.read_frame(self.host_in)
            except (EOFError, OSError, protocol.ProtocolError):
                break
            op = req.get("op")
            self._reap_dying()
            if op == "run":
                resp = self.run(req)
            elif op == "session_open":
                resp = self.session_open(req)
            elif op == "session_close":
                resp = self.session_close(req)
            elif op == "ping":
                resp = {"ok": True}
            else:
                resp = {"ok": False, "error": f"unknown op {op!r}"}
            resp["id"] = req.get("id")
            protocol.write_frame(self.host_out, resp)
            if op == "run" and self.spare is None:
                self.spare = self._fork(self.cell_dirs, self.ruleset_fd, once=True)
            if len(self.dying) > 8:
                self._reap_dying(block=True)
        self._reap_dying(block=True)
        for child, _, _ in self.sessions.values():
            if child is not None:
                self._reap(child)
        if self.spare is not None:
            self._reap(self.spare)
        os._exit(0)


def main(arg_json: str) -> None:
    args = json.loads(arg_json)
    # Keep the protocol on private descriptors; stray prints from libraries go to the log instead.
    host_in, host_out = os.dup(0), os.dup(1)
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the host's terminal: the host shuts us down
    worker = Worker(args, host_in, host_out)
    try:
        worker.boot()  # no spare yet: the host may still adjust the cell folders' owner after "ready"
    except BaseException as e:  # noqa: BLE001
        protocol.write_frame(host_out, {"op": "ready", "ok": False, "error": f"{type(e).__name__}: {e}"})
        os._exit(1)
    protocol.write_frame(host_out, {"op": "ready", "ok": True, "report": worker.report, "pid": os.getpid()})
    worker.serve()
