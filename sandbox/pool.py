"""Host side of the warm workers: launching them (a separate process tree), talking to them, replacing them.

Workers are started with subprocess (never by forking the host, which may have initialised CUDA). Each
owns a folder ``w<i>/`` with ``cell/{in,out,tmp}`` for one-shot cells and ``s<id>/`` per session.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from typing import Any

from . import bwrap, protocol
from .config import SandboxConfig

NOBODY = 65534
BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from sandbox.worker import main; main(sys.argv[2])"
PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START_TIMEOUT_S = 180.0
GRACE_S = 2.0  # beyond a cell's own timeout, before the host gives up on a silent worker
_LOG_TAIL_BYTES = 2000  # of a worker log quoted in a start failure


class SandboxUnavailable(RuntimeError):
    """A requested isolation layer (or the worker itself) cannot be started on this machine."""


class WorkerLost(RuntimeError):
    pass


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def wipe(path: str) -> None:
    """Empty a folder the cell could write to (it may have removed permissions on what it made).

    Iterative, holding one descriptor at a time and never following a symlink: a cell may nest folders
    thousands deep (shutil.rmtree recursed into RecursionError and left them for the next cell).
    """
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError:
        return
    trail: list[tuple[int, int, list[str], str]] = []  # per level above fd: dev, ino, folders left, name
    try:
        pending = _unlink_files(fd)
        while True:
            if pending:
                name = pending.pop()
                child = _open_folder(fd, name)
                if child is not None:
                    st = os.fstat(fd)
                    trail.append((st.st_dev, st.st_ino, pending, name))
                    os.close(fd)
                    fd = child
                    pending = _unlink_files(fd)
                continue
            if not trail:
                return
            dev, ino, pending, name = trail.pop()
            parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != (dev, ino):
                return  # the tree moved meanwhile: stop rather than delete anywhere else
            try:
                os.rmdir(name, dir_fd=fd)
            except OSError:
                pass
    except OSError:
        return
    finally:
        os.close(fd)


def _unlink_files(fd: int) -> list[str]:
    """Remove everything but folders from the folder open at fd; return the folders' names."""
    folders: list[str] = []
    try:
        with os.scandir(fd) as it:
            entries = list(it)
    except OSError:
        return folders
    for e in entries:
        try:
            if e.is_dir(follow_symlinks=False):
                folders.append(e.name)
                continue
            try:
                os.unlink(e.name, dir_fd=fd)
            except PermissionError:  # a folder made without write permission
                os.chmod(fd, 0o700)
                os.unlink(e.name, dir_fd=fd)
        except OSError:
            pass
    return folders


def _open_folder(fd: int, name: str) -> int | None:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=fd)
    except PermissionError:  # a folder made without read permission
        try:
            os.chmod(name, 0o700, dir_fd=fd)
            return os.open(name, _DIR_FLAGS, dir_fd=fd)
        except OSError:
            return None
    except OSError:
        return None


def process_tree(pid: int) -> list[int]:
    """pid and all its live descendants, parents first (host view of /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def make_dirs(root: str, uid: int = NOBODY) -> dict[str, str]:
    """in/ is readable by the cell; out/ and tmp/ belong to the uid cells run as."""
    dirs = {k: os.path.join(root, k) for k in ("in", "out", "tmp")}
    os.makedirs(root, mode=0o711, exist_ok=True)
    for k, p in dirs.items():
        os.makedirs(p, mode=0o755 if k == "in" else 0o700, exist_ok=True)
        if k != "in" and os.geteuid() == 0:
            try:
                os.chown(p, uid, uid)
            except OSError as e:  # uid not mapped in our user namespace: the worker keeps uid 0 then
                if e.errno != errno.EINVAL:
                    raise
    return dirs


class WorkerHandle:
    def __init__(self, pool: Pool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.dir = os.path.join(pool.base, f"w{index}")
        self.root_dir = os.path.join(pool.base, "roots", str(index))
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.generation = 0
        self.report: dict[str, Any] = {}
        self.cell_dirs: dict[str, str] = {}
        self._ids = 0
        self.cell_uid = NOBODY

    def start(self) -> None:
        cfg = self.pool.config
        os.makedirs(self.dir, mode=0o711, exist_ok=True)
        os.makedirs(self.root_dir, mode=0o700, exist_ok=True)
        # Under bwrap the sandbox uid maps back to ours; otherwise cells run as nobody (when we are root).
        self.cell_uid = os.geteuid() if self.pool.ns_tool == "bwrap" else NOBODY
        self.cell_dirs = make_dirs(os.path.join(self.dir, "cell"), self.cell_uid)
        for p in self.cell_dirs.values():
            wipe(p)
        args = {
            "worker_dir": self.dir, "root_dir": self.root_dir, "cell_dirs": self.cell_dirs,
            "isolation": self.pool.isolation, "ns_tool": self.pool.ns_tool, "hide": [PKG_PARENT],
            "extra_ro": list(cfg.extra_ro_paths),
            "limits": {"wall": cfg.wall_time_s, "memory": cfg.memory_bytes, "fsize": cfg.file_size_bytes,
                       "nofile": cfg.max_open_files, "stdout": cfg.max_stdout_bytes,
                       "disk": cfg.disk_bytes, "entries": cfg.max_dir_entries,
                       "nproc": cfg.max_threads * self.pool.config.n_workers + 64},
        }
        argv = [cfg.interpreter, "-I", "-B", "-c", BOOT, PKG_PARENT, json.dumps(args)]
        log_path = os.path.join(self.pool.log_dir, f"worker{self.index}.log")
        if self.pool.ns_tool == "bwrap":
            try:
                argv = bwrap.command(bwrap.find() or "bwrap", cfg.interpreter, PKG_PARENT, self.dir,
                                     [self.pool.worker_env["MPLCONFIGDIR"]], list(cfg.extra_ro_paths)) + argv
            except (OSError, subprocess.SubprocessError, ValueError) as e:  # the interpreter probe failed
                with open(log_path, "a", encoding="utf-8") as log:
                    log.write(f"--- worker {self.index} (bwrap): probing {cfg.interpreter} failed: {e}\n")
                    start = log.tell()
                    log.write(str(getattr(e, "stderr", None) or ""))
                raise SandboxUnavailable(
                    self._start_failure(f"interpreter probe failed ({e})", log_path, start)) from None
        log = open(log_path, "ab")
        log.write(f"--- worker {self.index} ({self.pool.ns_tool or 'no namespaces'}) starting ---\n".encode())
        log.flush()
        start = log.tell()
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=self.pool.worker_env,
                cwd=self.dir, start_new_session=True, close_fds=True)
        except OSError as e:  # no such interpreter, not executable
            raise SandboxUnavailable(self._start_failure(str(e), log_path, start)) from None
        finally:
            log.close()
        try:
            ready = protocol.read_frame(self.proc.stdout.fileno(), time.monotonic() + START_TIMEOUT_S)
        except (EOFError, protocol.ProtocolError, OSError) as e:
            self.kill()
            raise SandboxUnavailable(self._start_failure(str(e) or type(e).__name__, log_path, start)) from None
        if not ready.get("ok"):
            self.kill()
            raise SandboxUnavailable(self._start_failure(str(ready.get("error")), log_path, start))
        os.set_blocking(self.proc.stdin.fileno(), False)  # requests are written with a deadline
        self.report = ready.get("report", {})
        if self.pool.ns_tool != "bwrap" and int(self.report.get("cell_uid", NOBODY)) != self.cell_uid:
            self.cell_uid = int(self.report["cell_uid"])
            make_dirs(os.path.join(self.dir, "cell"), self.cell_uid)
        self.generation += 1

    def _start_failure(self, what: str, log_path: str, start: int) -> str:
        """The message of a failed start: the cause, the worker log, and what this start wrote there (from
        offset ``start``) when that log lives in the pool's own folder, removed when the pool closes."""
        message = f"sandbox worker failed to start ({what}); worker log: {log_path}"
        if self.pool.config.log_dir is None:
            try:
                with open(log_path, "rb") as f:
                    f.seek(start)
                    written = f.read()[-_LOG_TAIL_BYTES:].decode("utf-8", "replace")
                tail = written.strip().splitlines()[-5:]
            except OSError:
                tail = []
            if tail:
                message += " (removed when the sandbox closes; it ends: " + " | ".join(tail) + ")"
        return message

    def call(self, msg: dict[str, Any], timeout: float) -> dict[str, Any]:
        """One request/response exchange; any failure kills the worker (the caller restarts it)."""
        if self.proc is None or self.proc.poll() is not None:
            raise WorkerLost("worker is not running")
        self._ids += 1
        msg["id"] = self._ids
        deadline = time.monotonic() + timeout
        try:
            # With a deadline too: a request larger than the pipe buffer would block on a stuck worker.
            protocol.write_frame_until(self.proc.stdin.fileno(), msg, deadline)
            while True:
                resp = protocol.read_frame(self.proc.stdout.fileno(), deadline)
                if resp.get("id") == msg["id"]:
                    return resp
        except (OSError, EOFError, protocol.ProtocolError) as e:
            self.kill()
            raise WorkerLost(str(e) or type(e).__name__) from None

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        # The whole tree (bwrap's namespace init sits in its own session, out of reach of killpg), deepest
        # first, so each parent is still alive to reap its child; our direct child goes last and we reap it.
        for pid in reversed(process_tree(proc.pid)[1:]):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        try:
            proc.wait(1)  # bwrap and our supervisor exit on their own once their child is gone
        except subprocess.TimeoutExpired:
            try:
                proc.kill()
                proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        try:
            proc.stdin.close()  # EOF: the worker reaps its children and exits
            proc.wait(2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()

    def restart(self) -> None:
        self.kill()
        self.start()


class Pool:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.base = ""
        self.log_dir = ""
        self.workers: list[WorkerHandle] = []
        self.idle: queue.Queue[WorkerHandle] = queue.Queue()
        self.started = False
        self.closed = False
        self._lock = threading.Lock()
        self.isolation = config.isolation
        self.ns_tool: str | None = None
        self.report: dict[str, Any] = {}
        self._pid = os.getpid()

    def _tools(self) -> list[str | None]:
        """Outer layers to try, best first; None = per-cell layers only."""
        cfg = self.config
        if cfg.isolation == "process":
            return [None]
        tools: list[str | None] = []
        if cfg.namespace_tool in ("auto", "bwrap"):
            if bwrap.find():
                tools.append("bwrap")
            elif cfg.namespace_tool == "bwrap":
                raise SandboxUnavailable("namespace_tool='bwrap' but bwrap is not installed "
                                         "(Debian package bubblewrap)")
        if cfg.namespace_tool in ("auto", "unshare"):
            tools.append("unshare")
        if cfg.isolation == "auto":
            tools.append(None)
        return tools

    def _env(self) -> dict[str, str]:
        # A persistent matplotlib cache: a fresh one would rebuild the font list at every pool start.
        mpl = os.environ.get("MPLCONFIGDIR") or os.path.join(
            os.path.expanduser("~"), ".cache", "vthinker-sandbox", "matplotlib")
        try:
            os.makedirs(mpl, exist_ok=True)
        except OSError:
            mpl = os.path.join(self.base, "mpl")
            os.makedirs(mpl, exist_ok=True)
        threads = "1"
        return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
                "HOME": self.base, "MPLBACKEND": "Agg", "MPLCONFIGDIR": mpl, "OPENBLAS_NUM_THREADS": threads,
                "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "NUMEXPR_NUM_THREADS": threads}

    def _forget_after_fork(self) -> None:
        """In a forked copy of the host: the workers belong to the parent; start our own on demand."""
        self.workers, self.idle, self.started, self.base = [], queue.Queue(), False, ""
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def ensure_started(self) -> None:
        if self._pid != os.getpid():
            self._forget_after_fork()
        if self.started:
            return
        with self._lock:
            if self.started:
                return
            if self.closed:
                raise RuntimeError("sandbox is closed")
            self.base = tempfile.mkdtemp(prefix="vtsbx-")
            os.chmod(self.base, 0o711)
            self.log_dir = self.config.log_dir or self.base
            os.makedirs(self.log_dir, exist_ok=True)
            self.worker_env = self._env()
            first = WorkerHandle(self, 0)
            # The first worker alone decides which outer layer works here; never weaker than requested.
            failures: list[str] = []
            for tool in self._tools():
                self.ns_tool = tool
                self.isolation = "process" if tool is None else "namespaces"
                try:
                    first.start()
                except SandboxUnavailable as e:
                    failures.append(f"{tool}: {e}")
                    continue
                if tool is None or first.report.get("namespaces", {}).get("active"):
                    break
                failures.append(f"{tool}: {first.report.get('namespaces', {}).get('reason')}")
                first.kill()
            else:
                raise SandboxUnavailable(f"isolation={self.config.isolation!r} is not available here: "
                                         + "; ".join(failures))
            first.report["fallbacks"] = failures
            self.workers = [first] + [WorkerHandle(self, i) for i in range(1, self.config.n_workers)]
            errors: list[BaseException] = []

            def boot(w: WorkerHandle) -> None:
                try:
                    w.start()
                except BaseException as e:  # noqa: BLE001
                    errors.append(e)

            threads = [threading.Thread(target=boot, args=(w,)) for w in self.workers[1:]]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                for w in self.workers:
                    w.kill()
                raise errors[0]
            self.report = dict(first.report)
            for w in self.workers:
                self.idle.put(w)
            self.started = True

    def acquire(self) -> WorkerHandle:
        self.ensure_started()
        w = self.idle.get()
        w.lock.acquire()
        if w.proc is None or w.proc.poll() is not None:
            self.revive(w)  # died while idle (killed from outside, OOM): replace it before use
        return w

    def release(self, w: WorkerHandle) -> None:
        w.lock.release()
        self.idle.put(w)

    def revive(self, w: WorkerHandle) -> None:
        """Replace a dead worker; if that fails the slot stays dead and the next call retries."""
        if self.closed:
            return
        try:
            w.restart()
        except SandboxUnavailable:
            pass

    def close(self) -> None:
        if self._pid != os.getpid():
            return  # a forked copy never tears down the parent's workers
        with self._lock:
            self.closed = True
            for w in self.workers:
                w.stop()
            if self.base:
                wipe(self.base)  # first: whatever deep trees an unclosed session left
                shutil.rmtree(self.base, ignore_errors=True)
            self.started = False
