"""Landlock filesystem, TCP and scope rules through raw syscalls.

The ruleset is built once in the warm worker (paths are opened there) and every cell child only calls
landlock_restrict_self() on the inherited descriptor: a single syscall per cell.
"""

from __future__ import annotations

import ctypes
import os
import struct

from . import _syscalls

FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13
FS_TRUNCATE = 1 << 14
FS_IOCTL_DEV = 1 << 15
NET_BIND_TCP = 1
NET_CONNECT_TCP = 2
SCOPE_ABSTRACT_UNIX = 1
SCOPE_SIGNAL = 2

_RULE_PATH_BENEATH = 1
_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV


def abi_version() -> int:
    """Landlock ABI of the running kernel, 0 when unavailable."""
    try:
        return _syscalls.syscall("landlock_create_ruleset", None, 0, 1)  # LANDLOCK_CREATE_RULESET_VERSION
    except OSError:
        return 0


def _fs_mask(abi: int) -> int:
    mask = (1 << 13) - 1
    if abi >= 2:
        mask |= FS_REFER
    if abi >= 3:
        mask |= FS_TRUNCATE
    if abi >= 5:
        mask |= FS_IOCTL_DEV
    return mask


def open_paths(paths: list[str]) -> list[tuple[int, bool]]:
    """O_PATH descriptors for rule targets, opened while the worker may still traverse them (as root)."""
    out = []
    for p in paths:
        try:
            fd = os.open(p, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        out.append((fd, os.path.isdir(p)))
    return out


def build_ruleset(ro: list[tuple[int, bool]], rw: list[tuple[int, bool]], abi: int) -> int:
    """Create a ruleset allowing reads beneath `ro`, full access beneath `rw`, and no TCP at all."""
    if abi < 1:
        raise OSError(38, "Landlock is not available")
    fs = _fs_mask(abi)
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX | SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("<QQQ", fs, net, scoped)[: 8 if abi < 4 else 16 if abi < 6 else 24]
    buf = ctypes.create_string_buffer(attr, len(attr))
    fd = _syscalls.syscall("landlock_create_ruleset", buf, len(attr), 0)
    read = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
    write = fs & ~(FS_EXECUTE | FS_MAKE_CHAR | FS_MAKE_BLOCK | FS_MAKE_SOCK)
    for targets, access in ((ro, read), (rw, write)):
        for pfd, is_dir in targets:
            allowed = access & fs if is_dir else access & fs & _FILE_RIGHTS
            rule = ctypes.create_string_buffer(struct.pack("<Qi", allowed, pfd), 12)
            _syscalls.syscall("landlock_add_rule", fd, _RULE_PATH_BENEATH, rule, 0)
    return fd


def describe(abi: int) -> dict:
    return {"abi": abi, "fs": abi >= 1, "tcp": abi >= 4, "scopes": abi >= 6}


def restrict_self(ruleset_fd: int) -> None:
    _syscalls.syscall("landlock_restrict_self", ruleset_fd, 0)
