"""Isolated, warm, fast executor for model-written Python image code (V-Thinker conventions).

:class:`Sandbox` runs a cell of code on input images in a pool of warm, isolated workers and returns
its status, output and the images it saved as PNG; a ``Session`` keeps one namespace across cells.
Cells see the original V-Thinker sandbox's names (``image_path``, ``processed_path``, ...) and its
compatibility rewrites; ``python -m sandbox doctor`` reports the active isolation layers.

Usage, cell environment and isolation: sandbox/README.md.
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
