"""A cgroup id back to its paths, as bpftrace's ``cgroup_path()`` prints them.

A cgroup's id is the inode number of its directory in the cgroup file system, so
the path is found by looking for that inode in every mounted hierarchy (bpftrace
0.17 compares every entry, files too, so an id can name a control file). bpftrace
0.17 prints each hierarchy that has it as ``NAME:PATH``, joined by commas: the
cgroup v2 hierarchy first (named ``unified``), then the v1 ones by name (a v1
mount is named by its controllers, ``cpu,cpuacct``, or by ``name=X`` as ``X``).
The optional filter is a shell pattern on those names. An id no hierarchy has
gives the empty string.

Walking a hierarchy costs a directory scan, so answers are cached per id and
filter for the life of the run (an id is not reused while its cgroup exists).
"""
from __future__ import annotations

import fnmatch
import functools
import os

UNIFIED = "unified"


def hierarchies(mountinfo: str = "/proc/self/mountinfo") -> list[tuple[str, str]]:
    """``(name, mount point)`` of every cgroup hierarchy mounted here: v2 first, then v1 by name."""
    v2, v1 = [], []
    try:
        with open(mountinfo) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    for line in lines:
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        point = fields[4].replace("\\040", " ")
        if tail[0] == "cgroup2":
            v2.append((UNIFIED, point))
        elif tail[0] == "cgroup":
            v1.append((_v1_name(tail[2]), point))
    return v2[:1] + sorted(v1)


def _v1_name(options: str) -> str:
    """A v1 hierarchy's name from its super options: its controllers, or ``name=X``."""
    opts = [o for o in options.split(",") if o not in ("rw", "ro")]
    named = [o.split("=", 1)[1] for o in opts if o.startswith("name=")]
    if named:
        return named[0]
    return ",".join(o for o in opts if "=" not in o and o not in ("noprefix", "xattr", "clone_children"))


def _find_inode(root: str, inode: int) -> str | None:
    """The path below ``root`` (``/`` for the root) of the entry with that inode, or None. Files
    count too, as in bpftrace 0.17 (an id may name ``memory:/memory.swappiness``)."""
    try:
        if os.stat(root).st_ino == inode:
            return "/"
    except OSError:
        return None
    for top, dirs, files in os.walk(root, onerror=lambda err: None):
        for d in (*dirs, *files):
            path = os.path.join(top, d)
            try:
                if os.lstat(path).st_ino == inode:
                    return "/" + os.path.relpath(path, root)
            except OSError:
                continue
    return None


@functools.lru_cache(maxsize=4096)
def cgroup_path(cgroup_id: int, pattern: str = "*") -> str:
    """``unified:/a/b,cpu:/a`` for a cgroup id, over the hierarchies whose names match ``pattern``."""
    out = []
    for name, point in hierarchies():
        if not fnmatch.fnmatchcase(name, pattern):
            continue
        found = _find_inode(point, cgroup_id)
        if found is not None:
            out.append(f"{name}:{found}")
    return ",".join(out)
