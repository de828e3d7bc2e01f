"""Public entry points: Sandbox (pool of warm workers), Session (persistent namespace), get_sandbox()."""

from __future__ import annotations

import asyncio
import atexit
import math
import os
import shutil
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import outputs
from .config import SandboxConfig
from .inputs import InputImage, write_inputs
from .pool import GRACE_S, Pool, WorkerHandle, WorkerLost, make_dirs, wipe
from .result import CellError, CellResult, CellStatus

_MAX_TEXT = 4000


def _error_from(d: Any) -> CellError | None:
    """The worker's error dict passed through the hostile child: keep only well-typed, bounded fields."""
    if not isinstance(d, dict):
        return None
    tb = d.get("traceback")
    tb = [str(x)[:_MAX_TEXT] for x in tb[:100]] if isinstance(tb, list) else []
    return CellError(type=str(d.get("type", "Error"))[:200], message=str(d.get("message", ""))[:_MAX_TEXT],
                     traceback=tb)


def check_timeout(timeout: float | None) -> None:
    """A per-cell limit must be a finite, positive number of seconds (``None``: the config's)."""
    if timeout is None:
        return
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        raise ValueError(f"timeout must be a number of seconds, got {timeout!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")


class Sandbox:
    """Runs model-written image code in isolated, pre-warmed worker processes.

    Thread-safe; the pool starts on first use. See the package docstring for the cell environment.
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self._pool = Pool(self.config)
        self._executor: ThreadPoolExecutor | None = None
        self._exec_lock = threading.Lock()
        self._rr = 0
        self._finalizer = weakref.finalize(self, Pool.close, self._pool)

    # ---- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> Sandbox:
        """Start the pool now instead of on first use."""
        self._pool.ensure_started()
        return self

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._finalizer()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def report(self) -> dict[str, Any]:
        """Active isolation layers (starts the pool)."""
        self._pool.ensure_started()
        r = dict(self._pool.report)
        r["isolation"] = self._pool.isolation
        r["workers"] = len(self._pool.workers)
        return r

    # ---- running ------------------------------------------------------------------------------------
    def run(self, code: str, images: Sequence[InputImage] = (), *, session: Session | None = None,
            timeout: float | None = None) -> CellResult:
        check_timeout(timeout)
        if session is not None:
            return session.run(code, images, timeout=timeout)
        w = self._pool.acquire()
        try:
            return self._execute(w, code, images, timeout, None)
        finally:
            self._pool.release(w)

    async def arun(self, code: str, images: Sequence[InputImage] = (), *, session: Session | None = None,
                   timeout: float | None = None) -> CellResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._get_executor(), lambda: self.run(
            code, images, session=session, timeout=timeout))

    def run_batch(self, cells: Sequence[tuple[str, Sequence[InputImage]]], *,
                  progress: bool = False) -> list[CellResult]:
        """Run cells concurrently across the pool; results come back in input order."""
        self._pool.ensure_started()
        results: list[CellResult | None] = [None] * len(cells)
        done = 0
        lock = threading.Lock()

        def one(i: int) -> None:
            nonlocal done
            code, imgs = cells[i]
            results[i] = self.run(code, imgs)
            if progress:
                with lock:
                    done += 1
                    print(f"\r[sandbox] {done}/{len(cells)} cells", end="", file=sys.stderr, flush=True)

        with ThreadPoolExecutor(max_workers=len(self._pool.workers)) as ex:
            list(ex.map(one, range(len(cells))))
        if progress:
            print(file=sys.stderr)
        return results  # type: ignore[return-value]

    async def arun_batch(self, cells: Sequence[tuple[str, Sequence[InputImage]]]) -> list[CellResult]:
        return list(await asyncio.gather(*(self.arun(code, imgs) for code, imgs in cells)))

    def session(self) -> Session:
        return Session(self)

    # ---- internals ----------------------------------------------------------------------------------
    def _get_executor(self) -> ThreadPoolExecutor:
        with self._exec_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=max(8, 4 * self.config.n_workers),
                                                    thread_name_prefix="sandbox")
            return self._executor

    def _pick_worker(self) -> WorkerHandle:
        self._pool.ensure_started()
        with self._exec_lock:
            self._rr += 1
            return self._pool.workers[self._rr % len(self._pool.workers)]

    def _execute(self, w: WorkerHandle, code: str, images: Sequence[InputImage], timeout: float | None,
                 session: Session | None) -> CellResult:
        """Run one cell on worker `w`, whose lock the caller holds."""
        cfg = self.config
        t0 = time.perf_counter()
        timeout = float(timeout if timeout is not None else cfg.wall_time_s)
        dirs = session.dirs if session is not None else w.cell_dirs
        notes: list[str] = []
        try:
            prefix = f"c{session.cells + 1}_" if session is not None else ""
            names = write_inputs(images, dirs["in"], prefix)
            before = outputs.snapshot(dirs["out"]) if session is not None else None
            msg: dict[str, Any] = {"op": "run", "code": code, "inputs": names, "timeout": timeout,
                                   "session": session.id if session is not None else None}
            if session is not None:
                session.cells += 1
            try:
                resp = w.call(msg, timeout + GRACE_S)
            except WorkerLost as e:
                timed_out = "timed out" in str(e)
                resp = {"status": "timeout" if timed_out else "killed", "stdout": "", "stderr": "",
                        "error": {"type": "TimeoutError" if timed_out else "SandboxError",
                                  "message": f"sandbox worker lost ({e}); it was replaced"}}
                self._pool.revive(w)
            try:
                status = CellStatus(resp.get("status"))
            except ValueError:
                status = CellStatus.ERROR
            stdout = str(resp.get("stdout", ""))[: cfg.max_stdout_bytes]
            stderr = str(resp.get("stderr", ""))[: cfg.max_stdout_bytes]
            truncated = bool(resp.get("truncated"))
            col = outputs.collect(dirs["out"], stdout, max_images=cfg.max_output_images,
                                  max_bytes=cfg.max_output_bytes, max_pixels=cfg.max_image_pixels,
                                  reencode_png=cfg.reencode_png, before=before)
            notes += col.notes
            if session is not None and resp.get("over_quota") is True:
                # The session's process was reset; its files go too, or each later cell would add to them.
                for k in ("out", "tmp"):
                    wipe(dirs[k])
                notes.append("[sandbox] the session's folders exceeded the quota; they were emptied")
            truncated = truncated or col.truncated
            if col.over_limit and status == CellStatus.OK:
                status = CellStatus.LIMIT_EXCEEDED
            if notes:
                sep = "" if not stderr or stderr.endswith("\n") else "\n"
                stderr = stderr + sep + "\n".join(notes) + "\n"
            return CellResult(status=status, stdout=stdout, stderr=stderr,
                              error=_error_from(resp.get("error")), images=col.images,
                              wall_s=time.perf_counter() - t0, truncated=truncated)
        finally:
            if session is None:
                for p in dirs.values():
                    wipe(p)


class Session:
    """A persistent namespace across the cells of one trajectory, served by one child process."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.id = uuid.uuid4().hex[:12]
        self.cells = 0
        self.dirs: dict[str, str] = {}
        self._worker: WorkerHandle | None = None
        self._generation = -1
        self._lock = threading.Lock()
        self.closed = False

    def _open(self, w: WorkerHandle) -> None:
        self.dirs = make_dirs(os.path.join(w.dir, f"s{self.id}"), w.cell_uid)
        w.call({"op": "session_open", "session": self.id, "dirs": self.dirs}, 30.0)
        self._generation = w.generation

    def run(self, code: str, images: Sequence[InputImage] = (), *,
            timeout: float | None = None) -> CellResult:
        check_timeout(timeout)
        with self._lock:
            if self.closed:
                raise RuntimeError("session is closed")
            if self._worker is None:
                self._worker = self.sandbox._pick_worker()
            w = self._worker
            with w.lock:
                if w.proc is None or w.proc.poll() is not None:
                    self.sandbox._pool.revive(w)
                note = ""
                if self._generation != w.generation:
                    if self._generation != -1:
                        note = "[sandbox] the session's worker was replaced; its state was reset\n"
                    try:
                        self._open(w)
                    except WorkerLost:
                        self.sandbox._pool.revive(w)
                        self._open(w)
                res = self.sandbox._execute(w, code, images, timeout, self)
            if note:
                res.stderr = note + res.stderr
            return res

    async def arun(self, code: str, images: Sequence[InputImage] = (), *,
                   timeout: float | None = None) -> CellResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.sandbox._get_executor(),
                                          lambda: self.run(code, images, timeout=timeout))

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            w = self._worker
            if w is None:
                return
            with w.lock:
                if self._generation == w.generation and w.proc is not None:
                    try:
                        w.call({"op": "session_close", "session": self.id}, 10.0)
                    except WorkerLost:
                        self.sandbox._pool.revive(w)
            if self.dirs:
                for p in self.dirs.values():
                    wipe(p)
                shutil.rmtree(os.path.dirname(self.dirs["in"]), ignore_errors=True)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "closed", True) and getattr(self, "_worker", None) is not None:
            try:
                self.close()
            except Exception:  # noqa: BLE001 - best effort at garbage collection
                pass


_shared: dict[str, Sandbox] = {}
_shared_lock = threading.Lock()


def get_sandbox(config: SandboxConfig | None = None) -> Sandbox:
    """The process-wide shared Sandbox for this config (shut down at exit)."""
    key = repr(config or SandboxConfig())
    with _shared_lock:
        sb = _shared.get(key)
        if sb is None:
            sb = _shared[key] = Sandbox(config)
        return sb


@atexit.register
def _close_shared() -> None:
    for sb in list(_shared.values()):
        sb.close()
