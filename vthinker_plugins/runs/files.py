"""File primitives of every run folder: safe names, atomic writes, durable appends and JSONL reading
that drops the line a kill cut short (the caller rewrites the file to repair it)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def slug(text: str, fallback: str = "sample") -> str:
    """``text`` made file-system safe and readable (runs of other characters become ``_``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("._") or fallback


def safe_name(key: str) -> str:
    """A file-system-safe, collision-free name for ``key`` (readable prefix + short hash of the raw key)."""
    key = str(key)
    return f"{slug(key)[:80]}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:8]}"


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` in one step: a kill leaves the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Replace a JSONL file with ``rows`` atomically."""
    atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def append_jsonl(path: str | Path, row: dict[str, Any]) -> None:
    """Append one row and make it durable before the caller reports it done."""
    with Path(path).open("a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


@dataclass
class JsonlRead:
    """What :func:`read_jsonl` found: the rows, and whether the file needs a rewrite to be clean."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    torn: bool = False  # the last line was cut short by a kill (dropped), or lacks its newline

    def latest(self) -> dict[str, dict[str, Any]]:
        """The latest row of each ``id``, in the file order of those latest rows."""
        latest: dict[str, dict[str, Any]] = {}
        for row in self.rows:
            latest.pop(str(row["id"]), None)
            latest[str(row["id"])] = row
        return latest

    @property
    def needs_repair(self) -> bool:
        """A torn line, or an id on several lines: rewrite the file with one line per id."""
        return self.torn or len(self.latest()) != len(self.rows)


def read_jsonl(path: str | Path, check: Callable[[Any], str | None], error: type[Exception] = ValueError,
               what: str = "row", fix: str = "fix or delete the file (or use --overwrite)") -> JsonlRead:
    """Read a JSONL file of rows with an ``id``. ``check(row)`` returns what is wrong with a row (or
    ``None``); bad lines raise ``error`` naming file and line, except a last line a kill cut short."""
    path = Path(path)
    found = JsonlRead()
    if not path.exists():
        return found
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    found.torn = bool(text) and not text.endswith("\n")
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if lineno == len(lines):  # the append a kill interrupted
                found.torn = True
                continue
            raise error(f"{path}:{lineno}: not a JSON {what}; {fix}") from None
        problem = check(row)
        if problem is not None:
            raise error(f"{path}:{lineno}: {problem}")
        found.rows.append(row)
    return found


def changed_settings(earlier: dict[str, Any], now: dict[str, Any], keys: Any) -> str | None:
    """``"key: old -> new, ..."`` for the ``keys`` whose value differs, or ``None`` when none does:
    the check that refuses to resume a run with other settings."""
    changed = sorted(k for k in keys if earlier.get(k) != now.get(k))
    if not changed:
        return None
    return ", ".join(f"{k}: {earlier.get(k)!r} -> {now.get(k)!r}" for k in changed)
