"""Runs one dangerous attack against a fresh sandbox; meant to run inside a PID namespace the test made.

Usage: python pidns_harness.py MODE ATTACK  ->  prints one JSON line with what the host side observed.
A canary process (same uid as the harness) must survive; if containment failed, the damage stays inside
the throw-away PID namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from sandbox import Sandbox, SandboxConfig, SandboxUnavailable

ATTACKS = {
    "kill_all": (
        "import signal\n"
        "for sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM):\n"
        "    try:\n"
        "        os.kill(-1, sig); print('SENT -1', sig)\n"
        "    except OSError as e:\n"
        "        print('denied', e.errno)\n"
        "for pid in range(1, 200):\n"
        "    if pid != os.getpid():\n"
        "        try:\n"
        "            os.kill(pid, signal.SIGKILL); print('KILLED', pid)\n"
        "        except OSError:\n"
        "            pass\n"
    ),
    # Bounded on purpose (at most 2**8 processes) in case containment failed.
    "fork_bomb": (
        "import time\n"
        "n = 0\n"
        "for i in range(8):\n"
        "    try:\n"
        "        if os.fork() == 0:\n"
        "            print('FORKED', flush=True); time.sleep(3); os._exit(0)\n"
        "        n += 1\n"
        "    except OSError as e:\n"
        "        print('denied', e.errno)\n"
        "import threading\n"
        "try:\n"
        "    import ctypes; libc = ctypes.CDLL(None, use_errno=True)\n"
        "    print('vfork', libc.syscall(58), 'clone', libc.syscall(56, 17, 0, 0, 0, 0))\n"  # SIGCHLD only
        "except OSError as e:\n"
        "    print('denied', e)\n"
    ),
    "signal_parent": (
        "import signal\n"
        "for sig in (signal.SIGSTOP, signal.SIGKILL):\n"
        "    for pid in (os.getppid(), 1):\n"
        "        try:\n"
        "            os.kill(pid, sig); print('SENT', pid, sig)\n"
        "        except OSError as e:\n"
        "            print('denied', e.errno)\n"
    ),
    # SIGIO/SIGURG from a descriptor's owner: the kernel sends the signal (here SIGKILL, via F_SETSIG) on the
    # cell's behalf to the pid or process group it named with F_SETOWN.
    "sigio": (
        "import fcntl, signal, time\n"
        "me = os.getpid()\n"
        "for target in [os.getppid(), 1] + list(range(2, 200)):\n"
        "    for owner in (target, -target):\n"
        "        if target == me:\n"
        "            continue\n"
        "        r, w = os.pipe()\n"
        "        try:\n"
        "            fcntl.fcntl(r, fcntl.F_SETOWN, owner)\n"
        "            fcntl.fcntl(r, 10, signal.SIGKILL)\n"  # F_SETSIG
        "            fcntl.fcntl(r, fcntl.F_SETFL, os.O_ASYNC | os.O_NONBLOCK)\n"
        "            os.write(w, b'x')\n"
        "        except OSError as e:\n"
        "            print('denied', owner, e.errno)\n"
        "        os.close(r); os.close(w)\n"
        "time.sleep(0.3)\n"
        "print('still here')\n"
    ),
}


def main() -> None:
    mode, attack = sys.argv[1], sys.argv[2]
    canary = subprocess.Popen(["sleep", "120"])
    out: dict = {"mode": mode, "attack": attack}
    isolation, tool = {"bwrap": ("namespaces", "bwrap"), "unshare": ("namespaces", "unshare"),
                       "process": ("process", "auto")}[mode]
    with Sandbox(SandboxConfig(workers=1, isolation=isolation, namespace_tool=tool, wall_time_s=5)) as sb:
        try:
            worker_pid = sb.start()._pool.workers[0].proc.pid
        except SandboxUnavailable as e:
            print(json.dumps({"unavailable": str(e)}))
            return
        r = sb.run(ATTACKS[attack])
        out.update(status=r.status.value, stdout=r.stdout, stderr=r.stderr[-2000:])
        time.sleep(0.3)
        after = sb.run("print(6 * 7)")
        out["serves"] = after.ok and after.stdout.strip() == "42"
        proc = sb._pool.workers[0].proc
        out["same_worker"] = proc is not None and proc.pid == worker_pid
    out["canary_alive"] = canary.poll() is None
    canary.kill()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
