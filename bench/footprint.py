"""Installed footprint: ebpfpy and its runtime dependencies vs the bpftrace binary and its libraries."""
from __future__ import annotations

import importlib.metadata as md
import os
import re
import shutil
import subprocess

from harness import Metric, Target

PY_DISTS = ("ebpfpy", "pyelftools", "cffi", "pycparser", "click")


def dist_bytes(name: str) -> int:
    """Sum of the sizes of a distribution's files (its RECORD), dereferencing links; 0 when absent.

    ebpfpy itself is installed editable here, so its record lists only
    metadata: its size is the package tree (sources and the built cffi shim,
    no __pycache__).
    """
    if name == "ebpfpy":
        import ebpfpy

        total = 0
        for base, dirs, names in os.walk(os.path.dirname(ebpfpy.__file__)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            total += sum(os.path.getsize(os.path.join(base, n)) for n in names)
        return total
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        return 0
    total = 0
    for f in dist.files or []:
        path = os.path.realpath(dist.locate_file(f))
        if os.path.isfile(path):
            total += os.path.getsize(path)
    return total


def bpftrace_bytes() -> tuple:
    binary = shutil.which("bpftrace")
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    paths = {os.path.realpath(binary)}
    for m in re.finditer(r"(/\S+) \(0x", out):
        paths.add(os.path.realpath(m.group(1)))
    return sum(os.path.getsize(p) for p in paths), len(paths)


def measure() -> list:
    per = {name: dist_bytes(name) for name in PY_DISTS}
    bt, nlibs = bpftrace_bytes()
    m = Metric("footprint: installed size", "MB", Target("le", 0.02),
               "ebpfpy + pyelftools, cffi, pycparser, click: sum of the files of each distribution "
               "(importlib.metadata RECORD; for the editable ebpfpy, its package tree without __pycache__); "
               "bpftrace: the binary and every library `ldd` lists, symlinks dereferenced.")
    m.samples = {"ebpfpy": [sum(per.values()) / 1e6], "bpftrace": [bt / 1e6]}
    m.notes.append("ebpfpy side, bytes: " + ", ".join(f"{k} {v:,}" for k, v in per.items()))
    m.notes.append(f"bpftrace side: {nlibs} files (binary + shared libraries), {bt:,} bytes")
    m.notes.append("the Python interpreter is not counted on ebpfpy's side; libc, libstdc++ and LLVM are counted on bpftrace's")
    return [m]
