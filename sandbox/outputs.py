"""Collecting the images a cell produced, without trusting anything the cell wrote.

Files are opened with O_NOFOLLOW, must be regular with a single link, are read up to the byte budget, and
their declared size is checked before any pixel is decoded. PNGs are verified chunk by chunk (CRCs, IHDR,
an inflate bounded by the size IHDR promises) and rebuilt from their critical chunks; other formats, or all
of them with ``reencode=True``, are decoded with PIL and re-encoded as PNG.
"""

from __future__ import annotations

import io
import os
import re
import stat
import struct
import zlib
from dataclasses import dataclass

from .result import OutputImage

PNG_SIG = b"\x89PNG\r\n\x1a\n"
_KEEP = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"pHYs", b"sBIT", b"bKGD"}
_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_IMAGE_EXT = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
_INFLATE_STEP = 1 << 20
_MAX_PRINTED = 1024
_PATH_RE = re.compile(r"(/[^\s\x00'\"<>|,;()\[\]{}]+)")  # no NUL: the host's lstat raises ValueError on it


class RejectedImage(Exception):
    pass


@dataclass
class Collected:
    images: list[OutputImage]
    notes: list[str]
    truncated: bool
    over_limit: bool


def _expected_raw_size(w: int, h: int, depth: int, color: int, interlace: int) -> int:
    bits = depth * _CHANNELS[color]

    def rows(pw: int, ph: int) -> int:
        return 0 if pw == 0 or ph == 0 else ph * (1 + (pw * bits + 7) // 8)

    if not interlace:
        return rows(w, h)
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
              (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]  # Adam7: x0, y0, dx, dy
    return sum(rows((w - x0 + dx - 1) // dx if w > x0 else 0, (h - y0 + dy - 1) // dy if h > y0 else 0)
               for x0, y0, dx, dy in passes)


def _row_segments(w: int, h: int, depth: int, color: int, interlace: int) -> list[tuple[int, int, int]]:
    """(start, end, row length) of each pass's scanlines in the raw data; every row starts with a filter byte."""
    bits = depth * _CHANNELS[color]
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)] \
        if interlace else [(0, 0, 1, 1)]
    out, start = [], 0
    for x0, y0, dx, dy in passes:
        pw = (w - x0 + dx - 1) // dx if w > x0 else 0
        ph = (h - y0 + dy - 1) // dy if h > y0 else 0
        if pw and ph:
            row = 1 + (pw * bits + 7) // 8
            out.append((start, start + ph * row, row))
            start += ph * row
    return out


# Lengths an ancillary chunk must have to be kept (others are dropped, not rejected): decoders choke on them.
_ANCILLARY_LEN = {b"gAMA": (4,), b"cHRM": (32,), b"sRGB": (1,), b"pHYs": (9,), b"sBIT": (1, 2, 3, 4),
                  b"bKGD": (1, 2, 6)}


def sanitize_png(data: bytes, max_pixels: int) -> tuple[bytes, int, int]:
    """Validate a PNG without decoding pixels and return (clean bytes, width, height).

    Besides CRCs and the inflated size: one IHDR, consecutive IDATs, a palette where one is needed, a valid
    filter byte on every scanline, so that what passes also decodes.
    """
    if not data.startswith(PNG_SIG):
        raise RejectedImage("not a PNG")
    pos, kept, idat = len(PNG_SIG), [PNG_SIG], []
    w = h = 0
    ihdr = None
    last = b""
    palette = 0
    while True:
        if pos + 8 > len(data):
            raise RejectedImage("truncated PNG")
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > len(data) or not ctype.isalpha():
            raise RejectedImage("malformed PNG chunk")
        body = data[pos + 8:pos + 8 + length]
        if zlib.crc32(ctype + body) != struct.unpack(">I", data[end - 4:end])[0]:
            raise RejectedImage(f"bad CRC in {ctype.decode('latin-1')} chunk")
        keep = ctype in _KEEP
        if ihdr is None:
            if ctype != b"IHDR" or length != 13:
                raise RejectedImage("PNG does not start with IHDR")
            w, h, depth, color, comp, filt, interlace = struct.unpack(">IIBBBBB", body)
            if w == 0 or h == 0 or color not in _DEPTHS or depth not in _DEPTHS[color] or comp or filt \
                    or interlace > 1:
                raise RejectedImage("invalid IHDR")
            if w * h > max_pixels:
                raise RejectedImage(f"declared size {w}x{h} exceeds {max_pixels} pixels")
            ihdr = (depth, color, interlace)
        elif ctype == b"IHDR":
            raise RejectedImage("second IHDR")
        elif ctype == b"IDAT" and idat and last != b"IDAT":
            raise RejectedImage("IDAT chunks are not consecutive")
        elif ctype == b"PLTE":
            if palette or idat or length % 3 or not 0 < length <= 768 or ihdr[1] in (0, 4):
                raise RejectedImage("invalid PLTE")
            palette = length // 3
        elif keep and ctype not in (b"IDAT", b"IEND"):  # ancillary: dropped unless well-formed, before IDAT
            sizes = _ANCILLARY_LEN.get(ctype)
            if ctype == b"tRNS":
                ok = (length == 2 if ihdr[1] == 0 else length == 6 if ihdr[1] == 2
                      else 0 < length <= palette if ihdr[1] == 3 else False)
            else:
                ok = sizes is not None and length in sizes
            keep = ok and not idat
        if ctype == b"IDAT":
            if ihdr[1] == 3 and not palette:
                raise RejectedImage("palette image without PLTE")
            idat.append(body)
        if keep:
            kept.append(data[pos:end])
        last = ctype
        pos = end
        if ctype == b"IEND":
            break
    if not idat or ihdr is None:
        raise RejectedImage("PNG has no image data")
    expected = _expected_raw_size(w, h, *ihdr)
    rows = _row_segments(w, h, *ihdr)
    d = zlib.decompressobj()
    got = 0
    for chunk in idat:
        # In pieces of at most _INFLATE_STEP: the raw image (up to max_pixels x 8 bytes) is never held whole.
        while True:
            try:
                piece = d.decompress(chunk, min(_INFLATE_STEP, expected + 1 - got))
            except zlib.error as e:
                raise RejectedImage(f"bad image data: {e}") from None
            n = len(piece)
            if got + n > expected:
                raise RejectedImage("image data inflates beyond the declared size")
            for start, stop, row in rows:  # filter bytes (0-4) that fall in this piece
                lo, hi = max(got, start), min(got + n, stop)
                if lo < hi:
                    first = start + -(-(lo - start) // row) * row
                    if first < hi and max(piece[first - got:hi - got:row]) > 4:
                        raise RejectedImage("invalid scanline filter")
            got += n
            chunk = d.unconsumed_tail
            if not n:
                break
    if got != expected or not d.eof:
        raise RejectedImage("image data does not match the declared size")
    return b"".join(kept), w, h


def reencode(data: bytes, max_pixels: int) -> tuple[bytes, int, int]:
    """Header check with PIL (lazy open reads no pixels), then decode and write a fresh PNG."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data), formats=["PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"]) as im:
            w, h = im.size
            if w * h > max_pixels or w <= 0 or h <= 0:
                raise RejectedImage(f"declared size {w}x{h} exceeds {max_pixels} pixels")
            im.seek(0)
            im.load()
            if im.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I"):
                im = im.convert("RGBA" if "A" in im.mode else "RGB")
            out = io.BytesIO()
            im.save(out, format="PNG", compress_level=1)
            return out.getvalue(), w, h
    except RejectedImage:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder failure means "not a usable image"
        raise RejectedImage(f"{type(e).__name__}: {e}") from None


def _open_beneath(root: str, rel: str) -> int:
    """Open root/rel without following any symlink on the way (a live session child could swap one in)."""
    parts = [p for p in rel.split(os.sep) if p not in ("", ".")]
    if not parts or ".." in parts:
        raise RejectedImage("path outside the output folder")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for comp in parts[:-1]:
            nxt = os.open(comp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)


def _read_regular(root: str, rel: str, budget: int) -> bytes:
    fd = _open_beneath(root, rel)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RejectedImage("not a regular file")
        if st.st_nlink != 1:
            raise RejectedImage("file has several hard links")
        if st.st_size > budget:
            raise RejectedImage(f"file of {st.st_size} bytes exceeds the output byte budget")
        chunks, left = [], st.st_size + 1
        while left > 0:
            b = os.read(fd, min(left, 1 << 20))
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        data = b"".join(chunks)
        if len(data) > budget:
            raise RejectedImage("file grew beyond the output byte budget")
        return data
    finally:
        os.close(fd)


def snapshot(out_dir: str) -> dict[str, tuple[int, int]]:
    """(mtime, size) of every file in out_dir: a session reports only what a cell added or changed."""
    sigs = {}
    with os.scandir(os.path.realpath(out_dir)) as it:
        for e in it:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            sigs[e.path] = (st.st_mtime_ns, st.st_size)
    return sigs


def candidates(out_dir: str, stdout: str, before: dict[str, tuple[int, int]] | None = None) -> list[str]:
    """Files saved in out_dir plus printed paths that point inside it, in creation order, deduplicated.

    File times are coarse (one kernel tick), so ties fall back to the order paths were printed, then name.
    """
    real_out = os.path.realpath(out_dir)
    found: dict[str, tuple[int, float, str]] = {}
    printed: dict[str, int] = {}
    parents: dict[str, str] = {}  # a flood of printed "paths" costs at most _MAX_PRINTED realpath calls
    for m in _PATH_RE.finditer(stdout):
        p = os.path.normpath(m.group(1).rstrip(".:"))
        parent = parents.get(os.path.dirname(p))
        if parent is None:
            if len(parents) >= _MAX_PRINTED:
                continue
            parent = parents[os.path.dirname(p)] = os.path.realpath(os.path.dirname(p))
        if (parent == real_out or parent.startswith(real_out + os.sep)) and len(printed) < _MAX_PRINTED:
            printed.setdefault(os.path.join(parent, os.path.basename(p)), len(printed))

    def consider(path: str) -> None:
        try:
            st = os.lstat(path)
        except OSError:
            return
        if not stat.S_ISREG(st.st_mode) or (before and before.get(path) == (st.st_mtime_ns, st.st_size)):
            return
        found[path] = (st.st_mtime_ns, printed.get(path, float("inf")), path)

    with os.scandir(real_out) as it:
        for entry in it:
            if os.path.splitext(entry.name)[1].lower() in _IMAGE_EXT:
                consider(entry.path)
    for path in printed:
        if path not in found:
            consider(path)
    return sorted(found, key=lambda p: found[p])


def collect(out_dir: str, stdout: str, *, max_images: int, max_bytes: int, max_pixels: int,
            reencode_png: bool, before: dict[str, tuple[int, int]] | None = None) -> Collected:
    out_dir = os.path.realpath(out_dir)
    images: list[OutputImage] = []
    notes: list[str] = []
    truncated = over = False
    budget = max_bytes
    for path in candidates(out_dir, stdout, before):
        if len(images) >= max_images:
            notes.append(f"[sandbox] more than {max_images} output images; the rest were dropped")
            truncated = over = True
            break
        name = os.path.relpath(path, out_dir)
        try:
            data = _read_regular(out_dir, name, budget)
            budget -= len(data)
            if data.startswith(PNG_SIG) and not reencode_png:
                png, w, h = sanitize_png(data, max_pixels)
            else:
                png, w, h = reencode(data, max_pixels)
        except RejectedImage as e:
            notes.append(f"[sandbox] output {name} rejected: {e}")
            if "budget" in str(e):
                truncated = over = True
            continue
        except OSError as e:
            notes.append(f"[sandbox] output {name} unreadable: {e.strerror}")
            continue
        images.append(OutputImage(name=name, png=png, width=w, height=h))
    return Collected(images, notes, truncated, over)
