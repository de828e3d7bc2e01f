"""The public API: images in and out, V-Thinker conventions, errors, statuses, sessions, async, batch."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time

import pytest
from PIL import Image
from sandbox_helpers import assert_serves, png_bytes

from sandbox import CellResult, CellStatus, Sandbox, SandboxConfig, get_sandbox


def test_image_in_and_out(sb: Sandbox, tmp_path) -> None:
    src = tmp_path / "in.png"
    src.write_bytes(png_bytes((100, 80)))
    code = (
        "img = Image.open(image_path).convert('RGB')\n"
        "d = ImageDraw.Draw(img)\n"
        "d.line([(0, 79), (99, 0)], fill=(255, 0, 0), width=3)\n"
        "img.save(processed_path)\n"
        "print(processed_path)\n"
    )
    r = sb.run(code, [str(src)])
    assert r.ok, r.error
    assert len(r.images) == 1
    out = r.images[0]
    assert (out.width, out.height) == (100, 80)
    im = Image.open(io.BytesIO(out.png))
    assert im.format == "PNG" and im.size == (100, 80)
    assert im.convert("RGB").getpixel((50, 40))[0] > 200  # the red line is there
    assert r.stdout.strip().endswith(".png")


def test_inputs_of_every_kind(sb: Sandbox, tmp_path) -> None:
    p = tmp_path / "a.png"
    p.write_bytes(png_bytes((10, 10)))
    pil = Image.new("RGB", (30, 30), "blue")
    code = ("print([Image.open(p).size for p in (image_path_1, image_path_2, image_path_3)],"
            " image_path == image_path_1)")
    r = sb.run(code, [png_bytes((20, 20)), p, pil])
    assert r.ok, r.error
    assert r.stdout.strip() == "[(20, 20), (10, 10), (30, 30)] True"


def test_input_is_read_only(sb: Sandbox) -> None:
    r = sb.run("open(image_path, 'ab').write(b'x')", [png_bytes()])
    assert r.status == CellStatus.ERROR
    assert r.error.type in ("PermissionError", "OSError")


def test_plt_show_saves_and_order(sb: Sandbox) -> None:
    code = (
        "import time\n"
        "Image.open(image_path).save(processed_path)\n"
        "time.sleep(0.02)\n"
        "fig, ax = plt.subplots(figsize=(2, 2), dpi=50)\n"
        "ax.plot([0, 1], [1, 0])\n"
        "plt.show()\n"
        "fig2 = plt.figure(figsize=(1, 1), dpi=40)\n"
        "fig2.savefig(os.path.join(output_dir, 'second.png'))\n"
        "plt.show()\n"
    )
    r = sb.run(code, [png_bytes()])
    assert r.ok, r.error
    names = [i.name for i in r.images]
    assert names[0] == "processed_1.png"
    assert len(names) == 3 and "second.png" in names  # show() did not save fig2 twice
    assert [(i.width, i.height) for i in r.images[1:]] in ([(100, 100), (40, 40)], [(40, 40), (100, 100)])


def test_printed_path_in_subfolder_and_dedup(sb: Sandbox) -> None:
    code = (
        "os.makedirs(os.path.join(output_dir, 'sub'))\n"
        "p = os.path.join(output_dir, 'sub', 'x.png')\n"
        "Image.new('L', (5, 6)).save(p)\n"
        "print(p); print(p)\n"
        "print(image_path)\n"  # an input path is not an output
    )
    r = sb.run(code, [png_bytes()])
    assert r.ok, r.error
    assert [(i.name, i.width, i.height) for i in r.images] == [("sub/x.png", 5, 6)]


def test_non_png_outputs_are_reencoded(sb: Sandbox) -> None:
    r = sb.run("Image.new('RGB', (7, 9), 'red').save(os.path.join(output_dir, 'a.jpg'))")
    assert r.ok and len(r.images) == 1
    assert r.images[0].png.startswith(b"\x89PNG") and (r.images[0].width, r.images[0].height) == (7, 9)


def test_compat_rewrites(sb: Sandbox) -> None:
    code = (
        "image_path = '/data/whatever/original.jpg'\n"
        "import cv3\n"
        "img = cv3.imread(image_path)\n"
        "print(img.shape, cv4.__name__, cv.COLOR_BGR2GRAY == cv2.COLOR_BGR2GRAY)\n"
    )
    r = sb.run(code, [png_bytes((64, 48))])
    assert r.ok, r.error
    assert r.stdout.strip() == "(48, 64, 3) cv2 True"


def test_error_has_user_line_numbers(sb: Sandbox) -> None:
    code = "x = 1\n\ndef f(a):\n    return a / 0\n\nf(x)\n"
    r = sb.run(code)
    assert r.status == CellStatus.ERROR
    assert r.error.type == "ZeroDivisionError"
    assert r.error.traceback == ['  File "<cell>", line 6, in <module>', "    f(x)",
                                 '  File "<cell>", line 4, in f', "    return a / 0"]
    assert not any("sandbox" in line for line in r.error.traceback)


def test_syntax_error(sb: Sandbox) -> None:
    r = sb.run("x = 1\ny = (\n")
    assert r.status == CellStatus.ERROR and r.error.type == "SyntaxError"
    assert any("line 2" in t for t in r.error.traceback)


def test_exit_codes(sb: Sandbox) -> None:
    assert sb.run("import sys; print('a'); sys.exit(0)").ok
    r = sb.run("import sys; sys.exit(3)")
    assert r.status == CellStatus.ERROR and r.error.type == "SystemExit"
    r = sb.run("os._exit(5)")
    assert r.status == CellStatus.ERROR


def test_stdout_and_stderr(sb: Sandbox) -> None:
    r = sb.run("import sys\nprint('out')\nprint('err', file=sys.stderr)\nprint('ünï')")
    assert r.stdout == "out\nünï\n" and r.stderr == "err\n"


def test_fresh_namespace_by_default(sb: Sandbox) -> None:
    assert sb.run("leftover = 1").ok
    r = sb.run("print(leftover)")
    assert r.status == CellStatus.ERROR and r.error.type == "NameError"


def test_session_persistence(sb: Sandbox) -> None:
    with sb.session() as s:
        r1 = s.run("img = Image.open(image_path); counter = 1; img.save(processed_path)",
                   [png_bytes((11, 12))])
        assert r1.ok and len(r1.images) == 1
        r2 = s.run("counter += 1; print(counter, img.size, image_path.endswith('.png'))")
        assert r2.ok, r2.error
        assert r2.stdout.strip() == "2 (11, 12) True"
        assert r2.images == []  # the earlier image is not reported again
        r3 = s.run("print(processed_path.endswith('processed_3.png'))")
        assert r3.stdout.strip() == "True"
        # A timeout resets the session but does not break it.
        r4 = s.run("while True: pass", timeout=1.0)
        assert r4.status == CellStatus.TIMEOUT
        r5 = s.run("print('counter' in globals())")
        assert r5.ok and r5.stdout.strip() == "False" and "reset" in r5.stderr
    with pytest.raises(RuntimeError):
        s.run("print(1)")


def test_result_round_trip(sb: Sandbox) -> None:
    r = sb.run("Image.new('RGB', (3, 4)).save(processed_path); print('hi')")
    d = json.loads(json.dumps(r.to_dict()))
    back = CellResult.from_dict(d)
    assert back.status == r.status and back.images[0].png == r.images[0].png and back.stdout == "hi\n"
    slim = r.to_dict(include_images=False)
    assert "png_b64" not in slim["images"][0]


def test_async_and_batch(sb: Sandbox) -> None:
    cells = [(f"print({i} * 2)", []) for i in range(12)]
    results = sb.run_batch(cells)
    assert [r.stdout.strip() for r in results] == [str(i * 2) for i in range(12)]

    async def main() -> list:
        one = await sb.arun("print('a')")
        many = await sb.arun_batch(cells[:4])
        with sb.session() as s:
            await s.arun("z = 5")
            z = await s.arun("print(z)")
        return [one, *many, z]

    out = asyncio.run(main())
    assert [r.stdout.strip() for r in out] == ["a", "0", "2", "4", "6", "5"]


def test_threads_share_the_pool(sb: Sandbox) -> None:
    errors: list = []

    def worker(i: int) -> None:
        for j in range(5):
            r = sb.run(f"print({i} + {j})")
            if r.stdout.strip() != str(i + j):
                errors.append((i, j, r.status, r.stdout))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_threads_inside_cells_work(sb: Sandbox) -> None:
    code = (
        "import threading\n"
        "out = []\n"
        "ts = [threading.Thread(target=out.append, args=(i,)) for i in range(8)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "a = np.random.rand(300, 300); print(len(out), (a @ a).shape)\n"
    )
    r = sb.run(code)
    assert r.ok, r.error
    assert r.stdout.strip() == "8 (300, 300)"


def test_too_many_output_images(sb: Sandbox) -> None:
    r = sb.run("for i in range(20): Image.new('L', (2, 2)).save(os.path.join(output_dir, f'{i:02d}.png'))")
    assert r.status == CellStatus.LIMIT_EXCEEDED and r.truncated
    assert len(r.images) == 16


def test_report_and_config_errors() -> None:
    with pytest.raises(ValueError):
        SandboxConfig(isolation="bogus")
    sb = get_sandbox(SandboxConfig(workers=1))
    assert sb is get_sandbox(SandboxConfig(workers=1))
    rep = sb.report
    for layer in ("namespaces", "landlock", "seccomp", "rlimits", "uid"):
        assert layer in rep
    assert_serves(sb)


def test_dead_worker_is_replaced() -> None:
    import os
    import signal

    from sandbox_helpers import descendants

    with Sandbox(SandboxConfig(workers=2)) as sb:
        sb.start()
        with sb.session() as s:
            assert s.run("k = 1").ok
            for w in sb._pool.workers:  # killed from outside while idle
                for pid in [w.proc.pid, *descendants(w.proc.pid)]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass  # already gone with its parent
            for w in sb._pool.workers:
                w.proc.wait(5)
            assert [r.stdout for r in sb.run_batch([("print(1)", [])] * 4)] == ["1\n"] * 4
            r = s.run("print('k' in globals())")
            assert r.ok and r.stdout == "False\n" and "reset" in r.stderr


def test_forked_host_gets_its_own_pool(sb: Sandbox) -> None:
    import os

    assert_serves(sb)
    before = [w.proc.pid for w in sb._pool.workers]
    pid = os.fork()
    if pid == 0:  # the child uses the sandbox, exits, and must not disturb the parent's workers
        code = 0
        try:
            r = sb.run("print(5)")
            code = 0 if r.stdout == "5\n" and sb._pool.workers[0].proc.pid not in before else 3
            sb.close()
        except BaseException:  # noqa: BLE001
            code = 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert [w.proc.pid for w in sb._pool.workers] == before
    assert_serves(sb)


def test_session_child_that_stops_listening(sb: Sandbox) -> None:
    """A session cell that hijacks its command channel only hurts its own session."""
    with sb.session() as s:
        # The child's own command loop will never read again.
        r = s.run("import sandbox.protocol as p, time\np.read_frame = lambda *a, **k: time.sleep(3600)")
        assert r.ok
        big = "x = 1\n" + "# pad\n" * 40000  # larger than a pipe buffer: the worker's write would block
        t0 = time.monotonic()
        r = s.run(big, timeout=1.0)
        assert r.status == CellStatus.TIMEOUT and time.monotonic() - t0 < 6  # margin for a loaded CI machine
        r = s.run("print('fresh state', 'x' in globals())")
        assert r.ok and r.stdout == "fresh state False\n"
    assert_serves(sb)


def test_opencv_out_of_memory_is_a_limit(sb: Sandbox) -> None:
    r = sb.run("a = cv2.resize(np.zeros((10, 10, 3), np.uint8), (30000, 30000))")
    assert r.status == CellStatus.LIMIT_EXCEEDED, (r.status, r.error)
    r = sb.run("raise cv2.error('bad argument')")
    assert r.status == CellStatus.ERROR


def test_errors_on_very_long_lines(sb: Sandbox) -> None:
    """The source line in a traceback (or a SyntaxError's text) was unbounded: past 1 MiB the result frame was
    dropped and the failing cell came back as ok."""
    big = "a" * 1_500_000
    r = sb.run(f"x = '{big}'; 1/0")
    assert r.status == CellStatus.ERROR and r.error.type == "ZeroDivisionError", (r.status, r.error)
    r = sb.run(f"x = '{big}' +")
    assert r.status == CellStatus.ERROR and r.error.type == "SyntaxError", (r.status, r.error)
    assert all(len(line) <= 4100 for line in r.error.traceback)
    r = sb.run("b = b'{\"error\": null, \"pad\": \"' + b'x' * (2 << 20) + b'\"}'\n"
               "os.write(4, len(b).to_bytes(4, 'big') + b)\nimport time; time.sleep(1)\n")
    assert r.status == CellStatus.ERROR, (r.status, r.error)  # a result frame past the cap is no 'ok'


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0, -1.0, "soon"])
def test_bad_timeout_is_a_clear_error(sb: Sandbox, bad) -> None:
    with pytest.raises(ValueError, match="timeout"):
        sb.run("print(1)", timeout=bad)
    with sb.session() as s, pytest.raises(ValueError, match="timeout"):
        s.run("print(1)", timeout=bad)
    assert_serves(sb)


@pytest.mark.parametrize("mode", ["bwrap", "unshare", "process"])
def test_interpreter_reached_through_a_linked_folder_imports_in_cells(mode, tmp_path) -> None:
    """A venv reached through a symlinked folder (e.g. a second checkout reusing another's ``.venvs``) imports
    lazily inside cells: cells see real paths only, so the workers run the venv from its real folder."""
    import os
    import sys

    from sandbox_helpers import mode_config

    from sandbox import SandboxUnavailable

    venv = os.path.realpath(sys.prefix)
    link = tmp_path / "linked-venvs" / "main"
    link.parent.mkdir()
    link.symlink_to(venv, target_is_directory=True)
    exe = os.path.basename(sys.executable)
    config = mode_config(mode, python=str(link / "bin" / exe), workers=1, wall_time_s=10.0)
    assert config.interpreter == os.path.join(venv, "bin", exe)
    with Sandbox(config) as s:
        try:
            s.start()
        except SandboxUnavailable as e:
            pytest.skip(f"{mode} isolation unavailable here: {e}")
        # numpy.random is not preloaded: its import walks the venv's import paths from inside the cell.
        r = s.run("import sys\nprint('numpy.random' in sys.modules)\nimport numpy.random\nprint(sys.prefix)")
    assert r.ok, r.error
    assert r.stdout.split() == ["False", venv]
