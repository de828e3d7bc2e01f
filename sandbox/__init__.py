"""Isolated, warm, fast executor for model-written Python image code (V-Thinker conventions).

Quick use::

    from sandbox import Sandbox
    with Sandbox() as sb:
        r = sb.run("img = Image.open(image_path); img.rotate(90).save(processed_path); print(processed_path)",
                   [open("in.png", "rb").read()])
        r.status, r.stdout, r.images[0].png

Cell environment (fresh namespace per cell; a ``Session`` keeps it across cells):

- ``image_path`` = first input image (a read-only copy), ``image_path_1``, ``image_path_2``, ... for all
  inputs (1-based) and ``image_paths`` (list); ``output_dir`` = writable folder (also the working
  directory); ``processed_path`` = a fresh PNG file name inside it.
- Preloaded: ``Image``, ``ImageDraw``, ``ImageFont`` (PIL), ``np``/``numpy``, ``cv2``, ``math``, ``os``,
  ``matplotlib`` (Agg) and ``plt``. ``plt.show()`` saves every open figure not saved yet into output_dir
  (and prints its path) instead of blocking.
- Produced images = files saved in output_dir plus printed paths pointing there, in creation order,
  deduplicated; returned as PNG bytes after host-side header checks (see ``outputs``).

Compatibility rewrites of the original V-Thinker sandbox (applied to every cell, see ``rewrite``):

- a literal assignment ``image_path = "<any string>"`` is rewritten to the real input path;
- ``import cv`` / ``cv3`` / ``cv4`` (and those names used without import) mean ``cv2``;
- crop boxes are not clamped (PIL already pads out-of-range crops).

Isolation (auto-detected, see ``python -m sandbox doctor``): workers run in their own namespaces (mount with
a private read-only root, network, PID, IPC, UTS, cgroup) as uid 65534 where possible; each cell child adds
rlimits, Landlock (files, TCP, signals, abstract sockets), a seccomp filter (no exec, no new processes,
no sockets, no ptrace/namespaces, signals only to itself), its own session and a parent-death signal. The
host enforces the wall clock, output caps and image checks, and replaces dead workers.
"""

from .api import Sandbox, Session, get_sandbox
from .config import SandboxConfig
from .doctor import doctor
from .inputs import InputImage
from .pool import SandboxUnavailable
from .result import CellError, CellResult, CellStatus, OutputImage

__all__ = [
           "CellError",
           "CellResult",
           "CellStatus",
           "InputImage",
           "OutputImage",
           "Sandbox",
           "SandboxConfig",
           "SandboxUnavailable",
           "Session",
           "doctor",
           "get_sandbox",
]
