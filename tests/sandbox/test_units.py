"""Pieces that need no worker: PNG checks, the seccomp program, the compatibility rewrites, input naming."""

from __future__ import annotations

import io
import os
import struct
import time
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin
from sandbox_helpers import png_bytes

from sandbox import outputs, rewrite, seccomp
from sandbox.inputs import write_inputs


def _chunk(t: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + t + body + struct.pack(">I", zlib.crc32(t + body))


def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"])
def test_sanitize_keeps_pixels(mode: str) -> None:
    img = Image.new("RGB", (37, 23), "white")
    img.putpixel((5, 7), (200, 10, 30))
    img = img.convert(mode) if mode != "I;16" else img.convert("I").convert("I;16")
    clean, w, h = outputs.sanitize_png(_png(img), 10_000)
    assert (w, h) == (37, 23)
    back = Image.open(io.BytesIO(clean))
    back.load()
    assert back.size == (37, 23) and back.tobytes() == img.tobytes()


def test_sanitize_strips_text_chunks() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "x" * 5000)
    data = _png(Image.new("RGB", (4, 4)), pnginfo=info)
    assert b"tEXt" in data
    clean, _, _ = outputs.sanitize_png(data, 100)
    assert b"tEXt" not in clean and len(clean) < len(data)


def test_sanitize_rejections() -> None:
    good = _png(Image.new("L", (16, 16)))
    with pytest.raises(outputs.RejectedImage, match="CRC"):
        outputs.sanitize_png(good[:40] + bytes([good[40] ^ 1]) + good[41:], 10_000)
    with pytest.raises(outputs.RejectedImage, match="exceeds"):
        outputs.sanitize_png(good, 100)
    with pytest.raises(outputs.RejectedImage):
        outputs.sanitize_png(good[:-20], 10_000)
    with pytest.raises(outputs.RejectedImage):
        outputs.sanitize_png(b"GIF89a" + good, 10_000)
    # IHDR says 16x16 but the data inflates to far more: a lying bomb.
    big = zlib.compress(b"\0" * (17 * 4000))
    liar = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 0, 0, 0, 0))
            + _chunk(b"IDAT", big) + _chunk(b"IEND", b""))
    with pytest.raises(outputs.RejectedImage, match="beyond"):
        outputs.sanitize_png(liar, 10_000)
    # Valid CRCs around data that is not deflate.
    broken = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 0))
              + _chunk(b"IDAT", b"\x78\x9c\xff\xff\xff\xff") + _chunk(b"IEND", b""))
    with pytest.raises(outputs.RejectedImage, match="bad image data"):
        outputs.sanitize_png(broken, 10_000)



def test_sanitize_inflates_in_bounded_pieces() -> None:
    """Verifying a small file that declares a big image must not make the host hold the whole raw image."""
    import tracemalloc

    w = h = 4000  # RGBA 16-bit: 128 MB raw, a few hundred kB compressed
    comp = zlib.compressobj(9)
    row = b"\0" * (1 + w * 8)
    idat = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()
    data = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 6, 0, 0, 0))
            + _chunk(b"IDAT", idat[: len(idat) // 2]) + _chunk(b"IDAT", idat[len(idat) // 2:])
            + _chunk(b"IEND", b""))
    tracemalloc.start()
    try:
        _, got_w, got_h = outputs.sanitize_png(data, 50_000_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (got_w, got_h) == (w, h)
    assert peak < len(data) + (16 << 20), peak


def test_printed_path_flood_is_bounded(tmp_path, monkeypatch) -> None:
    """1 MiB of printed 'paths' must not cost the host one realpath (several lstat) each."""
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    Image.new("L", (2, 2)).save(out / "sub" / "late.png")
    flood = "".join(f"/x{i}/y " for i in range(60_000)) + "".join(f"{out}/sub/n{i}.png " for i in range(20_000))
    calls = {"realpath": 0, "lstat": 0}
    for name in calls:
        orig = getattr(os.path, name) if name == "realpath" else os.lstat

        def counted(*a, _orig=orig, _name=name, **k):
            calls[_name] += 1
            return _orig(*a, **k)

        monkeypatch.setattr(*((os.path, name) if name == "realpath" else (os, name)), counted)
    found = outputs.candidates(str(out), flood[: 1 << 20] + f" {out}/sub/late.png")
    monkeypatch.undo()
    assert calls["realpath"] < 5000 and calls["lstat"] < 20_000, calls
    assert found == [] or all(os.path.isfile(p) for p in found)


def _rebuild(chunks: list[tuple[bytes, bytes]]) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(_chunk(t, b) for t, b in chunks)


def _split(data: bytes) -> list[tuple[bytes, bytes]]:
    pos, out = 8, []
    while pos < len(data):
        n, t = struct.unpack(">I4s", data[pos:pos + 8])
        out.append((t, data[pos + 8:pos + 8 + n]))
        pos += 12 + n
    return out


def test_sanitize_rejects_what_decoders_choke_on() -> None:
    """Valid CRCs, but not decodable (PIL raised on each when they passed): never returned as verified."""
    gray = _split(_png(Image.new("L", (8, 4))))
    ihdr, idat, iend = gray[0], gray[1], gray[-1]
    raw = bytearray(zlib.decompress(idat[1]))
    raw[9] = 7  # the second row's filter byte
    pal = _split(_png(Image.new("P", (8, 4))))
    cases = {
        "second IHDR": [ihdr, idat, (b"IHDR", b"\0" * 5), iend],
        "invalid scanline filter": [ihdr, (b"IDAT", zlib.compress(bytes(raw))), iend],
        "without PLTE": [c for c in pal if c[0] != b"PLTE"],
        "not consecutive": [ihdr, (b"IDAT", idat[1][:5]), (b"gAMA", b"\0\0\0\1"), (b"IDAT", idat[1][5:]), iend],
        "declared size": [ihdr, (b"IDAT", zlib.compress(bytes(raw))[:-4]), iend],  # stream without its end
    }
    for why, chunks in cases.items():
        with pytest.raises(outputs.RejectedImage):
            outputs.sanitize_png(_rebuild(chunks), 10_000)
            pytest.fail(why)
    # Malformed ancillary chunks are dropped, not fatal.
    clean, _, _ = outputs.sanitize_png(_rebuild([ihdr, (b"gAMA", b"\1"), (b"tRNS", b"\0" * 6), idat, iend]), 100)
    assert [t for t, _ in _split(clean)] == [b"IHDR", b"IDAT", b"IEND"]


def test_sanitize_interlaced() -> None:
    w, h = 13, 7
    raw = b""
    for x0, y0, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                           (0, 1, 1, 2)]:
        pw, ph = (w - x0 + dx - 1) // dx, (h - y0 + dy - 1) // dy
        raw += (b"\x00" + b"\x80" * pw) * ph
    data = _rebuild([(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 1)), (b"IDAT", zlib.compress(raw)),
                     (b"IEND", b"")])
    clean, _, _ = outputs.sanitize_png(data, 1000)
    im = Image.open(io.BytesIO(clean))
    im.load()
    assert im.size == (w, h) and im.getextrema() == (0x80, 0x80)
    bad = bytearray(raw)
    bad[-(1 + w)] = 5  # the last pass's last row
    with pytest.raises(outputs.RejectedImage, match="filter"):
        outputs.sanitize_png(_rebuild([(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 1)),
                                       (b"IDAT", zlib.compress(bytes(bad))), (b"IEND", b"")]), 1000)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_sanitize_fuzz_valid_crcs(data) -> None:
    """Mutations behind valid CRCs (chunk bodies, order, copies, inflated rows): what passes decodes."""
    mode = data.draw(st.sampled_from(["L", "RGB", "RGBA", "P", "1", "LA"]))
    chunks = [list(c) for c in _split(_png(Image.new("RGB", (11, 6), "red").convert(mode)))]
    for _ in range(data.draw(st.integers(1, 3))):
        k = data.draw(st.integers(0, len(chunks) - 1))
        op = data.draw(st.sampled_from(["byte", "cut", "copy", "drop", "row"]))
        body = bytearray(chunks[k][1])
        if op == "byte" and body:
            body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del body[data.draw(st.integers(0, len(body))):]
        elif op == "copy":
            src = chunks[data.draw(st.integers(0, len(chunks) - 1))]
            chunks.insert(data.draw(st.integers(1, len(chunks))), list(src))
        elif op == "drop" and len(chunks) > 1:
            chunks.pop(k)
            continue
        elif op == "row" and chunks[k][0] == b"IDAT":
            try:
                raw = bytearray(zlib.decompress(bytes(body)))
            except zlib.error:
                raw = bytearray()
            if raw:
                raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
                body = bytearray(zlib.compress(bytes(raw)))
        if op in ("byte", "cut", "row"):
            chunks[k][1] = bytes(body)
    try:
        clean, w, h = outputs.sanitize_png(_rebuild([(t, bytes(b)) for t, b in chunks]), 10_000)
    except outputs.RejectedImage:
        return
    im = Image.open(io.BytesIO(clean))
    im.load()
    assert im.size == (w, h)

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_sanitize_fuzz(data) -> None:
    """Random corruption never escapes as anything but RejectedImage; what passes decodes."""
    raw = bytearray(png_bytes((20, 12)))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    try:
        clean, w, h = outputs.sanitize_png(bytes(raw), 10_000)
    except outputs.RejectedImage:
        return
    im = Image.open(io.BytesIO(clean))
    im.load()
    assert im.size == (w, h)


def test_seccomp_program_shape() -> None:
    prog = seccomp.build_filter(4242)
    assert len(prog) % 8 == 0 and 40 < len(prog) // 8 < 255
    code, _, _, k = struct.unpack("<HBBI", prog[:8])
    assert (code, k) == (0x20, 4)  # first: load the architecture
    assert struct.pack("<I", 4242) in prog and struct.pack("<I", (-4242) & 0xFFFFFFFF) in prog
    assert seccomp.build_filter(4242) == prog


def test_image_path_rewrite_keeps_line_numbers() -> None:
    code = "x = 1\nimage_path = 'C:/data/whatever.png'\nother = 'image_path'\ny = image_path\n1/0\n"
    ns: dict = {}
    with pytest.raises(ZeroDivisionError) as ei:
        exec(rewrite.compile_cell(code, "/real/in.png"), ns)
    assert ns["y"] == "/real/in.png" and ns["other"] == "image_path"
    assert ei.traceback[-1].lineno + 1 == 5


def test_input_names(tmp_path) -> None:
    jpg = io.BytesIO()
    Image.new("RGB", (3, 3)).save(jpg, format="JPEG")
    src = tmp_path / "photo.webp"
    src.write_bytes(b"RIFF0000WEBPxxxx")
    names = write_inputs([png_bytes(), jpg.getvalue(), src, Image.new("L", (2, 2))], str(tmp_path))
    assert names == ["image_1.png", "image_2.jpg", "image_3.webp", "image_4.png"]
    assert oct((tmp_path / "image_1.png").stat().st_mode & 0o777) == "0o444"


def test_seccomp_template_patch() -> None:
    assert seccomp.for_pid(seccomp.template(), 31337) == seccomp.build_filter(31337)


def test_seccomp_blocks_signals_by_descriptor_owner() -> None:
    """F_SETOWN/FIOSETOWN make the kernel signal another process for the cell (SIGIO, or any signal with
    F_SETSIG); without Landlock's signal scope (ABI < 6) seccomp alone must stop it. The target here is
    a sleeper of our own, the filter runs in a forked child."""
    import signal
    import subprocess

    sleeper = subprocess.Popen(["sleep", "30"])
    res_r, res_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only syscalls, then _exit
        code = 0
        try:
            from sandbox import _syscalls as sc

            sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
            seccomp.install(seccomp.build_filter(os.getpid()))
            import fcntl
            import socket
            import termios

            for how in ("fcntl", "fcntl_ex", "ioctl"):
                if how == "ioctl":  # FIOSETOWN acts on sockets (socketpair is allowed)
                    a, b = socket.socketpair()
                    r, w = a.detach(), b.detach()
                else:
                    r, w = os.pipe()
                try:
                    if how == "fcntl":
                        fcntl.fcntl(r, fcntl.F_SETOWN, sleeper.pid)
                    elif how == "fcntl_ex":
                        fcntl.fcntl(r, 15, struct.pack("ii", 1, sleeper.pid))  # F_SETOWN_EX, F_OWNER_PID
                    else:
                        fcntl.ioctl(r, 0x8901, struct.pack("i", sleeper.pid))  # FIOSETOWN
                    code |= {"fcntl": 1, "fcntl_ex": 2, "ioctl": 4}[how]
                    fcntl.fcntl(r, 10, signal.SIGKILL)  # F_SETSIG
                    fcntl.fcntl(r, fcntl.F_SETFL, os.O_ASYNC | os.O_NONBLOCK)
                    os.write(w, b"x")
                except OSError:
                    pass
            flags = fcntl.fcntl(res_w, fcntl.F_GETFL)  # ordinary fcntl/ioctl still work
            fcntl.ioctl(res_w, termios.FIONREAD, b"\0\0\0\0")
            code |= 0 if flags >= 0 else 8
        except BaseException:  # noqa: BLE001
            code |= 16
        os.write(res_w, bytes([code]))
        os._exit(0)
    os.close(res_w)
    try:
        code = os.read(res_r, 1)
        os.waitpid(pid, 0)
        time.sleep(0.2)
        alive = sleeper.poll() is None
        assert code == b"\0" and alive, (code, alive)
    finally:
        os.close(res_r)
        sleeper.kill()
        sleeper.wait()


def test_wipe_deep_tree_and_symlinks(tmp_path) -> None:
    from sandbox.pool import wipe

    outside = tmp_path / "outside"
    (outside / "keep").mkdir(parents=True)
    (outside / "keep" / "f").write_text("x")
    root = tmp_path / "root"
    root.mkdir()
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for i in range(1500):  # deeper than Python's recursion limit, and a path longer than PATH_MAX
        name = "e" * 200 if i % 100 == 0 else "ddd"
        os.mkdir(name, dir_fd=fd)
        if i % 300 == 0:
            os.symlink(outside / "keep", "link", dir_fd=fd)
            os.close(os.open("file", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
        sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = sub
    os.close(fd)
    (root / "sib").mkdir()
    wipe(str(root))
    assert os.listdir(root) == []
    assert (outside / "keep" / "f").read_text() == "x"
