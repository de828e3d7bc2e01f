"""Length-prefixed JSON frames between the host and its warm workers.

JSON only (never pickle): the worker side shares a namespace with hostile code, so everything it sends is
parsed as data. Frames are capped so a confused peer cannot make the other side allocate without bound.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

MAX_FRAME = 64 << 20
_HDR = struct.Struct(">I")


class ProtocolError(Exception):
    pass


class FrameTimeout(ProtocolError):
    pass


def encode(msg: dict[str, Any]) -> bytes:
    body = json.dumps(msg, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME:
        raise ProtocolError("frame too large")
    return _HDR.pack(len(body)) + body


def write_frame(fd: int, msg: dict[str, Any]) -> None:
    view = memoryview(encode(msg))
    while view:
        n = os.write(fd, view)
        view = view[n:]


def write_frame_until(fd: int, msg: dict[str, Any], deadline: float) -> None:
    """write_frame on a non-blocking fd whose reader may be hostile: give up at the deadline."""
    view = memoryview(encode(msg))
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    while view:
        try:
            view = view[os.write(fd, view):]
            continue
        except BlockingIOError:
            pass
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            raise FrameTimeout("timed out writing: peer does not read")


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    while n > 0:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FrameTimeout("timed out waiting for peer")
            poller = select.poll()  # poll, not select: host fds can exceed FD_SETSIZE
            poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
            if not poller.poll(left * 1000):
                raise FrameTimeout("timed out waiting for peer")
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError("peer closed the channel")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, deadline: float | None = None) -> dict[str, Any]:
    (size,) = _HDR.unpack(_read_exact(fd, _HDR.size, deadline))
    if size > MAX_FRAME:
        raise ProtocolError(f"frame of {size} bytes exceeds the cap")
    body = _read_exact(fd, size, deadline)
    try:
        msg = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise ProtocolError(f"bad frame: {type(e).__name__}") from None
    if not isinstance(msg, dict):
        raise ProtocolError("frame is not a JSON object")
    return msg
