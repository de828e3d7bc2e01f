"""Hostile cells, run under both isolation modes; containment is checked from the host side.

Every test ends by checking that the pool still serves an ordinary cell. Attacks that could hurt the host
if containment failed (kill(-1), fork bombs) live in test_pidns_attacks.py and run inside a PID namespace.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
import zlib

import pytest
from sandbox_helpers import assert_serves, descendants, png_bytes

from sandbox import CellStatus, Sandbox, SandboxConfig
from sandbox.pool import process_tree

SECRET = "VT-SECRET-7f3a9c"


def _text(r) -> str:
    return r.stdout + r.stderr + (str(r.error) if r.error else "")


@pytest.fixture
def secret_file(tmp_path):
    """A world-readable secret outside the cell's view, in a world-traversable folder."""
    os.chmod(tmp_path, 0o755)
    p = tmp_path / "secret.txt"
    p.write_text(SECRET)
    os.chmod(p, 0o644)
    return p


def test_network_to_host_loopback(any_sb: Sandbox) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    port = srv.getsockname()[1]
    accepted: list = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(srv.accept())
            except OSError:
                pass

    t = threading.Thread(target=accept)
    t.start()
    code = (
        "import socket\n"
        "ok = []\n"
        "for fam, addr in ((socket.AF_INET, ('127.0.0.1', PORT)), (socket.AF_INET6, ('::1', PORT))):\n"
        "    try:\n"
        "        s = socket.socket(fam); s.settimeout(1); s.connect(addr); ok.append(addr)\n"
        "    except OSError as e:\n"
        "        print('blocked', type(e).__name__, e.errno)\n"
        "try:\n"
        "    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "    u.sendto(b'x', ('127.0.0.1', PORT)); ok.append('udp')\n"
        "except OSError as e:\n"
        "    print('blocked udp', e.errno)\n"
        "print('connected', ok)\n"
    ).replace("PORT", str(port))
    try:
        r = any_sb.run(code)
    finally:
        stop.set()
        t.join()
        srv.close()
    assert not accepted
    assert "connected []" in r.stdout, _text(r)
    assert_serves(any_sb)


def test_read_host_files(any_sb: Sandbox, secret_file) -> None:
    code = (
        f"targets = [{str(secret_file)!r}, '/etc/hostname', '/etc/passwd', '/proc/1/environ',\n"
        "           '/root/.bashrc',\n"
        f"           {os.path.dirname(os.path.abspath(__file__))!r} + '/conftest.py']\n"
        "for t in targets:\n"
        "    try:\n"
        "        print('READ', t, open(t).read()[:200])\n"
        "    except OSError as e:\n"
        "        print('denied', t, type(e).__name__)\n"
        "import ctypes\n"
        "libc = ctypes.CDLL(None)\n"
        "libc.fopen.restype = ctypes.c_void_p\n"
        "f = libc.fopen(TARGET, b'r')\n"
        "if f:\n"
        "    buf = ctypes.create_string_buffer(256)\n"
        "    libc.fread(buf, 1, 255, ctypes.c_void_p(f)); print('CREAD', buf.value)\n"
        "else:\n"
        "    print('fopen denied')\n"
        "try:\n"
        "    print(sorted(os.listdir('/'))[:50])\n"
        "except OSError as e:\n"
        "    print('denied listdir')\n"
    ).replace("TARGET", repr(str(secret_file).encode()))
    r = any_sb.run(code)
    assert r.ok, _text(r)
    assert SECRET not in _text(r)
    assert "READ" not in r.stdout and "CREAD" not in r.stdout, r.stdout
    assert "fopen denied" in r.stdout
    assert_serves(any_sb)


def test_host_environment_secrets(secret_file) -> None:
    os.environ["VT_SECRET_TOKEN"] = SECRET
    try:
        with Sandbox(SandboxConfig(workers=1)) as sb:
            code = (
                "import glob\n"
                "print(dict(os.environ))\n"
                "for p in ['/proc/self/environ', f'/proc/{os.getppid()}/environ', '/proc/1/environ']"
                " + glob.glob('/proc/*/environ'):\n"
                "    try:\n"
                "        print(p, open(p, 'rb').read())\n"
                "    except OSError as e:\n"
                "        print('denied', p, e.errno)\n"
            )
            r = sb.run(code)
            assert SECRET not in _text(r)
            assert "VT_SECRET_TOKEN" not in _text(r)
            assert_serves(sb)
            # The worker processes themselves (and any wrapper in front of them) were started with
            # a cleared environment: read each one's environ from the host, where nothing hides it.
            # (A cell's process may have exited since the tree was listed: only the ones read count.)
            pids = [pid for w in sb._pool.workers if w.proc is not None for pid in process_tree(w.proc.pid)]
            read = 0
            for pid in pids:
                try:
                    with open(f"/proc/{pid}/environ", "rb") as f:
                        environ = f.read()
                except (ProcessLookupError, FileNotFoundError):
                    continue
                read += 1
                assert b"VT_SECRET_TOKEN" not in environ and SECRET.encode() not in environ, pid
            assert read, f"no live worker process to inspect among {pids}"
    finally:
        del os.environ["VT_SECRET_TOKEN"]


def test_write_outside_work_folder(any_sb: Sandbox, tmp_path) -> None:
    target_dir = tmp_path / "open"
    target_dir.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(target_dir, 0o777)
    victim = tmp_path / "victim.txt"
    victim.write_text("original")
    os.chmod(victim, 0o666)
    code = (
        f"for p in [{str(target_dir / 'new.txt')!r}, {str(victim)!r}, '/tmp/vt_escape.txt',"
        " '/dev/shm/vt_escape', '/var/tmp/vt_escape', os.path.join(os.path.dirname(output_dir), 'x')]:\n"
        "    try:\n"
        "        open(p, 'w').write('pwned'); print('WROTE', p)\n"
        "    except OSError as e:\n"
        "        print('denied', p, e.errno)\n"
        "for f in (os.chmod, os.chown):\n"
        "    try:\n"
        f"        f({str(victim)!r}, *((0o4777,) if f is os.chmod else (65534, 65534)))\n"
        "    except OSError as e:\n"
        "        print('denied', f.__name__, e.errno)\n"
    )
    st_before = os.stat(victim)
    r = any_sb.run(code, [png_bytes()])
    assert "WROTE" not in r.stdout, r.stdout
    assert victim.read_text() == "original"
    st = os.stat(victim)
    assert (st.st_mode, st.st_uid, st.st_gid) == (st_before.st_mode, st_before.st_uid, st_before.st_gid)
    assert not (target_dir / "new.txt").exists()
    assert not os.path.exists("/tmp/vt_escape.txt") and not os.path.exists("/var/tmp/vt_escape")
    assert_serves(any_sb)


def test_exec_and_subprocess(any_sb: Sandbox, tmp_path) -> None:
    os.chmod(tmp_path, 0o777)
    marker = tmp_path / "marker"
    code = (
        f"rc = os.system('touch {marker}'); print('system', rc)\n"
        "import subprocess\n"
        "try:\n"
        f"    subprocess.run(['touch', {str(marker)!r}]); print('RAN')\n"
        "except OSError as e:\n"
        "    print('denied', type(e).__name__)\n"
        "try:\n"
        "    os.execv('/bin/sh', ['sh', '-c', 'true']); print('EXEC')\n"
        "except OSError as e:\n"
        "    print('denied exec', e.errno)\n"
        "try:\n"
        "    import multiprocessing as mp; p = mp.Process(target=print); p.start(); p.join(); print('MP')\n"
        "except OSError as e:\n"
        "    print('denied mp', e.errno)\n"
    )
    r = any_sb.run(code)
    assert not marker.exists()
    assert "RAN" not in r.stdout and "EXEC" not in r.stdout and "MP" not in r.stdout, _text(r)
    assert_serves(any_sb)


def test_ptrace_and_namespaces(any_sb: Sandbox) -> None:
    code = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print('ptrace', libc.ptrace(16, os.getppid(), 0, 0), ctypes.get_errno())\n"  # PTRACE_ATTACH
        "print('unshare', libc.unshare(0x10000000), ctypes.get_errno())\n"  # CLONE_NEWUSER
        "print('mount', libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))\n"
    )
    r = any_sb.run(code)
    assert r.ok, _text(r)
    assert "ptrace -1" in r.stdout and "unshare -1" in r.stdout and "mount -1" in r.stdout
    assert_serves(any_sb)


def test_signal_the_parent(any_sb: Sandbox) -> None:
    pids_before = {w.proc.pid for w in any_sb._pool.workers}
    code = (
        "import signal\n"
        "for pid in (os.getppid(),):  # pid 1 and kill(-1): only in test_pidns_attacks.py\n"
        "    for sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM):\n"
        "        try:\n"
        "            os.kill(pid, sig); print('SENT', pid, sig)\n"
        "        except OSError as e:\n"
        "            print('denied', pid, e.errno)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    for _ in range(2):
        r = any_sb.run(code)
        assert "SENT" not in r.stdout, r.stdout
        assert r.status == CellStatus.KILLED  # it may kill itself
    assert {w.proc.pid for w in any_sb._pool.workers} == pids_before  # no worker had to be replaced
    assert_serves(any_sb)


def test_cpu_loop_ignoring_signals(any_sb: Sandbox) -> None:
    code = (
        "import signal\n"
        "for s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT, signal.SIGXCPU, signal.SIGHUP):\n"
        "    signal.signal(s, signal.SIG_IGN)\n"
        "signal.alarm(1)\n"
        "while True:\n"
        "    pass\n"
    )
    t0 = time.monotonic()
    r = any_sb.run(code, timeout=1.5)
    took = time.monotonic() - t0
    assert r.status == CellStatus.TIMEOUT, _text(r)
    assert took < 8.0  # well under 'forever', with margin for a loaded CI machine
    assert_serves(any_sb)


def test_sleeping_cell_times_out(any_sb: Sandbox) -> None:
    t0 = time.monotonic()
    r = any_sb.run("import time; print('start', flush=True); time.sleep(60)", timeout=1.0)
    assert r.status == CellStatus.TIMEOUT and time.monotonic() - t0 < 8.0  # vs a 60 s sleep
    assert r.stdout == "start\n"
    assert_serves(any_sb)


def test_memory_bomb(any_sb: Sandbox) -> None:
    # Bounded: if containment failed, it stops at 6 GiB and reports, without hurting a 24 GiB host.
    code = (
        "chunks = []\n"
        "for i in range(96):\n"
        "    chunks.append(bytearray(64 << 20))\n"
        "print('ALLOCATED', len(chunks) * 64, 'MiB')\n"
    )
    r = any_sb.run(code, timeout=30)  # generous: a loaded CI machine may fault pages in slowly
    assert r.status == CellStatus.LIMIT_EXCEEDED, _text(r)
    assert r.error.type == "MemoryError"
    assert "ALLOCATED" not in r.stdout
    assert_serves(any_sb)


def test_numpy_memory_bomb(any_sb: Sandbox) -> None:
    r = any_sb.run("a = np.ones((40000, 40000)); print('ALLOCATED', a.sum())", timeout=30)
    assert r.status == CellStatus.LIMIT_EXCEEDED and "ALLOCATED" not in r.stdout, _text(r)
    assert_serves(any_sb)


def test_huge_stdout(any_sb: Sandbox) -> None:
    t0 = time.monotonic()
    code = "import sys\nline = 'x' * 1023 + '\\n'\nfor _ in range(200 * 1024): sys.stdout.write(line)\n"
    r = any_sb.run(code)  # 200 MiB
    assert r.truncated
    assert len(r.stdout.encode()) <= any_sb.config.max_stdout_bytes
    assert r.status in (CellStatus.OK, CellStatus.TIMEOUT)
    assert time.monotonic() - t0 < 10
    assert_serves(any_sb)


def test_huge_file(any_sb: Sandbox) -> None:
    code = (
        "block = b'\\0' * (1 << 20)\n"
        "with open(os.path.join(output_dir, 'big.bin'), 'wb') as f:\n"
        "    for _ in range(1024):\n"
        "        f.write(block)\n"
        "print('WROTE 1 GiB')\n"
    )
    r = any_sb.run(code)
    assert r.status == CellStatus.LIMIT_EXCEEDED, _text(r)
    assert "WROTE" not in r.stdout
    # The host wiped the output folder afterwards.
    w = any_sb._pool.workers[0]
    assert all(not os.listdir(p) for p in w.cell_dirs.values())
    assert_serves(any_sb)


def test_too_many_files(any_sb: Sandbox) -> None:
    code = (
        "fs = []\n"
        "try:\n"
        "    for i in range(100000): fs.append(open(os.devnull))\n"
        "except OSError as e:\n"
        "    print('stopped at', len(fs), e.errno)\n"
    )
    r = any_sb.run(code)
    assert r.ok and "stopped at" in r.stdout
    assert int(r.stdout.split()[2]) < any_sb.config.max_open_files
    assert_serves(any_sb)


def _bomb_png(w: int, h: int) -> bytes:
    """A small PNG whose pixels inflate to w*h bytes (greyscale, all zero)."""
    raw = zlib.compressobj(9)
    row = b"\0" * (w + 1)
    parts = [raw.compress(row) for _ in range(h)]
    idat = b"".join(parts) + raw.flush()

    def chunk(t: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + t + body + struct.pack(">I", zlib.crc32(t + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return _bomb_png(30000, 30000)  # 900 Mpx, about 0.9 MB on disk


def test_decompression_bomb_default_guard(any_sb: Sandbox, bomb: bytes) -> None:
    r = any_sb.run("im = Image.open(image_path); im.load(); print('LOADED', im.size)", [bomb])
    assert r.status == CellStatus.ERROR and r.error.type == "DecompressionBombError", _text(r)
    assert_serves(any_sb)


def test_decompression_bomb_guard_lifted(any_sb: Sandbox, bomb: bytes) -> None:
    code = (
        "Image.MAX_IMAGE_PIXELS = None\n"
        "im = Image.open(image_path); im.load(); im2 = im.convert('RGB'); print('LOADED', im2.size)\n"
    )
    r = any_sb.run(code, [bomb], timeout=3)
    assert "LOADED" not in r.stdout
    # Depending on speed it runs out of memory or out of time; either way it is contained.
    assert r.status in (CellStatus.LIMIT_EXCEEDED, CellStatus.TIMEOUT, CellStatus.KILLED), _text(r)
    assert_serves(any_sb)


def test_output_bombs_rejected_by_header(any_sb: Sandbox, bomb: bytes) -> None:
    # A cell writes (1) the 900 Mpx bomb, (2) a PNG whose IHDR claims 100000x100000 over tiny data,
    # (3) a bomb it saves with PIL after lifting the guard, (4) one sane image.
    huge_header = _bomb_png(4, 4).replace(struct.pack(">II", 4, 4), struct.pack(">II", 100000, 100000))
    code = (
        f"open(os.path.join(output_dir, 'bomb.png'), 'wb').write(open(image_path, 'rb').read())\n"
        f"open(os.path.join(output_dir, 'liar.png'), 'wb').write({huge_header!r})\n"
        "Image.new('L', (10, 10)).save(os.path.join(output_dir, 'fine.png'))\n"
    )
    t0 = time.monotonic()
    r = any_sb.run(code, [bomb])
    assert time.monotonic() - t0 < 15  # decoding the bomb would take minutes
    assert [i.name for i in r.images] == ["fine.png"], _text(r)
    assert "bomb.png rejected" in r.stderr and "liar.png rejected" in r.stderr
    assert_serves(any_sb)


def test_output_symlink_and_hardlink_to_host_file(any_sb: Sandbox, secret_file) -> None:
    code = (
        f"os.symlink({str(secret_file)!r}, os.path.join(output_dir, 'leak.png'))\n"
        "try:\n"
        f"    os.link({str(secret_file)!r}, os.path.join(output_dir, 'hard.png')); print('LINKED')\n"
        "except OSError as e:\n"
        "    print('denied link', e.errno)\n"
    )
    r = any_sb.run(code)
    assert r.images == [] and SECRET not in _text(r)
    assert "LINKED" not in r.stdout
    assert_serves(any_sb)


def test_segfault(any_sb: Sandbox) -> None:
    r = any_sb.run("import ctypes\nprint('before', flush=True)\nctypes.string_at(0)\n")
    assert r.status == CellStatus.KILLED and "SIGSEGV" in r.error.message
    assert r.stdout == "before\n"
    assert_serves(any_sb)


def test_recursion_and_abort(any_sb: Sandbox) -> None:
    r = any_sb.run("def f(n): return f(n + 1)\nf(0)")
    assert r.status == CellStatus.ERROR and r.error.type == "RecursionError"
    assert len(r.error.traceback) <= 100
    r = any_sb.run("os.abort()")
    assert r.status == CellStatus.KILLED
    assert_serves(any_sb)


def test_thread_bomb(any_sb: Sandbox) -> None:
    code = (
        "import threading, time\n"
        "n = 0\n"
        "try:\n"
        "    for i in range(100000):\n"
        "        threading.Thread(target=time.sleep, args=(30,), daemon=True).start(); n += 1\n"
        "except (RuntimeError, MemoryError) as e:\n"
        "    print('stopped at', n)\n"
    )
    r = any_sb.run(code, timeout=4)
    assert "stopped at" in r.stdout or r.status in (CellStatus.LIMIT_EXCEEDED, CellStatus.TIMEOUT), _text(r)
    assert_serves(any_sb)


def test_no_stray_processes_after_attacks(any_sb: Sandbox) -> None:
    # Each worker slot: at most a supervisor, the worker and its spare child.
    assert_serves(any_sb)
    time.sleep(0.2)
    for w in any_sb._pool.workers:  # bwrap adds its own init; a just-killed cell may still be exiting
        for _ in range(40):
            if len(descendants(w.proc.pid)) <= 3:
                break
            time.sleep(0.05)
        assert len(descendants(w.proc.pid)) <= 3, descendants(w.proc.pid)


def test_disk_filling(any_sb: Sandbox) -> None:
    # Many files, each under the per-file limit: the folder quota stops it long before the wall clock.
    code = (
        "block = b'\\1' * (32 << 20)\n"
        "for i in range(40):  # bounded (1.25 GiB) in case containment failed\n"
        "    with open(os.path.join(os.environ['TMPDIR'], f'f{i}'), 'wb') as f:\n"
        "        f.write(block)\n"
        "print('WROTE', i)\n"
    )
    t0 = time.monotonic()
    r = any_sb.run(code, timeout=20)
    assert r.status == CellStatus.LIMIT_EXCEEDED and "WROTE" not in r.stdout, _text(r)
    assert time.monotonic() - t0 < 10
    r = any_sb.run("for i in range(5000): open(os.path.join(output_dir, f'{i}.txt'), 'w').close()")
    assert r.status == CellStatus.LIMIT_EXCEEDED, _text(r)
    w = any_sb._pool.workers[0]
    assert all(not os.listdir(p) for p in w.cell_dirs.values())
    assert_serves(any_sb)


def _freeze_worker(sb: Sandbox) -> list[int]:
    """SIGSTOP the only worker's whole process tree (a worker that never answers); returns its pids."""
    import signal

    sb.start()
    w = sb._pool.workers[0]
    tree = [w.proc.pid, *descendants(w.proc.pid)]
    for pid in tree:
        os.kill(pid, signal.SIGSTOP)
    return tree


def test_host_clock_when_the_worker_is_stuck() -> None:
    """Even a frozen worker cannot hold the caller: the host's own clock kills and replaces it."""
    with Sandbox(SandboxConfig(workers=1)) as sb:
        tree = _freeze_worker(sb)
        t0 = time.monotonic()
        r = sb.run("print(1)", timeout=0.5)
        assert r.status == CellStatus.TIMEOUT and "replaced" in r.error.message, r
        assert time.monotonic() - t0 < 6
        assert not any(os.path.exists(f"/proc/{p}") and _state(p) != "Z" for p in tree)
        assert_serves(sb)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


# ---- state a cell leaves behind, resources outside the limits, a hostile result channel ----------------

_IPC_KEY = 0x56540001


def _remove_host_ipc(key: int) -> None:
    """Process mode shares the host's IPC namespace: remove anything a failed containment left there."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for get, ctl, args in ((libc.shmget, libc.shmctl, (0, 0)), (libc.semget, libc.semctl, (0, 0)),
                           (libc.msgget, libc.msgctl, (0,))):
        ident = get(key, *args)
        if ident >= 0:
            ctl(ident, *(([0] if ctl is libc.semctl else []) + [0, None]))  # IPC_RMID = 0


def test_sysv_ipc_does_not_outlive_the_cell(any_sb: Sandbox) -> None:
    """SysV segments/queues/semaphores outlive their creator: the next cell must not find what one left."""
    code = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.shmat.restype = ctypes.c_void_p\n"
        "sid = libc.shmget(KEY, 4096, 0o1666)\n"  # IPC_CREAT | 0666
        "if sid >= 0:\n"
        "    a = libc.shmat(sid, None, 0)\n"
        "    print('SHM', ctypes.string_at(a, 12)); ctypes.memmove(a, b'LEFT-BEHIND!', 12)\n"
        "else:\n"
        "    print('denied shm', ctypes.get_errno())\n"
        "for name, args in (('msgget', (0o1666,)), ('semget', (1, 0o1666))):\n"
        "    r = getattr(libc, name)(KEY, *args)\n"
        "    print(('IPC ' if r >= 0 else 'denied ') + name)\n"
    ).replace("KEY", str(_IPC_KEY))
    try:
        first, second = any_sb.run(code), any_sb.run(code)
    finally:
        if any_sb._pool.ns_tool is None:
            _remove_host_ipc(_IPC_KEY)
    assert "LEFT-BEHIND" not in second.stdout, _text(second)
    for r in (first, second):
        assert r.ok and "SHM" not in r.stdout and "IPC" not in r.stdout, _text(r)
    assert_serves(any_sb)


def test_memfd_is_not_memory_outside_the_limit(any_sb: Sandbox) -> None:
    """memfd pages are not in the address space (RLIMIT_AS): 256 fds x 64 MiB would be 16 GiB of RAM."""
    limit_mib = any_sb.config.memory_bytes >> 20
    code = (
        "held = []\n"
        "try:\n"
        f"    for i in range({limit_mib // 64 + 8}):  # bounded: 512 MiB past the limit if uncontained\n"
        "        fd = os.memfd_create('m'); os.write(fd, b'\\1' * (64 << 20)); held.append(fd)\n"
        "except OSError as e:\n"
        "    print('stopped', e.errno)\n"
        "print('HELD', 64 * len(held))\n"
    )
    r = any_sb.run(code, timeout=30)
    held = [int(x.split()[1]) for x in r.stdout.splitlines() if x.startswith("HELD")]
    assert r.status in (CellStatus.OK, CellStatus.LIMIT_EXCEEDED), _text(r)
    assert not held or held[0] < limit_mib, _text(r)
    assert_serves(any_sb)


@pytest.mark.parametrize("layout", ["unlistable", "deep"])
@pytest.mark.parametrize("mode", ["bwrap", "unshare", "process"])
def test_folder_quota_sees_hidden_folders(mode: str, layout: str) -> None:
    """Files under a folder the worker cannot list (mode 0300) or reach by path (> PATH_MAX) still count."""
    from sandbox_helpers import mode_config

    from sandbox import SandboxUnavailable

    make = ("d = os.path.join(output_dir, 'h'); os.mkdir(d, 0o300); os.chdir(d)\n" if layout == "unlistable"
            else "os.chdir(output_dir)\nfor i in range(20):\n    os.mkdir('d' * 250); os.chdir('d' * 250)\n")
    code = (
        make + "import time\n"
        "for i in range(6):  # 96 MiB, bounded\n"
        "    open(f'f{i}', 'wb').write(b'\\1' * (16 << 20))\n"
        "time.sleep(1)\n"
        "print('WROTE 96 MiB')\n"
    )
    with Sandbox(mode_config(mode, workers=1, disk_bytes=32 << 20)) as sb:
        try:
            sb.start()
        except SandboxUnavailable as e:
            pytest.skip(f"{mode} unavailable here: {e}")
        r = sb.run(code)
        assert r.status == CellStatus.LIMIT_EXCEEDED and "WROTE" not in r.stdout, _text(r)
        w = sb._pool.workers[0]
        assert all(not os.listdir(p) for p in w.cell_dirs.values())
        assert_serves(sb)


def test_session_quota_across_quick_cells() -> None:
    """Each session cell is quick (under the 0.2 s poll): the folders still may not grow past the quota."""
    with Sandbox(SandboxConfig(workers=1, disk_bytes=32 << 20)) as sb, sb.session() as s:
        statuses = []
        for i in range(5):  # 5 x 12 MiB, bounded
            r = s.run(f"open(os.path.join(output_dir, 'f{i}'), 'wb').write(b'\\1' * (12 << 20))")
            statuses.append(r.status)
        assert CellStatus.LIMIT_EXCEEDED in statuses, statuses
        total = sum(os.path.getsize(os.path.join(s.dirs["out"], f)) for f in os.listdir(s.dirs["out"]))
        assert total <= 48 << 20, total
        assert_serves(sb)


def test_session_is_frozen_between_cells(any_sb: Sandbox) -> None:
    """A thread a session cell leaves running must not work (write files, burn CPU) between its cells."""
    with any_sb.session() as s:
        r = s.run(
            "import threading, time\n"
            "def bg():\n"
            "    for i in range(400):  # bounded: 400 small files over 20 s\n"
            "        open(os.path.join(output_dir, f'bg{i}.txt'), 'w').write('x'); time.sleep(0.05)\n"
            "threading.Thread(target=bg, daemon=True).start()\n"
            "time.sleep(0.2)\n"
        )
        assert r.ok, _text(r)
        time.sleep(0.1)
        n0 = len(os.listdir(s.dirs["out"]))
        time.sleep(1.0)
        n1 = len(os.listdir(s.dirs["out"]))
        assert n1 == n0, (n0, n1)
        r = s.run("time.sleep(0.3); print('alive')")  # the session (and its thread) go on while a cell runs
        assert r.ok and r.stdout == "alive\n", _text(r)
        assert len(os.listdir(s.dirs["out"])) > n1
    assert_serves(any_sb)


@pytest.mark.parametrize("body", [
    b'{"error": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # nesting beyond the JSON parser's recursion
    b'{"error": "not a dict"}',
    b'{"error": ["a", 1]}',
    b'{"error": {"type": ["x"], "errno": {"a": 1}, "message": 5}}',
    b'[1, 2, 3]',
    # Nested just within what the worker parses: the caller, deeper in its own stack, hit RecursionError.
    b'{"error": {"type": "x", "message": ' + b"[" * 980 + b"]" * 980 + b', "traceback": [[[1]]]}}',
])
def test_forged_result_frame(any_sb: Sandbox, body: bytes) -> None:
    """The result pipe is the cell's: garbage on it is the cell's error, never the worker's crash."""
    pids = [w.proc.pid for w in any_sb._pool.workers]
    code = f"b = {body!r}\nos.write(4, len(b).to_bytes(4, 'big') + b)\nimport time; time.sleep(1)\n"

    def deep(n: int):  # a caller some 150 frames down its own stack
        return any_sb.run(code) if n == 0 else deep(n - 1)

    for _ in range(len(pids)):  # reach every worker
        r = deep(150)
        assert r.status in (CellStatus.ERROR, CellStatus.OK), _text(r)
        assert "worker lost" not in _text(r), _text(r)
    assert [w.proc.pid for w in any_sb._pool.workers] == pids  # no worker had to be replaced
    assert_serves(any_sb)


def test_deep_folder_tree_is_wiped(any_sb: Sandbox) -> None:
    """1500 nested folders (within the entry quota) must not survive into the next cell, nor break the wipe
    (a recursive rmtree hit RecursionError: the caller got the exception, and so did every later cell)."""
    code = (
        "os.chdir(output_dir)\n"
        "for i in range(1500):\n"
        "    os.mkdir('d'); os.chdir('d')\n"
        "open('f.txt', 'w').write('x')\n"
        "print('deep')\n"
    )
    for _ in range(len(any_sb._pool.workers)):
        r = any_sb.run(code)
        assert r.ok and r.stdout == "deep\n", _text(r)
    for w in any_sb._pool.workers:
        assert all(not os.listdir(p) for p in w.cell_dirs.values())
    for _ in range(len(any_sb._pool.workers)):
        r = any_sb.run("print(os.listdir(output_dir), os.listdir(os.environ['TMPDIR']))")
        assert r.stdout == "[] []\n", _text(r)
    assert_serves(any_sb)


def test_png_with_valid_crcs_and_broken_deflate(any_sb: Sandbox) -> None:
    """The checker's own decompressor error (zlib.error) escaped: run() raised, and run_batch lost every
    other cell's result with it."""
    def chunk(t: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + t + body + struct.pack(">I", zlib.crc32(t + body))

    bad = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", b"\x78\x9c\xff\xff\xff\xff") + chunk(b"IEND", b""))
    code = f"open(os.path.join(output_dir, 'bad.png'), 'wb').write({bad!r}); print('wrote')"
    results = any_sb.run_batch([(code, []), ("print(6 * 7)", []), (code, []), ("print(6 * 7)", [])])
    assert [r.stdout for r in results] == ["wrote\n", "42\n"] * 2, [_text(r) for r in results]
    assert results[0].images == [] and "bad.png rejected" in results[0].stderr, _text(results[0])
    assert_serves(any_sb)


def test_host_clock_when_the_worker_is_stuck_and_the_cell_is_big() -> None:
    """A cell larger than a pipe buffer: the host's write to a frozen worker must give up too."""
    import signal

    with Sandbox(SandboxConfig(workers=1)) as sb:
        tree = _freeze_worker(sb)
        out: list = []
        code = "x = 1\n" + "# padding\n" * 30000  # 300 kB
        t = threading.Thread(target=lambda: out.append(sb.run(code, timeout=0.5)), daemon=True)
        t0 = time.monotonic()
        t.start()
        t.join(30)
        stuck = t.is_alive()
        if stuck:  # unblock the host's write so the thread can end
            for pid in tree:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            t.join(10)
        assert not stuck, "the caller hung on a frozen worker"
        assert out[0].status == CellStatus.TIMEOUT and time.monotonic() - t0 < 10, out
        assert_serves(sb)


def test_unix_datagrams_and_names_on_the_host(any_sb: Sandbox, tmp_path) -> None:
    """socketpair() stays, but a datagram pair could sendto() any host unix socket by path (process mode:
    syslog's /dev/log, journald, ...; Landlock does not cover it) and bind() could squat an abstract name."""
    os.chmod(tmp_path, 0o755)
    path = str(tmp_path / "host.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    os.chmod(path, 0o777)
    srv.settimeout(0.5)
    name = f"\0vt-test-{os.getpid()}"
    code = (
        "import socket\n"
        "for kind in (socket.SOCK_DGRAM, socket.SOCK_SEQPACKET, socket.SOCK_STREAM):\n"
        "    try:\n"
        "        a, b = socket.socketpair(socket.AF_UNIX, kind)\n"
        "    except OSError as e:\n"
        "        print('denied socketpair', kind, e.errno); continue\n"
        "    try:\n"
        f"        a.sendto(b'INJECTED', {path!r}); print('SENT', kind)\n"
        "    except OSError as e:\n"
        "        print('denied sendto', kind, e.errno)\n"
        "    try:\n"
        f"        a.bind({name + '-squat'!r}); print('BOUND', kind)\n"
        "    except OSError as e:\n"
        "        print('denied bind', kind, e.errno)\n"
        "a, b = socket.socketpair(); a.sendall(b'ok'); print('pair', b.recv(2))\n"
    )
    try:
        r = any_sb.run(code)
        try:
            got = srv.recv(100)
        except TimeoutError:
            got = None
    finally:
        srv.close()
    assert got is None, got
    assert r.ok and "SENT" not in r.stdout and "BOUND" not in r.stdout, _text(r)
    assert "pair b'ok'" in r.stdout, _text(r)  # the stream pair (asyncio's self-pipe) still works
    assert_serves(any_sb)


def test_watching_host_folders(any_sb: Sandbox, tmp_path) -> None:
    """inotify/fanotify are outside Landlock: a watch on a host folder (process mode: e.g. another worker's
    cell folders) reported the names of files made there."""
    os.chmod(tmp_path, 0o755)
    code = (
        "import ctypes, time\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "fd = libc.inotify_init1(0o4000)\n"  # IN_NONBLOCK
        f"wd = libc.inotify_add_watch(fd, {str(tmp_path).encode()!r}, 0xfff)\n"
        "print('watch', wd, ctypes.get_errno(), flush=True)\n"
        "print('fanotify', libc.fanotify_init(0, 0), ctypes.get_errno())\n"
        "time.sleep(1.5)\n"
        "buf = ctypes.create_string_buffer(4096)\n"
        "n = libc.read(fd, buf, 4096)\n"
        "print('EVENTS', buf.raw[:max(n, 0)])\n"
    )

    def create() -> None:
        time.sleep(0.7)
        (tmp_path / "name-seen-by-the-cell.txt").write_text("x")

    t = threading.Thread(target=create)
    t.start()
    r = any_sb.run(code)
    t.join()
    assert r.ok, _text(r)
    assert "name-seen" not in r.stdout and "watch -1" in r.stdout and "fanotify -1" in r.stdout, _text(r)
    assert_serves(any_sb)


def test_printed_path_with_nul(any_sb: Sandbox) -> None:
    """A printed 'path' with a NUL byte made the host's lstat raise ValueError: run() raised, run_batch lost
    every other cell's result with it."""
    code = "Image.new('L', (3, 3)).save(processed_path); print(os.path.join(output_dir, 'a\\0b.png'))"
    results = any_sb.run_batch([(code, []), ("print(6 * 7)", []), (code, []), ("print(6 * 7)", [])])
    assert [r.status for r in results] == [CellStatus.OK] * 4, [_text(r) for r in results]
    assert [len(r.images) for r in results] == [1, 0, 1, 0]
    assert_serves(any_sb)
