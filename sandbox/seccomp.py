"""A hand-assembled seccomp-BPF filter for cell processes (no libseccomp needed).

Denied: exec, new processes (clone without CLONE_THREAD; clone3 gets ENOSYS so libc falls back to clone
for threads), sockets (stream socketpairs stay; no bind/connect/listen), SysV IPC, POSIX message queues,
memfd, inotify/fanotify watches, ptrace and cross-process memory access, namespace and mount syscalls,
xattr changes, signals / priorities / rlimits of any process but the cell itself, and a list of admin
syscalls. chmod/chown/utime families return success without acting. The cell's own pid is a constant in
the program, so the filter is assembled after fork (about 50 us).
"""

from __future__ import annotations

import ctypes
import errno
import struct

from . import _syscalls

AUDIT_ARCH_X86_64 = 0xC000003E
_X32_BIT = 0x40000000

# x86_64 syscall numbers.
_DENY = {
    "execve": 59, "execveat": 322, "fork": 57, "vfork": 58, "ptrace": 101, "socket": 41,
    "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "pidfd_open": 434,
    "pidfd_send_signal": 424, "pidfd_getfd": 438, "process_madvise": 440, "tkill": 200,
    "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "mount_setattr": 442, "name_to_handle_at": 303, "open_by_handle_at": 304, "keyctl": 250,
    "add_key": 248, "request_key": 249, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "kexec_load": 246,
    "kexec_file_load": 320, "init_module": 175, "finit_module": 313, "delete_module": 176,
    "reboot": 169, "swapon": 167, "swapoff": 168, "acct": 163, "settimeofday": 164,
    "clock_settime": 227, "iopl": 172, "ioperm": 173, "modify_ldt": 154, "uselib": 134,
    "syslog": 103, "quotactl": 179, "sethostname": 170, "setdomainname": 171, "migrate_pages": 256,
    "move_pages": 279, "personality": 135, "vhangup": 153,
}
# Landlock does not cover metadata changes; where a cell runs as the owner of host files (uid 0 without
# capabilities) these could touch them, so they "succeed" without doing anything (shutil.copy2 still works).
_FAKE_OK = {"chmod": 90, "fchmod": 91, "fchmodat": 268, "fchmodat2": 452, "chown": 92, "fchown": 93,
            "lchown": 94, "fchownat": 260, "utime": 132, "utimes": 235, "utimensat": 280, "futimesat": 261}
# Objects that outlive the cell or sit outside RLIMIT_AS: SysV IPC and POSIX message queues persist in the
# worker's (process mode: the host's) IPC namespace for the next cell to find; memfd pages are RAM that no
# address-space limit counts (256 fds x 64 MiB each).
_DENY.update({"shmget": 29, "shmat": 30, "shmctl": 31, "semget": 64, "semop": 65, "semctl": 66, "msgget": 68,
              "msgsnd": 69, "msgrcv": 70, "msgctl": 71, "semtimedop": 220, "mq_open": 240, "mq_unlink": 241,
              "memfd_create": 319, "memfd_secret": 447})
_DENY.update({"setxattr": 188, "lsetxattr": 189, "fsetxattr": 190, "removexattr": 197, "lremovexattr": 198,
              "fremovexattr": 199})
# Calls that take a pid first: allowed on the cell itself only (0 = self).
_SELF_ARG0 = {"tgkill": 234, "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297, "sched_setaffinity": 203,
              "sched_setparam": 142, "sched_setscheduler": 144, "sched_setattr": 314, "prlimit64": 302}
_SETPRIORITY, _IOPRIO_SET = 141, 251
# Naming a descriptor's owner makes the kernel signal that process for the cell (SIGIO/SIGURG, or any signal
# chosen with F_SETSIG): fcntl F_SETOWN / F_SETOWN_EX and ioctl FIOSETOWN / SIOCSPGRP are denied.
_FCNTL, _IOCTL = 72, 16
# socketpair stays for stream pairs only: a datagram/seqpacket pair can sendto() any unix socket by path
# (Landlock does not cover that), and bind/connect/listen would name or re-aim a pair.
_SOCKETPAIR, _SOCK_TYPE_MASK, _SOCK_STREAM = 53, 0xF, 1
_DENY.update({"connect": 42, "bind": 49, "listen": 50})
# Watches are not Landlock-checked: one on a host folder reports the names of files made there.
_DENY.update({"inotify_add_watch": 254, "fanotify_init": 300, "fanotify_mark": 301})
_F_SETOWN, _F_SETOWN_EX, _FIOSETOWN, _SIOCSPGRP = 8, 15, 0x8901, 0x8902
_CLONE, _CLONE3, _KILL = 56, 435, 62
CLONE_THREAD = 0x00010000
_NS_FLAGS = 0x7E020000 | 0x80  # CLONE_NEW{NS,CGROUP,UTS,IPC,USER,PID,NET} | CLONE_NEWTIME

_LD_ABS_W, _JEQ, _JGE, _JSET, _RET, _ALU_AND = 0x20, 0x15, 0x35, 0x45, 0x06, 0x54
RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
_OFF_NR, _OFF_ARCH, _OFF_ARG0 = 0, 4, 16


def supported() -> bool:
    return _syscalls.MACHINE == "x86_64"


def build_filter(own_pid: int) -> bytes:
    """Return the filter as packed sock_filter structs."""
    prog: list[tuple] = []  # (code, jt, jf, k) with jt/jf as label names or 0

    def ins(code: int, k: int, jt: object = 0, jf: object = 0) -> None:
        prog.append((code, jt, jf, k & 0xFFFFFFFF))

    def label(name: str) -> None:
        prog.append(("label", name))

    ins(_LD_ABS_W, _OFF_ARCH)
    ins(_JEQ, AUDIT_ARCH_X86_64, 0, "kill")
    ins(_LD_ABS_W, _OFF_NR)
    ins(_JGE, _X32_BIT, "eperm", 0)
    for nr in sorted(_DENY.values()):
        ins(_JEQ, nr, "eperm", 0)
    for nr in sorted(_FAKE_OK.values()):
        ins(_JEQ, nr, "fake_ok", 0)
    ins(_JEQ, _CLONE3, "enosys", 0)
    ins(_JEQ, _CLONE, "clone", 0)
    ins(_JEQ, _KILL, "kill_chk", 0)
    for nr in sorted(_SELF_ARG0.values()):
        ins(_JEQ, nr, "self_chk", 0)
    ins(_JEQ, _SETPRIORITY, "prio_chk", 0)
    ins(_JEQ, _IOPRIO_SET, "ioprio_chk", 0)
    ins(_JEQ, _FCNTL, "fcntl_chk", 0)
    ins(_JEQ, _IOCTL, "ioctl_chk", 0)
    ins(_JEQ, _SOCKETPAIR, "socketpair_chk", 0)
    ins(_RET, RET_ALLOW)
    label("socketpair_chk")  # the type's low bits (SOCK_NONBLOCK / SOCK_CLOEXEC sit above them)
    ins(_LD_ABS_W, _OFF_ARG0 + 8)
    ins(_ALU_AND, _SOCK_TYPE_MASK)
    ins(_JEQ, _SOCK_STREAM, "allow", "eperm")
    label("fcntl_chk")  # the command is an unsigned int: its low word is what the kernel reads
    ins(_LD_ABS_W, _OFF_ARG0 + 8)
    ins(_JEQ, _F_SETOWN, "eperm", 0)
    ins(_JEQ, _F_SETOWN_EX, "eperm", "allow")
    label("ioctl_chk")
    ins(_LD_ABS_W, _OFF_ARG0 + 8)
    ins(_JEQ, _FIOSETOWN, "eperm", 0)
    ins(_JEQ, _SIOCSPGRP, "eperm", "allow")
    label("prio_chk")  # setpriority(PRIO_PROCESS=0, self or 0, ...)
    ins(_LD_ABS_W, _OFF_ARG0)
    ins(_JEQ, 0, "self_arg1", "eperm")
    label("ioprio_chk")  # ioprio_set(IOPRIO_WHO_PROCESS=1, self or 0, ...)
    ins(_LD_ABS_W, _OFF_ARG0)
    ins(_JEQ, 1, "self_arg1", "eperm")
    label("self_arg1")
    ins(_LD_ABS_W, _OFF_ARG0 + 8)
    ins(_JEQ, 0, "allow", 0)
    ins(_JEQ, own_pid, "allow", "eperm")
    label("clone")
    ins(_LD_ABS_W, _OFF_ARG0)
    ins(_JSET, CLONE_THREAD, 0, "eperm")
    ins(_JSET, _NS_FLAGS, "eperm", "allow")
    label("kill_chk")
    ins(_LD_ABS_W, _OFF_ARG0)
    ins(_JEQ, 0, "allow", 0)
    ins(_JEQ, -own_pid, "allow", 0)
    label("self_chk")  # falls through from kill_chk
    ins(_LD_ABS_W, _OFF_ARG0)
    ins(_JEQ, 0, "allow", 0)
    ins(_JEQ, own_pid, "allow", "eperm")
    label("allow")
    ins(_RET, RET_ALLOW)
    label("eperm")
    ins(_RET, RET_ERRNO | errno.EPERM)
    label("fake_ok")
    ins(_RET, RET_ERRNO | 0)
    label("enosys")
    ins(_RET, RET_ERRNO | errno.ENOSYS)
    label("kill")
    ins(_RET, RET_KILL_PROCESS)

    # Resolve labels into relative forward jumps.
    pos: dict[str, int] = {}
    real: list[tuple] = []
    for item in prog:
        if item[0] == "label":
            pos[item[1]] = len(real)
        else:
            real.append(item)
    def rel(i: int, t: object) -> int:
        if isinstance(t, str):
            d = pos[t] - i - 1
            if not 0 <= d <= 255:
                raise ValueError("seccomp jump out of range")
            return d
        return int(t)  # type: ignore[call-overload]

    out = bytearray()
    for i, (code, jt, jf, k) in enumerate(real):
        out += struct.pack("<HBBI", code, rel(i, jt), rel(i, jf), k)
    return bytes(out)


_TEMPLATE_PID = 0x7EADBEEF  # placeholder no real pid takes (pid_max <= 2**22)


def template() -> bytes:
    """The filter with a placeholder pid, assembled once in the worker; see for_pid()."""
    return build_filter(_TEMPLATE_PID)


def for_pid(tmpl: bytes, pid: int) -> bytes:
    """Patch the cell's pid into a template: a byte replace instead of re-assembling after each fork."""
    def k(v: int) -> bytes:
        return struct.pack("<I", v & 0xFFFFFFFF)

    return tmpl.replace(k(_TEMPLATE_PID), k(pid)).replace(k(-_TEMPLATE_PID), k(-pid))


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(filter_bytes: bytes) -> None:
    """Load the filter into the calling thread (no_new_privs must already be set)."""
    buf = ctypes.create_string_buffer(filter_bytes, len(filter_bytes))
    prog = _SockFprog(len(filter_bytes) // 8, ctypes.addressof(buf))
    _syscalls.prctl(_syscalls.PR_SET_SECCOMP, _syscalls.SECCOMP_MODE_FILTER, ctypes.addressof(prog))
