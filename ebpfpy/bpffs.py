"""bpffs (and tracefs) mounts, and pinning helpers.

Pinning needs a bpf filesystem; distributions usually mount one at
/sys/fs/bpf, minimal VMs do not. ``ensure_bpffs()`` mounts it when missing
(via libc mount(2) through ebpfpy's cffi shim: no dependency on a mount binary), and
``ensure_tracefs()`` does the same for tracefs, which tracepoint attach needs.
"""
from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager

BPFFS = "/sys/fs/bpf"
TRACEFS = "/sys/kernel/tracing"
# Where tracefs may be, most modern first (debugfs shows it under tracing/).
TRACEFS_CANDIDATES = (TRACEFS, "/sys/kernel/debug/tracing")


def _fs_type(path: str) -> str | None:
    """Filesystem type mounted exactly at ``path`` (from /proc/self/mounts), or None."""
    path = os.path.realpath(path)
    found = None
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3 and fields[1].replace("\\040", " ") == path:
                found = fields[2]  # the last mount on a path wins
    return found


def mount(source: str, target: str, fstype: str) -> None:
    """mount(2) through libc (no mount binary needed); OSError with errno on failure."""
    from ebpfpy.sys import _libc  # here, not at the top: every pybpftrace start imports this module, few mount

    os.makedirs(target, exist_ok=True)
    rc = _libc.mount(source, target, fstype)
    if rc != 0:
        err = -rc
        why = os.strerror(err)
        if err == errno.EPERM:
            why += " (mounting needs CAP_SYS_ADMIN: run as root)"
        raise OSError(err, f"mount -t {fstype} {source} {target}: {why}")


def is_bpffs(path: str = BPFFS) -> bool:
    return _fs_type(path) == "bpf"


def on_bpffs(path: str) -> bool:
    """Whether ``path`` (or, while it does not exist yet, its nearest existing parent) lies on a
    bpf filesystem, the only place BPF_OBJ_PIN works: elsewhere the kernel answers EPERM, which
    reads like a missing privilege, so callers check first and name the real cause."""
    path = os.path.realpath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    best, fstype = "", None
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 3:
                continue
            point = fields[1].replace("\\040", " ")
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):  # the deepest mount; the last one on a path wins
                best, fstype = point, fields[2]
    return fstype == "bpf"


def ensure_bpffs(path: str = BPFFS) -> str:
    """Mount bpffs at ``path`` unless one is there already; returns the path."""
    if not is_bpffs(path):
        mount("bpf", path, "bpf")
    return path


def find_cgroup2() -> str | None:
    """Where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup on a unified system,
    /sys/fs/cgroup/unified on a hybrid one (the first cgroup2 mount listed), or None."""
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3 and fields[2] == "cgroup2":
                return fields[1].replace("\\040", " ")
    return None


def find_tracefs(candidates=TRACEFS_CANDIDATES) -> str | None:
    """The first of ``candidates`` where tracefs is mounted (it has events/), or None."""
    for candidate in candidates:
        if os.path.isdir(os.path.join(candidate, "events")):
            return candidate
    return None


def ensure_tracefs(path: str = TRACEFS) -> str:
    """Mount tracefs at ``path`` unless it (or the debugfs alias) is there already."""
    found = find_tracefs((path, TRACEFS_CANDIDATES[1]))
    if found:
        return found
    mount("tracefs", path, "tracefs")
    return path


def pin(obj, path: str) -> None:
    """Pin a map, program or link (anything with ``fd``/``fileno()``) at ``path`` on a bpffs."""
    from ebpfpy.sys import bpf

    bpf.obj_pin(obj, path)


def get(path: str, read_only: bool = False):
    """The FD of a pinned object."""
    from ebpfpy.sys import bpf
    from ebpfpy.sys.consts import OpenFlag

    return bpf.obj_get(path, OpenFlag.RDONLY if read_only else 0)


def unpin(path: str) -> None:
    """Remove a pin (the object lives on while other fds or pins hold it)."""
    os.unlink(path)


@contextmanager
def temp_dir(prefix: str = "ebpfpy-") -> Iterator[str]:
    """A fresh directory on bpffs, removed with everything pinned in it on exit."""
    import shutil
    import tempfile

    ensure_bpffs()
    path = tempfile.mkdtemp(prefix=prefix, dir=BPFFS)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
