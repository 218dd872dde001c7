"""Installed footprint: ebpfpy and its runtime dependencies vs the bpftrace binary and its libraries.

Every Python distribution is counted the same way: the files ``pip install``
puts on disk, byte-compiled ``.pyc``, ``*.dist-info`` and console scripts
included. For the dependencies that is their RECORD (pip wrote it while
installing them). ebpfpy is installed editable here, so its RECORD says
nothing useful: its wheel is built from this tree (``pip wheel``) and
installed into a temporary ``--target`` directory, and every file there counts.
"""
from __future__ import annotations

import glob
import importlib.metadata as md
import os
import re
import shutil
import subprocess
import tempfile

from harness import Metric, Target
from install import DEPENDENCIES, PIP, build_wheel

TARGET = 0.02


def record_bytes(name: str) -> int:
    """Sum of the sizes of an installed distribution's files (its RECORD); 0 when absent."""
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


def tree_bytes(top: str) -> tuple:
    """(bytes, files) of every regular file under ``top``."""
    total = files = 0
    for base, _dirs, names in os.walk(top):
        for n in names:
            path = os.path.join(base, n)
            if os.path.isfile(path) and not os.path.islink(path):
                total += os.path.getsize(path)
                files += 1
    return total, files


def ebpfpy_installed(tmp: str) -> dict:
    """Build ebpfpy's wheel from this tree, ``pip install --target`` it, and measure what landed."""
    wheel = build_wheel(tmp)
    target = os.path.join(tmp, "target")
    subprocess.run([*PIP, "install", "--no-deps", "--no-index", "--target", target, wheel], check=True,
                   capture_output=True)
    total, files = tree_bytes(target)
    pyc = sum(os.path.getsize(p) for p in glob.glob(os.path.join(target, "**", "*.pyc"), recursive=True))
    return {"bytes": total, "files": files, "pyc": pyc, "wheel": os.path.getsize(wheel),
            "wheel_name": os.path.basename(wheel)}


def bpftrace_bytes() -> tuple:
    binary = shutil.which("bpftrace")
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    paths = {os.path.realpath(binary)}
    for m in re.finditer(r"(/\S+) \(0x", out):
        paths.add(os.path.realpath(m.group(1)))
    return sum(os.path.getsize(p) for p in paths), len(paths)


def _row(name: str, target: Target, how: str, ours: float, theirs: float) -> Metric:
    m = Metric(name, "MB", target, how)
    m.samples = {"ebpfpy": [ours / 1e6], "bpftrace": [theirs / 1e6]}
    return m


def measure() -> list:
    bt, nlibs = bpftrace_bytes()
    deps = {name: record_bytes(name) for name in DEPENDENCIES}
    with tempfile.TemporaryDirectory(prefix="ebpfpy-footprint-") as tmp:
        own = ebpfpy_installed(tmp)
    dep_total = sum(deps.values())
    total = own["bytes"] + dep_total
    how = ("what `pip install` puts on disk for ebpfpy and its required dependencies (pyelftools, cffi, "
           "pycparser, click), byte-compiled .pyc, dist-info and scripts included: ebpfpy's wheel built "
           "from this tree and installed with `pip install --no-deps --target` into a temporary directory; "
           "each dependency's RECORD (what pip wrote when it installed it); bpftrace: the binary and every "
           "library `ldd` lists, symlinks dereferenced.")
    main = _row("footprint: installed size", Target("le", TARGET), how, total, bt)
    main.notes.append("installed bytes: " + ", ".join(
        [f"ebpfpy {own['bytes']:,} ({own['files']} files, {own['pyc']:,} of them .pyc; wheel "
         f"{own['wheel_name']} {own['wheel']:,} bytes)"] + [f"{k} {v:,}" for k, v in deps.items()]))
    main.notes.append(f"bpftrace side: {nlibs} files (binary + shared libraries), {bt:,} bytes")
    main.notes.append("the Python interpreter is not counted on ebpfpy's side; libc, libstdc++ and LLVM "
                      "are counted on bpftrace's")
    main.raw = {"ebpfpy": own, "dependencies": deps, "bpftrace": {"bytes": bt, "files": nlibs}}
    rows = [main]
    deps_row = _row("footprint: required dependencies alone (pyelftools, cffi, pycparser, click)",
                    Target("le", TARGET), "the dependencies' share of the row above, without ebpfpy itself.",
                    dep_total, bt)
    if dep_total / bt > TARGET:
        deps_row.notes.append(f"{dep_total:,} bytes = {dep_total / bt:.4f} of bpftrace's {bt:,}: above "
                              f"{TARGET} before a single byte of ebpfpy, so the installed-size target cannot "
                              "be met while these are required dependencies")
    rows.append(deps_row)
    for name, size in [("ebpfpy", own["bytes"]), *deps.items()]:
        rows.append(_row(f"footprint: {name}", Target("report"),
                         f"{name}'s part of the installed size (ratio: share of bpftrace's size).", size, bt))
    return rows
