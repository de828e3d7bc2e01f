"""The hand-over between the ``vthinker`` model and the tasks' ``process_results``.

lmms-eval passes only the response text to ``process_results``; VTBench scoring also
needs the images the model drew. The model writes each finished trajectory (JSON +
PNGs, see :mod:`vthinker_plugins.runs.trajectory`) under its image folder and
registers it here under the doc's ``vthinker_key``; ``process_results`` (same
process, possibly another thread) looks it up. Records found on disk in the active
folder are used too, so runs resumed with lmms-eval's ``--use_cache`` still score
the images of cached responses.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from vthinker_plugins.runs.files import safe_name
from vthinker_plugins.runs.trajectory import load_record

_lock = threading.Lock()
_records: dict[str, dict[str, Any]] = {}
_roots: list[Path] = []


def activate(root: str | Path) -> Path:
    """Make ``root`` a folder where records are written (by the model) and searched (by scoring)."""
    path = Path(root).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    with _lock:
        if path not in _roots:
            _roots.insert(0, path)
    return path


def folder_for(root: str | Path, key: str) -> Path:
    """The folder of the record ``key`` under ``root``."""
    return Path(root) / safe_name(key)


#: What scoring needs from a record; the rest (round texts, timings) stays on disk only.
_KEPT_FIELDS = ("text", "answer", "generated_images", "record", "error", "n_tool_calls")


def register(key: str, record: dict[str, Any]) -> None:
    """Remember the record of ``key`` for this process (only the fields scoring reads)."""
    slim = {name: record.get(name) for name in _KEPT_FIELDS}
    with _lock:
        _records[key] = slim


def lookup(key: str | None) -> dict[str, Any] | None:
    """The trajectory record of ``key``: in memory first, then on disk in the active folders."""
    if not key:
        return None
    with _lock:
        record = _records.get(key)
        roots = list(_roots)
    if record is not None:
        return record
    for root in roots:
        record = load_record(folder_for(root, key))
        if record is not None:
            register(key, record)
            return record
    return None


def clear() -> None:
    """Forget every record and folder (tests)."""
    with _lock:
        _records.clear()
        _roots.clear()
