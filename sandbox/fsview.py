"""Which paths a cell may see, and the namespace root built from them.

The same list feeds the Landlock rules (every mode) and the bind mounts of the private root (namespace
mode): the interpreter's prefixes and import paths, a few system folders, nothing of the host's data.
"""

from __future__ import annotations

import os
import sys

from . import _syscalls as sc

SYSTEM_RO = ["/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin",
             "/etc/ld.so.cache", "/etc/fonts", "/etc/localtime", "/etc/mime.types"]
DEVICES_RW = ["/dev/null", "/dev/zero"]
DEVICES_RO = ["/dev/urandom", "/dev/random"]


def interpreter_paths(hide: list[str]) -> list[str]:
    """Folders the already-running interpreter imports from, minus the ones to hide (the repository)."""
    found = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.realpath(sys.executable))}
    for p in sys.path:
        if p and os.path.exists(p):
            found.add(os.path.realpath(p))
    hidden = {os.path.realpath(h) for h in hide}
    return sorted(p for p in found if p not in hidden and p != "/")


def reachable_by_others(path: str) -> bool:
    """True if an unrelated uid can traverse to and read `path` (every ancestor has o+x)."""
    import stat

    p = os.path.realpath(path)
    try:
        st = os.stat(p)
        if not st.st_mode & (stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(st.st_mode) else 0)):
            return False
        while p != "/":
            p = os.path.dirname(p)
            if not os.stat(p).st_mode & stat.S_IXOTH:
                return False
    except OSError:
        return False
    return True


def collapse(paths: list[str]) -> list[str]:
    """Drop paths already covered by a parent in the list (symlinks resolved)."""
    out: list[str] = []
    resolved = {x if os.path.islink(x) else os.path.realpath(x) for x in paths if os.path.lexists(x)}
    for p in sorted(resolved):
        if not any(p == q or p.startswith(q.rstrip("/") + "/") for q in out):
            out.append(p)
    return out


def _mkpath(root: str, path: str, is_dir: bool) -> str:
    target = root + path
    if is_dir:
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        if not os.path.exists(target):
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
    return target


def _bind(root: str, src: str, readonly: bool, dev: bool = False) -> None:
    if os.path.islink(src):  # merged-/usr symlinks such as /bin -> usr/bin: recreate, don't bind
        target = root + src
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        if not os.path.lexists(target):
            os.symlink(os.readlink(src), target)
        return
    target = _mkpath(root, src, os.path.isdir(src))
    sc.mount(src, target, None, sc.MS_BIND | sc.MS_REC)
    flags = sc.MS_BIND | sc.MS_REMOUNT | sc.MS_NOSUID | (0 if dev else sc.MS_NODEV)
    if readonly:
        flags |= sc.MS_RDONLY
    # Keep the locked flags of the source mount, or a remount inside a user namespace fails with EPERM.
    st = os.statvfs(src)
    for bit, flag in ((os.ST_NOEXEC, sc.MS_NOEXEC), (os.ST_NODEV, sc.MS_NODEV), (os.ST_RDONLY, sc.MS_RDONLY)):
        if st.f_flag & bit:
            flags |= flag
    sc.mount(None, target, None, flags)


def build_root(root: str, ro: list[str], rw: list[str]) -> None:
    """Mount a private root at `root` and pivot into it. Runs inside a fresh mount namespace."""
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    sc.mount("tmpfs", root, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "size=16m,mode=0755")
    # Private, empty /tmp first, so binds of paths under the host's /tmp land on top of it.
    os.makedirs(root + "/tmp", mode=0o755)
    sc.mount("tmpfs", root + "/tmp", "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "size=1m,mode=0755")
    for p in collapse(ro):
        _bind(root, p, readonly=True)
    for p in DEVICES_RW + DEVICES_RO:
        if os.path.exists(p):
            _bind(root, p, readonly=p in DEVICES_RO, dev=True)
    for p in rw:
        _bind(root, p, readonly=False)
    os.chdir(root)
    sc.pivot_root(".", ".")
    sc.umount2(".", sc.MNT_DETACH)  # detach the old root stacked under the new one
    os.chdir("/")
    sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV)
