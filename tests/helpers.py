"""Helpers shared by the kernel tests, imported by basename (``from helpers import ...``).

tests/ has no ``__init__.py``; pytest puts tests/ on ``sys.path`` because
``tests/conftest.py`` lives there, the same way it puts tests/kernel there
for ``test_attach_common``.
"""
from __future__ import annotations

import os
import struct

_INSN = struct.Struct("<BBhi")  # opcode, dst|src<<4, off, imm


def open_fds() -> set[str]:
    """This process's open fds: compare before and after to prove nothing leaked."""
    return set(os.listdir("/proc/self/fd"))


def ret(value: int) -> bytes:
    """``r0 = value; exit`` as raw bytes (so the syscall tests need no ISA layer)."""
    return _INSN.pack(0xB7, 0, 0, value) + _INSN.pack(0x95, 0, 0, 0)


def tracepoint_id(category: str, event: str) -> int:
    """perf config of tracepoint category:event (tracefs mounted when missing); skips the test if absent."""
    import pytest

    from ebpfpy import bpffs

    path = os.path.join(bpffs.ensure_tracefs(), "events", category, event, "id")
    if not os.path.exists(path):
        pytest.skip(f"no {category}:{event} tracepoint")
    with open(path) as f:
        return int(f.read())


def emit_slot_lookup(b, map_ref, slot: int, *, key_off: int = -4, key_size: int = 4) -> None:
    """``r0 = map_lookup_elem(map_ref, &slot)`` with the key stored at ``fp + key_off``;
    jump to the label ``out`` when it is NULL (the null check the verifier wants)."""
    from ebpfpy.isa.builder import FP, R0, R1, R2

    b.st(key_size, FP, slot, key_off)
    b.ld_map_fd(R1, map_ref)
    b.mov(R2, FP)
    b.add(R2, key_off)
    b.call("map_lookup_elem")
    b.jeq(R0, 0, "out")


def trace_while(script: str, trigger, *, stop: bool = True, timeout: float = 90) -> str:
    """Run pybpftrace ``script`` (this pid as $1), call ``trigger()`` once it has attached, and
    return its stdout. ``stop``: SIGINT after the trigger, so it prints its maps and exits;
    otherwise the script exits by itself. A watchdog kills it if it hangs."""
    import signal
    import subprocess
    import sys
    import threading

    import pytest

    proc = subprocess.Popen([sys.executable, "-m", "ebpfpy.bpftrace", "-e", script, str(os.getpid())],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.daemon = True
    watchdog.start()
    try:
        first = proc.stdout.readline()
        if not first.startswith("Attaching "):
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"pybpftrace did not attach: {first}{out}{err}")
        trigger()
        if stop:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=timeout)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    return first + out


def map_entries(out: str, name: str) -> dict:
    """`@name[key]: value` lines -> {key: int value} (key None for a scalar map)."""
    import re

    found = {}
    for m in re.finditer(rf"^@{name}(?:\[(.*)\])?: (-?\d+)$", out, re.M):
        found[m.group(1)] = int(m.group(2))
    return found


def write_vmlinux_h(directory) -> str:
    """``DIRECTORY/vmlinux.h`` for clang-built test objects: bpftool's dump of this kernel's BTF,
    or our own writer's (the same header) where bpftool is missing.  Returns its path."""
    import shutil
    import subprocess

    path = os.path.join(str(directory), "vmlinux.h")
    with open(path, "w") as f:
        if shutil.which("bpftool"):
            subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"],
                           check=True, stdout=f)
        else:
            from ebpfpy.btf import vmlinux
            from ebpfpy.btf.cheader import format_header
            f.write(format_header(vmlinux()))
    return path


def bpf_object(name: str, directory) -> str:
    """``tests/bpf_objects/NAME.bpf.c`` built with clang-19 into DIRECTORY (vmlinux.h made there once),
    or in the qemu guest (no clang) the runner's prebuilt ``$EBPFPY_PREBUILT/NAME.bpf.o``: a source
    marked ``ebpfpy-vm: prebuild`` (tests/vm/vmrun/prebuild.py).  Skips the test when neither exists."""
    import shutil
    import subprocess

    import pytest

    prebuilt = os.path.join(os.environ.get("EBPFPY_PREBUILT") or "/nonexistent", name + ".bpf.o")
    if os.path.exists(prebuilt):
        return prebuilt
    if not shutil.which("clang-19"):
        pytest.skip(f"no clang-19 to build {name}.bpf.c (and no prebuilt copy)")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bpf_objects")
    if not os.path.exists(os.path.join(str(directory), "vmlinux.h")):
        write_vmlinux_h(directory)
    out = os.path.join(str(directory), name + ".bpf.o")
    subprocess.run(["clang-19", "-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", "-I", str(directory),
                    "-I", src, "-c", os.path.join(src, name + ".bpf.c"), "-o", out], check=True)
    return out


def ebpfpy_run(*args, trigger, timeout: float = 60) -> tuple[str, str, str]:
    """``ebpfpy run ARGS`` in a child: ``trigger()`` once its first stderr line (``Attached ...``,
    printed when everything is attached) is out, then Ctrl-C.  Returns (stdout, the rest of
    stderr, that first line); fails unless it exits 0."""
    import signal
    import subprocess
    import sys

    cmd = [sys.executable, "-c", "from ebpfpy.cli import main; main()", "run", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert line.startswith("Attached"), line + proc.stderr.read()
        trigger()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    return stdout, stderr, line
