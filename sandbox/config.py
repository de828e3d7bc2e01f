"""Sandbox limits and knobs (one dataclass, safe defaults)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

ISOLATION_MODES = ("auto", "namespaces", "process")


@dataclass
class SandboxConfig:
    wall_time_s: float = 10.0
    # Memory the cell may map on top of the warm worker's baseline (RLIMIT_AS = baseline + this).
    memory_bytes: int = 2 << 30
    file_size_bytes: int = 64 << 20
    max_output_images: int = 16
    max_output_bytes: int = 64 << 20
    max_stdout_bytes: int = 1 << 20
    max_open_files: int = 256
    workers: int | None = None
    python: str | None = None
    isolation: str = "auto"
    # ---- additions beyond the documented API (keyword use recommended) ----
    # Total size and entry count of a cell's writable folders (output + scratch), checked every 0.2 s.
    disk_bytes: int = 256 << 20
    max_dir_entries: int = 4096
    # Declared size above which an output image is rejected before any pixel is decoded.
    max_image_pixels: int = 50_000_000
    # False: PNG outputs are checked chunk by chunk (CRC, IHDR, bounded inflate) and stripped of
    # ancillary chunks (2.3 ms for a 1024x1024 RGB output vs 21 ms to decode + re-encode it); True: every
    # output is decoded and re-encoded.
    reencode_png: bool = False
    # Extra read-only paths visible to cells (e.g. a font folder).
    extra_ro_paths: list[str] = field(default_factory=list)
    # Threads a cell may create (OpenBLAS, user threads); bounded further by memory_bytes.
    max_threads: int = 64
    # Preferred namespace tool: "auto" tries bubblewrap, then the unshare syscall.
    namespace_tool: str = "auto"
    # Folder for the workers' stderr logs (worker<i>.log), kept after close; None: inside the pool's
    # temporary folder, removed at close (a start failure then quotes the log's last lines).
    log_dir: str | None = None

    def __post_init__(self) -> None:
        if self.isolation not in ISOLATION_MODES:
            raise ValueError(f"isolation must be one of {ISOLATION_MODES}, got {self.isolation!r}")
        if self.namespace_tool not in ("auto", "bwrap", "unshare"):
            raise ValueError(f"namespace_tool must be auto, bwrap or unshare, got {self.namespace_tool!r}")
        if self.wall_time_s <= 0:
            raise ValueError("wall_time_s must be > 0")

    @property
    def n_workers(self) -> int:
        return max(1, self.workers if self.workers is not None else (os.cpu_count() or 1))

    @property
    def interpreter(self) -> str:
        """The workers' interpreter with the symlinks of its folder resolved, not of the file (a venv's
        ``python`` links to the base interpreter; the venv is found from the link's folder). Cells see real
        paths only: a venv reached through a linked folder would give import paths they cannot open."""
        exe = self.python or sys.executable
        return os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(exe))), os.path.basename(exe))
