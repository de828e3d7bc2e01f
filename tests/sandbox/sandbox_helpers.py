"""Helpers shared by the sandbox tests (a uniquely named module: several test folders have a conftest)."""

from __future__ import annotations

import io
import os
import shutil
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from sandbox import Sandbox, SandboxConfig  # noqa: E402

# Test id -> (isolation, namespace_tool)
MODES = {"bwrap": ("namespaces", "bwrap"), "unshare": ("namespaces", "unshare"),
         "process": ("process", "auto")}


def png_bytes(size: tuple[int, int] = (64, 48), color: str = "white") -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, color)
    ImageDraw.Draw(img).line([(0, 0), (size[0] - 1, size[1] - 1)], fill="black", width=2)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def descendants(pid: int) -> list[int]:
    """All live descendants of pid (host view of /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def assert_serves(sb: Sandbox) -> None:
    """The pool still runs an ordinary cell after whatever came before."""
    r = sb.run("print(6 * 7)")
    assert r.ok, (r.status, r.error, r.stderr)
    assert r.stdout.strip() == "42"


def mode_config(mode: str, **kw) -> SandboxConfig:
    """Config for one of MODES; skips the test when bwrap is not installed."""
    isolation, tool = MODES[mode]
    if tool == "bwrap" and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (Debian package bubblewrap)")
    return SandboxConfig(isolation=isolation, namespace_tool=tool, **kw)
